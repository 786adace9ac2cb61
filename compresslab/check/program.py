"""A model's computation captured as a self-contained program (graph and weights, no code).

The gate compares a candidate with a reference whose *code* may be gone (an earlier commit's
``forward``), so the reference is kept as a program: :func:`torch.export.export` first (a
``.pt2`` file with the weights), :func:`torch.jit.trace` when export fails (a TorchScript
file). A program is checked to give the model's outputs before it is kept.

This module imports nothing from compresslab at module level, so that its source can run as
a script in another revision's worktree (``compresslab check --reference-rev``): there the
model is built by that revision's code, and compresslab itself may be that revision's.
Run as a script, it reads one JSON argument ``{"task": ..., "batch_size": ..., "out": ...,
"root": ...}``, builds the task's model, captures it to ``out`` + suffix and writes
``out.json`` (the kind, the file, the modeled figure when that compresslab can count it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: How a program is captured, in the order tried, with the file suffix of each.
SUFFIX = {"export": ".pt2", "jit": ".ts"}
#: How close a program's outputs must be to the model's (float32 rounding of reordered ops).
_RTOL, _ATOL = 1e-4, 1e-5


@dataclass
class Captured:
    """A captured program: how (``kind``), the callable, and what can be saved."""

    kind: str
    program: Any  # torch.export.ExportedProgram or torch.jit.ScriptModule
    runnable: Any  # what runs it: ExportedProgram.module(), or the ScriptModule itself
    dynamic_batch: bool


def _first_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    logits = getattr(value, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(f"the model returned {type(value).__name__}, not a tensor or a tuple of them")


def _same_outputs(runnable: Any, model: nn.Module, batch: torch.Tensor) -> str | None:
    """None when ``runnable`` gives ``model``'s outputs on ``batch``, else what differs."""
    with torch.no_grad():
        want = _first_tensor(model(batch)).float()
        got = _first_tensor(runnable(batch)).float()
    if got.shape != want.shape:
        return f"outputs of shape {tuple(got.shape)} instead of {tuple(want.shape)}"
    if not torch.allclose(got, want, rtol=_RTOL, atol=_ATOL):
        return f"outputs differ by up to {float((got - want).abs().max()):.3g}"
    return None


def _export(model: nn.Module, batch: torch.Tensor) -> Captured:
    from torch.export import Dim, export

    try:  # a dynamic batch dimension lets the program run any batch (accuracy, other runtimes)
        ep = export(model, (batch,), dynamic_shapes=({0: Dim.AUTO},), strict=False)
        dynamic = True
    except Exception:
        ep = export(model, (batch,), strict=False)
        dynamic = False
    return Captured("export", ep, ep.module(), dynamic)


def _trace(model: nn.Module, batch: torch.Tensor) -> Captured:
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # Deprecated in recent torch in favour of export, which was tried first.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, (batch,), check_trace=False)
    return Captured("jit", traced, traced, False)


def capture(
    model: nn.Module, batch: torch.Tensor, *, kinds: tuple[str, ...] = ("export", "jit")
) -> Captured:
    """Capture ``model``'s computation on ``batch``-shaped inputs, trying ``kinds`` in order.

    Raises:
        RuntimeError: no kind captured it with the model's outputs; the message gives each
            kind's reason.
    """
    model.eval()
    reasons = []
    for kind in kinds:
        try:
            got = (_export if kind == "export" else _trace)(model, batch)
            # Also on the rows reversed: a trace that baked its inputs in as constants (numpy
            # round trips, Python scalars) gives the right outputs only for the first batch.
            wrong = _same_outputs(got.runnable, model, batch) or _same_outputs(
                got.runnable, model, batch.flip(0)
            )
        except Exception as e:  # any library error means: this way does not capture it
            reasons.append(f"{kind}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            continue
        if wrong is None:
            return got
        reasons.append(f"{kind}: the program's {wrong}")
    raise RuntimeError("; ".join(reasons))


def as_module(captured: Captured, batch_size: int) -> ProgramModule:
    """The captured program as a module (what the gate measures)."""
    return ProgramModule(
        captured.runnable,
        kind=captured.kind,
        batch_size=batch_size,
        dynamic_batch=captured.dynamic_batch,
    )


def save(captured: Captured, path: Path) -> None:
    """Write the program to ``path`` (by convention ending in ``SUFFIX[captured.kind]``)."""
    if captured.kind == "export":
        torch.export.save(captured.program, str(path))
    else:
        torch.jit.save(captured.program, str(path))


def load(path: Path, kind: str) -> Any:
    """The runnable program saved at ``path`` (see :func:`save`)."""
    if kind == "export":
        return torch.export.load(str(path)).module()
    if kind == "jit":
        return torch.jit.load(str(path)).eval()
    raise ValueError(f"unknown program kind {kind!r}: one of {', '.join(SUFFIX)}")


class ProgramModule(nn.Module):
    """A program as a module in eval mode, run on any batch size.

    ``ExportedProgram.module()`` refuses ``.eval()``, so the program is held outside the module
    tree. A program captured with a fixed batch runs other sizes in chunks of that batch, the
    last one padded (its extra rows dropped); a dynamic one is padded to at least two rows.
    """

    _runnable: Any

    def __init__(self, runnable: Any, *, kind: str, batch_size: int, dynamic_batch: bool) -> None:
        super().__init__()
        object.__setattr__(self, "_runnable", runnable)
        self.kind = kind
        self.batch_size = batch_size
        self.dynamic_batch = dynamic_batch
        self.eval()

    def forward(self, x: torch.Tensor) -> Any:
        """The program's outputs for ``x``."""
        n = int(x.shape[0])
        if (self.dynamic_batch and n >= 2) or n == self.batch_size:
            return self._runnable(x)
        size = max(n, 2) if self.dynamic_batch else self.batch_size
        outs = []
        for start in range(0, n, size):
            chunk = x[start : start + size]
            rows = int(chunk.shape[0])
            if rows < size:
                chunk = chunk[torch.arange(size) % rows]
            out = _first_tensor(self._runnable(chunk))
            outs.append(out[:rows])
        return torch.cat(outs)


def _modeled(model: nn.Module, batch: torch.Tensor) -> float | None:
    """The modeled J per inference, when the compresslab on the path can count it."""
    try:
        from compresslab.modeled.costs import modeled_j_per_inference
        from compresslab.modeled.ops import count_ops

        parts = modeled_j_per_inference(count_ops(model, batch), batch_size=int(batch.shape[0]))
        return float(sum(parts.values()))
    except Exception:  # an older compresslab without these: the structural check is skipped
        return None


def _inside(path: str | None, root: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(root.resolve())


def main(argv: list[str]) -> int:
    """Build the task's model (the code on ``sys.path``), capture it, write ``out.json``."""
    args = json.loads(argv[0])
    root, out = Path(args["root"]), Path(args["out"])
    from compresslab.recipe import TaskSpec
    from compresslab.tasks import load_task

    spec = TaskSpec.model_validate(args["task"])
    task = load_task(spec)
    # Which compresslab built it (that revision's, when the repository is compresslab's own).
    info: dict[str, Any] = {"compresslab": getattr(sys.modules["compresslab"], "__file__", None)}
    if spec.entrypoint is not None:
        module = sys.modules[spec.entrypoint.split(":")[0]]
        info["module"] = getattr(module, "__file__", None)
        if not _inside(info["module"], root):
            print(
                f"the entrypoint's module {spec.entrypoint.split(':')[0]} was imported from "
                f"{info['module']}, not from the worktree at {root}: the reference would run "
                "today's code. Keep the package importable from the repository (its root or "
                "src/), not only as an installed copy",
                file=sys.stderr,
            )
            return 3
    model = task.model.eval()
    batch = task.inference_batch(int(args["batch_size"]))
    try:
        got = capture(model, batch)
    except RuntimeError as e:
        print(f"neither torch.export nor torch.jit.trace captured the model: {e}", file=sys.stderr)
        return 4
    path = out.with_name(out.name + SUFFIX[got.kind])
    save(got, path)
    info.update(
        kind=got.kind,
        file=path.name,
        dynamic_batch=got.dynamic_batch,
        modeled_j_per_inference=_modeled(model, batch),
        torch=torch.__version__,
    )
    out.with_name(out.name + ".json").write_text(json.dumps(info), encoding="utf-8")
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except Exception as e:  # one line for the parent's message; the traceback before it
        import traceback

        traceback.print_exc()
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        code = 5
    sys.exit(code)
