"""Compression methods, one module each, behind :class:`CompressionMethod` and a registry.

A variant is a :class:`VariantSpec`: at most one method per stage, applied in the order of
:data:`STAGES` (prune, then sparsify, then quantize). :func:`build_variant` deep-copies the
base model first, so the base model is never mutated. What a step could not do on some layers
is noted on the model (:func:`add_note`); the built model carries every step's notes
(:func:`notes_of`).

Methods by stage:

- prune: ``prune_channels`` (:mod:`.prune`), ``prune_heads`` (BERT-style encoders),
  ``prune_llm`` (Llama-style decoders: KV groups, MLP channels, whole blocks; :mod:`.llm_prune`).
- sparsify: ``sparsity`` (:mod:`.sparsify`).
- quantize: ``dynamic_int8`` (:mod:`.quantize`), ``bnb_int8`` and ``bnb_4bit`` (:mod:`.bnb`),
  ``torchao_int8_weight_only`` and ``torchao_int8_dynamic`` (:mod:`.ao`), ``bf16`` and
  ``fp16`` (:mod:`.precision`).
"""

from __future__ import annotations

from compresslab.compress._build import build_variant
from compresslab.compress._registry import METHODS, get_method, probe_methods
from compresslab.compress._space import Fitted, check_space, fit_method
from compresslab.compress.base import (
    STAGES,
    Applied,
    BuildTrace,
    CompressContext,
    CompressionMethod,
    ParamDef,
    Step,
    StepRecord,
    VariantSpec,
    add_note,
    notes_of,
)
from compresslab.compress.capabilities import capabilities

__all__ = [
    "METHODS",
    "STAGES",
    "Applied",
    "BuildTrace",
    "CompressContext",
    "CompressionMethod",
    "Fitted",
    "ParamDef",
    "Step",
    "StepRecord",
    "VariantSpec",
    "add_note",
    "build_variant",
    "capabilities",
    "check_space",
    "fit_method",
    "get_method",
    "notes_of",
    "probe_methods",
]
