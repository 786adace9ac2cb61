"""One root error for the package; every error a user can see derives from it.

Each message says what went wrong *and how to fix it*, worded for whoever called: a library
function names its arguments (``trials: ...``), and the command line rewords an argument's
error for its flag (``--trials: ...``, :meth:`InvalidArgumentError.reworded`). Vendor errors
are translated where they enter the package (``raise ... from e``) so callers need to catch
only :class:`CompressLabError`. The family, as docs/api.md lists it:

- :class:`InvalidArgumentError` (also a ``ValueError``): an argument's value is wrong; its
  :class:`UsageError` subclass, something an argument names cannot be used (no study there, a
  folder that exists);
- :class:`RecipeError`: a recipe is invalid (file, line, field and fix of every problem);
- :class:`StorageError`, :class:`MeasurementError`, :class:`BackendUnavailableError`,
  :class:`OtherMachineError`, :class:`VariantError`, :class:`TaskError`: what went wrong on
  the way.
"""

from __future__ import annotations

from collections.abc import Sequence


class CompressLabError(Exception):
    """Root of every error compresslab raises on purpose."""

    #: Process exit code the CLI uses for this error.
    exit_code: int = 1


class RecipeError(CompressLabError):
    """A recipe (or a command-line argument) is invalid. Raised before any work starts."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.field = field
        self.line = line
        where = ""
        if path is not None:
            where = path if line is None else f"{path}:{line}"
            where += ": "
        if field:
            where += f"field '{field}': "
        super().__init__(where + message)
        #: Every problem found, one per line (this error alone unless made by :meth:`combine`).
        self.problems: list[RecipeError] = [self]

    @staticmethod
    def combine(problems: Sequence[RecipeError]) -> RecipeError:
        """One error for several problems: its message lists them, one per line, in order.

        The file, line and field are the first problem's; ``problems`` holds them all.
        """
        if not problems:
            raise ValueError("combine() needs at least one problem")
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        combined = RecipeError("\n".join(str(p) for p in problems))
        combined.path, combined.field, combined.line = first.path, first.field, first.line
        combined.problems = list(problems)
        return combined


class InvalidArgumentError(CompressLabError, ValueError):
    """An argument given to a function is wrong; nothing was run. Also a ``ValueError``.

    The message starts with the argument's name and says what would do, e.g. ``trials must be
    an integer in [1, 100000], got 0``; :attr:`argument` holds the name (None: not one
    argument alone), so that the command line can name its flag instead (:meth:`reworded`).
    """

    exit_code = 2

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        #: The name of the argument at fault (``trials``, ``storage`` ...), if one is.
        self.argument = argument

    def reworded(self, name: str) -> str:
        """The message with the argument's leading name replaced by ``name`` (``--trials``)."""
        message = str(self)
        if self.argument and message.startswith(self.argument):
            return name + message[len(self.argument) :]
        return message


class UsageError(InvalidArgumentError):
    """Something an argument names cannot be used: no study at a location, a folder that exists."""


class BackendUnavailableError(CompressLabError):
    """An optional backend (package, device, counter) cannot be used on this machine."""


class MeasurementError(CompressLabError):
    """An energy reading is implausible or could not be taken; never replaced by a guess."""


class OtherMachineError(CompressLabError):
    """A figure learnt on another machine (calibration, repeatability) was about to be used here."""


class VariantError(CompressLabError):
    """A compression variant could not be built or evaluated (becomes a failed trial)."""


class TaskError(CompressLabError):
    """A task provider could not supply its model, data or metric."""


class StorageError(CompressLabError):
    """The study storage is unreachable or corrupt."""
