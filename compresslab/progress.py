"""The one progress display of a search: a rich bar in a terminal, an HTML line in Jupyter.

Used by the command line and the notebook API (library code below them prints nothing).
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from compresslab.results import TrialRecord

if TYPE_CHECKING:
    from rich.console import Console

#: A progress callback: ``(record of the trial just finished, distinct variants done, target)``.
OnTrial = Callable[[TrialRecord, int, int], None]


def trial_line(record: TrialRecord) -> str:
    """What the progress display says about the trial that just finished."""
    what = f"#{record.number} {record.variant[:48]}"
    if record.reused_from is not None:
        return f"{what}: reused #{record.reused_from}"
    if record.complete:
        return f"{what}: acc {record.accuracy:.3f}"
    if record.screened:
        return f"{what}: screened out"
    if record.error:
        return f"{what}: {record.state.lower()} ({record.error[:60]})"
    return f"{what}: {record.state.lower()}"


class _NotebookBar:
    """One line of HTML updated in place through an IPython display handle."""

    def __init__(self, title: str, total: int) -> None:
        from IPython.display import display

        self.title = title
        self.total = total
        self.completed = 0
        self.last = ""
        self.t0 = time.monotonic()
        self.handle = display(self, display_id=True)

    def update(self, completed: int, total: int, last: str) -> None:
        self.completed, self.total, self.last = completed, total, last
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
            f"{self.completed}/{self.total} {self._elapsed()} <code>{e(self.last)}</code></div>"
        )

    def __repr__(self) -> str:
        return f"{self.title} {self.completed}/{self.total} {self._elapsed()} {self.last}"


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
    from rich.console import Console

    console = console or Console(stderr=True)
    if console.is_jupyter:
        # rich's live display needs ipywidgets in Jupyter, whose saved output is a dead widget;
        # a display handle needs nothing and leaves the final state in the notebook.
        bar = _NotebookBar(title, total)

        def on_notebook_trial(record: TrialRecord, completed: int, target: int) -> None:
            bar.update(completed, target, trial_line(record))

        yield on_notebook_trial
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}", markup=False),
        console=console,
    ) as progress:
        task_id = progress.add_task(escape(title), total=total, last="")

        def on_terminal_trial(record: TrialRecord, completed: int, target: int) -> None:
            progress.update(task_id, completed=completed, total=target, last=trial_line(record))

        yield on_terminal_trial
