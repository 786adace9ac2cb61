"""Writing an artefact: build the variant, save it, reload it, check the outputs match."""

from __future__ import annotations

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

from compresslab.compress import BuildTrace, CompressContext, VariantSpec, build_variant
from compresslab.errors import UsageError, VariantError
from compresslab.export._files import FILES, FORMAT, as_json_text, model_fingerprint, write_manifest
from compresslab.export._load import load_variant
from compresslab.fsio import atomic_write, atomic_write_text
from compresslab.tasks import Task
from compresslab.versions import versions


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
    replace: bool = False,
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
            with ``replace``).
        measured: figures measured for this variant (written as ``measured.json``).
        measured_model: the model that was measured, if at hand: the reloaded artefact must
            also give its outputs.
        replace: replace an existing folder.

    Returns:
        ``out_dir``.

    Raises:
        UsageError: ``out_dir`` exists, is not empty, and ``replace`` is not set.
        VariantError: the variant cannot be built, or the reloaded artefact does not give
            the built (or measured) model's outputs.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not replace:
        raise UsageError(
            f"{out} exists and is not empty: choose another folder, or pass --force "
            "(replace=True) to replace it"
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
    atomic_write_text(out / FILES["history"], as_json_text(history))
    atomic_write_text(out / FILES["versions"], as_json_text(versions()))
    if measured is not None:
        atomic_write_text(out / FILES["measured"], as_json_text(dict(measured)))
    _save_weights(trace.float_model, out / FILES["weights"])
    atomic_write_text(out / FILES["variant"], as_json_text(meta))
    write_manifest(out)

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
    atomic_write_text(out / FILES["variant"], as_json_text(meta))
    write_manifest(out)
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
