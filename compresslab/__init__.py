"""compresslab: trade model accuracy against measured energy per inference."""

from __future__ import annotations

__version__ = "0.1.0"
