"""``python -m compresslab``."""

from compresslab.cli import main

main()
