"""The one progress display of a search: a rich bar in a terminal, an HTML line in Jupyter.

Used by the command line and the notebook API (library code below them prints nothing).
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from compresslab.records import TrialRecord

if TYPE_CHECKING:
    from rich.console import Console

#: A progress callback: ``(record of the trial just finished, distinct variants done, target)``.
OnTrial = Callable[[TrialRecord, int, int], None]


def trial_line(record: TrialRecord) -> str:
    """What the progress display says about the trial that just finished.

    The variant and what became of it; never Optuna's trial number, which counts repeats,
    screened and failed trials too and so reads as progress past the budget.
    """
    what = record.variant[:48]
    if record.reused_from is not None:
        return f"{what}: a repeat of trial {record.reused_from}, not counted"
    if record.complete:
        return f"{what}: acc {record.accuracy:.3f}"
    if record.screened:
        return f"{what}: screened out"
    if record.error:
        return f"{what}: {record.state.lower()} ({record.error[:60]})"
    return f"{what}: {record.state.lower()}"


class Eta:
    """Time left, from this session's pace: variants done since it started, and their time.

    A resumed search starts with variants already done; they took no time in this session,
    so they do not count towards the pace.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.t0 = clock()
        self.first: int | None = None

    def __call__(self, completed: int, total: int) -> str:
        """E.g. ``ETA 0:03:12``; ``ETA -`` until a variant of this session is done."""
        if self.first is None:
            # The first callback comes after one trial: what was done before it is older.
            self.first = max(completed - 1, 0)
        done = completed - self.first
        left = max(total - completed, 0)
        if left == 0:
            return "done"
        if done <= 0:
            return "ETA -"
        s = int((self.clock() - self.t0) / done * left)
        return f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _NotebookBar:
    """One line of HTML updated in place through an IPython display handle."""

    def __init__(self, title: str, total: int) -> None:
        from IPython.display import display

        self.title = title
        self.total = total
        self.completed = 0
        self.last = ""
        self.eta = ""
        self.t0 = time.monotonic()
        self.handle = display(self, display_id=True)

    def update(self, completed: int, total: int, last: str, eta: str = "") -> None:
        self.completed, self.total, self.last, self.eta = completed, total, last, eta
        if self.handle is not None:
            self.handle.update(self)

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

    def _repr_html_(self) -> str:
        e = html.escape
        return (
            f"<div><b>{e(self.title)}</b> <progress value='{self.completed}' "
            f"max='{max(self.total, 1)}' style='width:18em;vertical-align:middle'></progress> "
            f"{self.completed}/{self.total} variants {self._elapsed()} {e(self.eta)} "
            f"<code>{e(self.last)}</code></div>"
        )

    def __repr__(self) -> str:
        return (
            f"{self.title} {self.completed}/{self.total} variants {self._elapsed()} {self.eta} "
            f"{self.last}"
        )


@contextlib.contextmanager
def search_progress(
    title: str, total: int, *, enabled: bool = True, console: Console | None = None
) -> Iterator[OnTrial | None]:
    """A progress callback for a search (``None`` when disabled: nothing is shown).

    Args:
        title: the bar's label, e.g. ``search digits``.
        total: the budget of distinct variants.
        enabled: ``False`` shows nothing.
        console: the rich console to draw on (default: stderr).
    """
    if not enabled:
        yield None
        return
    eta = Eta()
    from rich.console import Console

    console = console or Console(stderr=True)
    if console.is_jupyter:
        # rich's live display needs ipywidgets in Jupyter, whose saved output is a dead widget;
        # a display handle needs nothing and leaves the final state in the notebook.
        bar = _NotebookBar(title, total)

        def on_notebook_trial(record: TrialRecord, completed: int, target: int) -> None:
            bar.update(completed, target, trial_line(record), eta(completed, target))

        yield on_notebook_trial
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Transient: the bar goes when the search ends; one line then says how it ended, or an
    # error's one line stands alone.
    state = {"completed": 0, "total": total}
    t0 = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("variants"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[eta]}", markup=False),
        TextColumn("{task.fields[last]}", markup=False),
        console=console,
        transient=True,
    ) as progress:
        task_id = progress.add_task(escape(title), total=total, last="", eta="ETA -")

        def on_terminal_trial(record: TrialRecord, completed: int, target: int) -> None:
            state.update(completed=completed, total=target)
            progress.update(
                task_id,
                completed=completed,
                total=target,
                last=trial_line(record),
                eta=eta(completed, target),
            )

        yield on_terminal_trial
    s = int(time.monotonic() - t0)
    console.print(
        f"{title}: {state['completed']}/{state['total']} variants in "
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}",
        markup=False,
        highlight=False,
    )
