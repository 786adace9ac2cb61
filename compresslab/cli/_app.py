"""The application every command registers on, its global options, output and errors."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from compresslab._version import __version__
from compresslab.errors import CompressLabError, InvalidArgumentError, RecipeError

# Heavy libraries (torch, pandas, optuna) are imported inside the commands that use them, so
# `--version`, `--help` and a bad command line answer at once.

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # Plain help: typer's rich panels print a switch's type as `<bool>`, as if it took a value.
    rich_markup_mode=None,
    help="compresslab: trade model accuracy against measured energy per inference.",
)
# Wide enough for the frontier table when output goes to a file or a CI log.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

RecipeArg = Annotated[
    Path, typer.Argument(metavar="RECIPE", help="Recipe YAML, e.g. recipes/digits.yaml.")
]
#: ``--json``, on every command that prints results.
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (machine-readable) instead.")
]


def print_json(value: Any) -> None:
    """Print one JSON object: records through :func:`compresslab.records.to_json`.

    Numbers that are not finite (NaN, inf) become ``null``, so any JSON parser reads it.
    """
    from compresslab.records import to_json

    print(json.dumps(_finite(to_json(value)), indent=2, default=str, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _version(value: bool) -> None:
    if value:
        out.print(f"compresslab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log progress details, libraries' warnings, and the traceback of an error.",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    global _verbose
    _verbose = verbose
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Libraries (optuna) set their own logger levels; the handler decides what is shown.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    if not verbose:
        quiet_known_noise()


#: Set by ``--verbose``: errors then show their traceback too.
_verbose = False

#: Libraries' messages that do not apply to how compresslab uses them, by logger: shown only
#: with --verbose. Each names what it is about.
_KNOWN_NOISE: dict[str, tuple[str, ...]] = {
    # torchao's CUDA-only kernels (mxfp8, cutlass) and triton: compresslab runs its CPU paths.
    "torchao": ("Failed to load",),
    "torchao.kernel.intmm": ("Detected no triton",),
    # torch deprecating a registration torchao performs at import.
    "torch.utils._pytree": ("is an Enum subclass",),
    # bitsandbytes: an optional accelerated 4-bit CPU kernel package. (LLM.int8's per-call
    # fp16-cast line is dropped wherever bitsandbytes is used: compress.bnb.INT8_CAST_LOG.)
    "bitsandbytes.backends.cpu.ops": ("kernels-community",),
}


class _DropKnownNoise(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def quiet_known_noise() -> None:
    """Hide libraries' warnings that do not apply here (``--verbose`` shows them)."""
    import warnings

    for name, fragments in _KNOWN_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise(fragments))
    # Deprecations inside torch and torchao (torch.ao.quantization, quantized tensors) are
    # theirs to fix; the methods that use these APIs are probed before every search.
    for module in (r"torch(\..*)?", r"torchao(\..*)?", r"bitsandbytes(\..*)?"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


def _print_error(error: BaseException, *, internal: bool = False) -> None:
    """Each line of an error as ``error: ...``, its text never read as markup."""
    if _verbose:
        import traceback

        err.print("".join(traceback.format_exception(error)), markup=False, highlight=False)
    problems = getattr(error, "problems", None)
    if isinstance(error, RecipeError) and problems and len(problems) > 1:
        lines = [str(p) for p in problems]  # one line per problem of a recipe
    else:  # one line, whatever a library put in its message
        lines = [" ".join(str(error).split()) or type(error).__name__]
    if internal:
        lines = [
            f"{type(error).__name__}: {lines[0]} (an unexpected error: run with --verbose for "
            "the traceback, and please report it)"
        ]
    for line in lines:
        err.print(
            "[bold red]error:[/] " + escape(line), highlight=False, soft_wrap=True, emoji=False
        )


def main() -> None:
    """Entry point of the ``compresslab`` command: errors become messages and exit codes.

    Typer handles usage errors itself (exit code 2); a :class:`CompressLabError` becomes one
    line on stderr per problem and its exit code (2 for a bad recipe), and any other error one
    line and exit code 1; ``--verbose`` adds the traceback.
    """
    try:
        app()
    except CompressLabError as e:
        if isinstance(e, InvalidArgumentError) and e.argument:  # the flag, not the argument
            e.args = (e.reworded("--" + e.argument.replace("_", "-")),)
        _print_error(e)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: completed trials are kept in the study; run again to resume")
        sys.exit(130)
    except Exception as e:  # a bug or a library's error that nothing translated: still one line
        _print_error(e, internal=True)
        sys.exit(1)
