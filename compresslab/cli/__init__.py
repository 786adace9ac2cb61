"""The command line: parses arguments, calls the API, prints. Nothing else lives here.

One module per command group, each registering its commands on :data:`app`
(:mod:`._app`, which also holds the global options, the output helpers and :func:`main`):
:mod:`._study` (``search``, ``report``), :mod:`._measure` (``measure``), :mod:`._gate`
(``check``, ``baseline``, ``requirements``), :mod:`._export` (``export``), :mod:`._compare`
(``compare``) and :mod:`._samplers` (``samplers``). Importing them here registers the
commands, in the order ``--help`` lists them.

Every command that prints results takes ``--json`` (one JSON object on stdout); ``--force``
always means "replace what exists" (an artefact folder, a baseline, a comparison).
"""

# The order of registration is the order of --help: search first, samplers last.
from compresslab.cli import _study, _measure, _gate, _export, _compare, _samplers  # noqa: F401, I001
from compresslab.cli._app import app, main

__all__ = ["app", "main"]
