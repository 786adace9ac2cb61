"""The artefact's files: their names, the manifest of their hashes, and checking it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compresslab.errors import VariantError
from compresslab.fsio import atomic_write_text

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


def write_manifest(folder: Path) -> None:
    files = {
        name: file_sha256(folder / name) for name in FILES.values() if (folder / name).exists()
    }
    atomic_write_text(folder / MANIFEST, as_json_text({"format": FORMAT, "sha256": files}))


def verify_artefact(folder: Path) -> dict[str, str]:
    """Check every file of an artefact against its manifest; return the manifest's hashes.

    Raises:
        VariantError: the manifest is missing or unreadable, a file is missing, or a file's
            content differs from what was exported.
    """
    manifest = read_json(folder / MANIFEST)
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


def as_json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VariantError(
            f"{path} is missing: {path.parent} is not a complete compresslab artefact; "
            "export the variant again"
        ) from None
    except json.JSONDecodeError as e:
        raise VariantError(f"{path} is not valid JSON ({e}): export the variant again") from e
