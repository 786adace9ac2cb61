"""The reference built from another git revision (``compresslab check --reference-rev REV``).

The revision is checked out into a temporary ``git worktree``; a subprocess whose working
directory is that worktree, and whose ``sys.path`` starts there (then ``src/``, then the
entries of ``PYTHONPATH`` that pointed into the repository, mapped into the worktree), builds
the task's model with that revision's code and saves it as a program
(:mod:`compresslab.check.program`, run as a script). This process then loads the program and
measures it. The worktree is removed afterwards, also on error.

The task comes from the recipe file as it was at the revision when it existed there (its
options may name that revision's weights), else from today's recipe.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from compresslab.check.baseline import GateInputError

log = logging.getLogger(__name__)

#: Building and capturing the reference may train a model on first use: give it time.
BUILD_TIMEOUT_S = 1800


class RevisionError(GateInputError):
    """The reference revision cannot be checked out, built or captured."""


@dataclass(frozen=True)
class RevisionProgram:
    """A program built from a revision: where it lies and what the build said."""

    rev: str
    commit: str
    path: Path
    kind: str
    dynamic_batch: bool
    modeled_j_per_inference: float | None
    task_from: str


def _git(args: list[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
        )
    except FileNotFoundError as e:
        raise RevisionError("--reference-rev needs git on PATH") from e
    if proc.returncode != 0:
        raise RevisionError(f"git {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def repo_root(cwd: Path) -> Path:
    """The top of the git repository that holds ``cwd``."""
    try:
        return Path(_git(["rev-parse", "--show-toplevel"], cwd)).resolve()
    except RevisionError as e:
        raise RevisionError(
            f"--reference-rev needs a git repository, and {cwd} is not in one ({e})"
        ) from None


def resolve(rev: str, root: Path) -> str:
    """The commit ``rev`` names (raises with a hint for shallow clones)."""
    try:
        return _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root)
    except RevisionError:
        raise RevisionError(
            f"the revision {rev!r} is not in this clone: a CI checkout is often shallow; fetch "
            "the history (actions/checkout with `fetch-depth: 0`) or the commit itself "
            f"(`git fetch origin {rev}`)"
        ) from None


def python_path(root: Path, worktree: Path) -> str:
    """``PYTHONPATH`` for the build: the worktree first; repository entries mapped into it."""
    entries = [str(worktree)]
    if (worktree / "src").is_dir():
        entries.append(str(worktree / "src"))
    for entry in filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        p = Path(entry).resolve()
        entries.append(str(worktree / p.relative_to(root)) if p.is_relative_to(root) else entry)
    # compresslab itself: importable in the build even when it is not installed (but a
    # compresslab inside the repository is that revision's, found first above).
    here = Path(__file__).resolve().parents[2]
    if not here.is_relative_to(root):
        entries.append(str(here))
    return os.pathsep.join(dict.fromkeys(entries))


def _task_at(
    rev: str, root: Path, recipe_path: Path | None, today: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    if recipe_path is None:
        return today, "today's recipe"
    rel = recipe_path.resolve()
    if not rel.is_relative_to(root):
        return today, "today's recipe (it lies outside the repository)"
    name = rel.relative_to(root).as_posix()
    try:
        text = _git(["show", f"{rev}:{name}"], root)
    except RevisionError:
        return today, f"today's recipe ({name} does not exist at {rev})"
    data = yaml.safe_load(text)
    task = data.get("task") if isinstance(data, dict) else None
    if not isinstance(task, dict):
        return today, f"today's recipe ({name} at {rev} has no task section)"
    return task, f"{name} as it was at {rev}"


def build_program(
    rev: str,
    *,
    task: dict[str, Any],
    batch_size: int,
    workdir: Path,
    recipe_path: Path | None = None,
    cwd: Path | None = None,
) -> RevisionProgram:
    """Build the task's model at ``rev`` in a worktree and save it as a program in ``workdir``.

    Raises:
        RevisionError: no git, an unknown revision, or the build failed (its last lines said).
    """
    from compresslab.check import program

    root = repo_root(cwd or Path.cwd())
    commit = resolve(rev, root)
    task, task_from = _task_at(rev, root, recipe_path, task)
    tree = Path(tempfile.mkdtemp(prefix="compresslab-ref-", dir=workdir)) / "tree"
    _git(["worktree", "add", "--detach", "--quiet", str(tree), commit], root)
    try:
        out = workdir / "reference"
        args = {"task": task, "batch_size": batch_size, "out": str(out), "root": str(tree)}
        env = {**os.environ, "PYTHONPATH": python_path(root, tree)}
        log.info("building the reference at %s (%s) in %s", rev, commit[:12], tree)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", Path(program.__file__).read_text(), json.dumps(args)],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise RevisionError(
                f"building the reference at {rev} took over {BUILD_TIMEOUT_S} s"
            ) from e
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
            raise RevisionError(f"building the reference at {rev} ({commit[:12]}) failed: {tail}")
        info = json.loads(out.with_name(out.name + ".json").read_text(encoding="utf-8"))
    finally:
        _remove_worktree(root, tree)
    return RevisionProgram(
        rev=rev,
        commit=commit,
        path=workdir / info["file"],
        kind=info["kind"],
        dynamic_batch=bool(info["dynamic_batch"]),
        modeled_j_per_inference=info.get("modeled_j_per_inference"),
        task_from=task_from,
    )


def _remove_worktree(root: Path, tree: Path) -> None:
    try:
        _git(["worktree", "remove", "--force", str(tree)], root)
    except RevisionError as e:  # never leave it behind: remove the folder, prune the record
        log.warning("%s; removing %s by hand", e, tree)
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)
    shutil.rmtree(tree.parent, ignore_errors=True)
