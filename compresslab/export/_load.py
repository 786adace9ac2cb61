"""Loading an artefact: the base model, the pruning replayed, the weights, the quantize step."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from compresslab.compress import CompressContext, get_method
from compresslab.errors import VariantError
from compresslab.export._files import FILES, FORMAT, model_fingerprint, read_json, verify_artefact
from compresslab.tasks import Task


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
    meta = read_json(folder / FILES["variant"])
    if meta.get("format") != FORMAT:
        raise VariantError(
            f"{folder / FILES['variant']} has format {meta.get('format')!r}; this compresslab "
            f"reads {FORMAT!r}: load it with the compresslab in versions.json, or export the "
            "variant again"
        )
    verify_artefact(folder)
    history = read_json(folder / FILES["history"])
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
