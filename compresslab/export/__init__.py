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
place. An existing folder is only replaced when asked (``replace``, ``--force``).

:class:`ExportRequest` is what ``compresslab export`` asks for (a trial of a recipe's study,
the folder, what may be replaced or exported), passed whole from the command line through
:func:`compresslab.api.export_trial` to :func:`compresslab.study.export_trial`, which builds
the variant and calls :func:`export_variant`.

Why float weights: quantized layers hold packed, library- and engine-specific objects
(PyTorch's packed int8 params, bitsandbytes' quant states, torchao tensor subclasses) that
safetensors cannot store. Every quantize-stage method here is a deterministic function of the
float weights, so the loader re-applies the recorded quantize step to the stored float weights
and gets the same quantized weights back. ``export_variant`` checks this before it returns.

Loading: a copy of the task's base model, the pruning history replayed on it (the pruned
shapes; attention head counts updated), the weights loaded from safetensors (strictly: every
name and shape must match), then the quantize step applied. Nothing is unpickled.
"""

from compresslab.export._files import (
    FILES,
    FORMAT,
    MANIFEST,
    file_sha256,
    model_fingerprint,
    verify_artefact,
)
from compresslab.export._load import load_variant
from compresslab.export._request import ExportRequest
from compresslab.export._write import export_variant

__all__ = [
    "FILES",
    "FORMAT",
    "MANIFEST",
    "ExportRequest",
    "export_variant",
    "file_sha256",
    "load_variant",
    "model_fingerprint",
    "verify_artefact",
]
