"""Loading a causal language model: a ``save_pretrained`` folder, or a GGUF file converted once.

transformers dequantizes a GGUF file to float32 with the ``gguf`` package (``pip install
'compresslab[llm]'``) but refuses ``save_pretrained`` on such a model, so the converted weights,
config and tokenizer are cached under the compresslab cache folder (:func:`gguf_folder`) and
loaded from there afterwards. Everything loads offline (``local_files_only``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compresslab.errors import TaskError
from compresslab.tasks.cache import cache_dir, cache_key
from compresslab.tasks.text import _quiet_loading, transformers_module

log = logging.getLogger(__name__)

_LLM_EXTRA = "pip install 'compresslab[llm]'"
_DONE = "compresslab-converted.json"


def _require_gguf() -> None:
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise TaskError(
            f"loading a GGUF file needs the packages {' and '.join(missing)}: {_LLM_EXTRA}"
        )


def _unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without repeats of a tied tensor (the first name of each is kept)."""
    seen: set[int] = set()
    out = {}
    for name, value in model.state_dict().items():
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        out[name] = value.detach().contiguous()
    return out


def gguf_folder(file: Path) -> Path:
    """A Hugging Face folder holding the GGUF ``file`` dequantized to float32 (cached).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights go to
    ``model.safetensors`` (tied tensors once), the config without its GGUF quantization entry
    to ``config.json``, and the tokenizer beside them; the folder is written whole, then
    renamed into place. Its name changes with the file's path, size and modification time.

    Raises:
        TaskError: ``gguf`` or ``accelerate`` is missing, or transformers cannot read the file.
    """
    from safetensors.torch import save_file

    st = file.stat()
    key = cache_key(
        "causal-lm-gguf-v1",
        {"file": str(file.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns},
    )
    folder = cache_dir() / key
    if (folder / _DONE).is_file():
        return folder
    _require_gguf()
    tf = transformers_module()
    log.info("converting %s to float32 (first use; cached as %s)", file, folder)
    with _quiet_loading():
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(
                str(file.parent), gguf_file=file.name, local_files_only=True
            )
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(file.parent), gguf_file=file.name, dtype=torch.float32, local_files_only=True
            )
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
            raise TaskError(
                f"transformers cannot load the GGUF file {file} ({type(e).__name__}: {e}): use a "
                "GGUF of an architecture transformers supports, or a save_pretrained folder"
            ) from e
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    try:
        save_file(_unique_state(model), str(staging / "model.safetensors"), {"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (staging / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        tokenizer.save_pretrained(str(staging))
        source = {"gguf": str(file), "size": st.st_size, "dtype": "float32"}
        (staging / _DONE).write_text(json.dumps(source), encoding="utf-8")
        if not (folder / _DONE).is_file():  # another process may have converted it meanwhile
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_causal_lm(path: Path) -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer from a ``save_pretrained`` folder or a GGUF file (float32).

    Raises:
        TaskError: the folder or file cannot be loaded (the message says what it needs).
    """
    if path.is_file() and path.suffix.lower() == ".gguf":
        path = gguf_folder(path)
    if not (path / "config.json").is_file():
        raise TaskError(
            f"{path} is neither a GGUF file nor a folder with config.json: point `path` at a "
            "folder written by `model.save_pretrained` and `tokenizer.save_pretrained`, or at "
            "a .gguf file"
        )
    tf = transformers_module()
    with _quiet_loading():
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(path), dtype=torch.float32, local_files_only=True
            )
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise TaskError(
                f"cannot load a causal language model from {path} ({type(e).__name__}: {e}): "
                "the folder must hold what save_pretrained writes (config, weights, tokenizer)"
            ) from e
    model.eval()
    return model, tokenizer
