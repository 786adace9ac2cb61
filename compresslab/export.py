"""Reproducible artefacts of a variant: export one, load it back as the same model.

:func:`export_variant` writes an artefact; :func:`load_variant` rebuilds the model from it.

An artefact is a folder:

- ``recipe.yaml``: the recipe as given.
- ``variant.json``: the format, the variant's label and steps (method, stage, every parameter
  with defaults filled in), the seed and kept layers, a fingerprint of the base model, what
  the weights file holds, and the check made at export (outputs of the reloaded model against
  the built one).
- ``pruning_history.json``: torch-pruning's ``pruner.pruning_history()`` of each structural
  step (``[module name, output channels?, indices]`` entries), by step index.
- ``weights.safetensors``: the **float** weights after the prune and sparsify stages.
- ``versions.json``: Python, torch, torch-pruning, bitsandbytes, torchao, transformers,
  safetensors and compresslab versions.
- ``measured.json``: the figures measured for the variant, when given.
- ``manifest.json``: the SHA-256 of every file above. Loading checks them all first, so
  weights with added noise, an edited step or a truncated file are refused, never loaded.

The folder is written as a whole: into a staging folder beside it, checked, then renamed into
place. An existing folder is only replaced when asked (``overwrite``).

Why float weights: quantized layers hold packed, library- and engine-specific objects
(PyTorch's packed int8 params, bitsandbytes' quant states, torchao tensor subclasses) that
safetensors cannot store. Every quantize-stage method here is a deterministic function of the
float weights, so the loader re-applies the recorded quantize step to the stored float weights
and gets the same quantized weights back. ``export_variant`` checks this before it returns.

Loading: a copy of the task's base model, the pruning history replayed on it (the pruned
shapes; attention head counts updated), the weights loaded from safetensors (strictly: every
name and shape must match), then the quantize step applied. Nothing is unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from compresslab.compress import (
    BuildTrace,
    CompressContext,
    VariantSpec,
    build_variant,
    get_method,
)
from compresslab.errors import UsageError, VariantError
from compresslab.fsio import atomic_write, atomic_write_text
from compresslab.tasks import Task
from compresslab.versions import versions

#: The artefact format this module writes and reads.
FORMAT = "compresslab-variant/2"

FILES = {
    "recipe": "recipe.yaml",
    "variant": "variant.json",
    "history": "pruning_history.json",
    "weights": "weights.safetensors",
    "versions": "versions.json",
    "measured": "measured.json",
}
MANIFEST = "manifest.json"


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """Class, parameter count and SHA-256 of the state dict's names, shapes and values."""
    digest = hashlib.sha256()
    n = 0
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        n += t.numel()
    return {"class": type(model).__name__, "numel": n, "sha256": digest.hexdigest()}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(folder: Path) -> None:
    files = {
        name: file_sha256(folder / name) for name in FILES.values() if (folder / name).exists()
    }
    atomic_write_text(folder / MANIFEST, _json({"format": FORMAT, "sha256": files}))


def verify_artefact(folder: Path) -> dict[str, str]:
    """Check every file of an artefact against its manifest; return the manifest's hashes.

    Raises:
        VariantError: the manifest is missing or unreadable, a file is missing, or a file's
            content differs from what was exported.
    """
    manifest = _read_json(folder / MANIFEST)
    hashes = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(hashes, dict) or FILES["variant"] not in hashes:
        raise VariantError(
            f"{folder / MANIFEST} lists no files: {folder} is not a complete compresslab "
            "artefact; export the variant again"
        )
    for name, expected in sorted(hashes.items()):
        path = folder / name
        if not path.is_file():
            raise VariantError(f"{path} is missing: export the variant again")
        if file_sha256(path) != expected:
            raise VariantError(
                f"{path} is not the file that was exported (its SHA-256 differs from "
                f"{MANIFEST}): the artefact was modified or damaged; export the variant again "
                "or restore the original files"
            )
    return {str(k): str(v) for k, v in hashes.items()}


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"


def _history_json(history: list[list[Any]] | None) -> list[list[Any]] | None:
    if history is None:
        return None
    return [[str(name), bool(out), [int(i) for i in idxs]] for name, out, idxs in history]


def _compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, Any]:
    same_shape = a.shape == b.shape
    diff = float((a.float() - b.float()).abs().max()) if same_shape and a.numel() else 0.0
    return {"equal": bool(same_shape and torch.equal(a, b)), "max_abs_diff": diff}


def export_variant(
    *,
    task: Task,
    spec: VariantSpec,
    ctx: CompressContext,
    recipe_dict: Mapping[str, Any],
    out_dir: Path,
    measured: Mapping[str, Any] | None = None,
    measured_model: nn.Module | None = None,
    overwrite: bool = False,
) -> Path:
    """Build ``spec`` on the task's model and write a reproducible artefact folder.

    The variant is built again here (building is deterministic), saved, reloaded with
    :func:`load_variant` and its outputs compared with the built model's on the context's
    example inputs.

    Args:
        task: the task whose model is the base.
        spec: the variant.
        ctx: the context the variant was built with (seed, kept layers, training data).
        recipe_dict: the recipe as given, e.g. ``recipe.model_dump(mode="json")`` (written
            as ``recipe.yaml``; values YAML cannot hold are written as strings).
        out_dir: the folder to write (created as a whole; an existing, non-empty one only
            with ``overwrite``).
        measured: figures measured for this variant (written as ``measured.json``).
        measured_model: the model that was measured, if at hand: the reloaded artefact must
            also give its outputs.
        overwrite: replace an existing folder.

    Returns:
        ``out_dir``.

    Raises:
        UsageError: ``out_dir`` exists, is not empty, and ``overwrite`` is not set.
        VariantError: the variant cannot be built, or the reloaded artefact does not give
            the built (or measured) model's outputs.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UsageError(
            f"{out} exists and is not empty: choose another folder, or pass --force "
            "(overwrite=True) to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        _export_into(staging, task, spec, ctx, recipe_dict, measured, measured_model)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _export_into(
    out: Path,
    task: Task,
    spec: VariantSpec,
    ctx: CompressContext,
    recipe_dict: Mapping[str, Any],
    measured: Mapping[str, Any] | None,
    measured_model: nn.Module | None,
) -> None:
    trace = BuildTrace()
    model = build_variant(task.model, spec, ctx, trace=trace)
    assert trace.float_model is not None
    meta: dict[str, Any] = {
        "format": FORMAT,
        "label": spec.label(),
        "steps": [
            {"method": s.method, "stage": s.stage, "params": dict(s.params)} for s in trace.steps
        ],
        "seed": ctx.seed,
        "keep_modules": list(ctx.keep_modules),
        "base_model": model_fingerprint(task.model),
        "weights": (
            "float weights after the prune and sparsify stages; quantize-stage steps are "
            "re-applied at load time"
        ),
    }
    history = {str(i): _history_json(s.pruning_history) for i, s in enumerate(trace.steps)}
    plain_recipe = json.loads(json.dumps(dict(recipe_dict), default=str))  # paths -> str
    atomic_write_text(out / FILES["recipe"], yaml.safe_dump(plain_recipe, sort_keys=False))
    atomic_write_text(out / FILES["history"], _json(history))
    atomic_write_text(out / FILES["versions"], _json(versions()))
    if measured is not None:
        atomic_write_text(out / FILES["measured"], _json(dict(measured)))
    _save_weights(trace.float_model, out / FILES["weights"])
    atomic_write_text(out / FILES["variant"], _json(meta))
    _write_manifest(out)

    loaded = load_variant(out, task=task)
    with torch.inference_mode():
        x = ctx.example_inputs
        reference = model(x)
        got = loaded(x)
        check: dict[str, Any] = {
            "inputs_shape": list(x.shape),
            "built": _compare(got, reference),
        }
        if measured_model is not None:
            check["measured"] = _compare(got, measured_model(x))
    meta["check"] = check
    atomic_write_text(out / FILES["variant"], _json(meta))
    _write_manifest(out)
    for what in ("built", "measured"):
        if what in check and not check[what]["equal"]:
            raise VariantError(
                f"the exported {spec.label()} does not reproduce the {what} model's outputs "
                f"(largest difference {check[what]['max_abs_diff']:.3g}); the variant is not "
                "deterministic here: report it with versions.json"
            )


def _save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_model

    try:
        atomic_write(path, lambda tmp: save_model(model, str(tmp), metadata={"format": FORMAT}))
    except (ValueError, RuntimeError, TypeError) as e:
        raise VariantError(
            f"cannot write the weights as safetensors ({e}): the float model holds a tensor "
            "safetensors does not support"
        ) from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VariantError(
            f"{path} is missing: {path.parent} is not a complete compresslab artefact; "
            "export the variant again"
        ) from None
    except json.JSONDecodeError as e:
        raise VariantError(f"{path} is not valid JSON ({e}): export the variant again") from e


def load_variant(path: Path, *, task: Task) -> nn.Module:
    """Rebuild an exported variant from the task's base model and the artefact at ``path``.

    Args:
        path: the folder :func:`export_variant` wrote.
        task: the task the variant was exported from (its model is the base; it is not
            mutated).

    Returns:
        The variant in eval mode, giving the outputs of the variant that was exported.

    Raises:
        VariantError: the folder is incomplete or of another format, the base model differs
            from the one exported from, a method is unavailable here, or the weights do not
            fit the rebuilt shapes.
    """
    from safetensors.torch import load_model

    folder = Path(path)
    if not folder.is_dir():
        raise VariantError(
            f"{folder} is not a folder, so not a complete compresslab artefact: pass the "
            "folder `compresslab export` wrote"
        )
    meta = _read_json(folder / FILES["variant"])
    if meta.get("format") != FORMAT:
        raise VariantError(
            f"{folder / FILES['variant']} has format {meta.get('format')!r}; this compresslab "
            f"reads {FORMAT!r}: load it with the compresslab in versions.json, or export the "
            "variant again"
        )
    verify_artefact(folder)
    history = _read_json(folder / FILES["history"])
    base = model_fingerprint(task.model)
    if base["sha256"] != meta["base_model"]["sha256"]:
        raise VariantError(
            f"the task's model ({base['class']}, {base['numel']} values) is not the base model "
            f"the artefact was exported from ({meta['base_model']['class']}, "
            f"{meta['base_model']['numel']} values): load it with the same task and options"
        )
    ctx = CompressContext(
        example_inputs=task.example_inputs(),
        keep_modules=tuple(meta["keep_modules"]),
        seed=int(meta["seed"]),
    )
    model = copy.deepcopy(task.model).eval()
    quantize = []
    for i, step in enumerate(meta["steps"]):
        method = get_method(step["method"])
        if method.stage == "quantize":
            quantize.append((method, step["params"]))
            continue
        model = method.restore_structure(
            model, step["params"], ctx, pruning_history=history.get(str(i))
        )
    try:
        load_model(model, str(folder / FILES["weights"]), strict=True)
    except FileNotFoundError:
        raise VariantError(
            f"{folder / FILES['weights']} is missing: export the variant again"
        ) from None
    except Exception as e:  # safetensors raises its own error type for a damaged header
        raise VariantError(
            f"the weights in {folder} do not fit the rebuilt model ({type(e).__name__}: {e}): "
            "the artefact and the base model do not belong together; export the variant again"
        ) from e
    model.eval()
    for method, params in quantize:
        avail = method.available()
        if not avail:
            raise VariantError(f"{method.name} cannot run here: {avail.reason}")
        model = method.apply(model, params, ctx)
        model.eval()
    return model
