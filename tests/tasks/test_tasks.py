from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from compresslab.api import load_recipe
from compresslab.errors import TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks import Task, load_task
from compresslab.tasks.digits import digits_task, load_digits_split
from compresslab.tasks.metrics import accuracy, macro_f1, wilson_interval


def test_digits_split_is_stable_and_stratified() -> None:
    a = load_digits_split(seed=0)
    b = load_digits_split(seed=0)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    _, y_tr, x_te, y_te = a
    assert x_te.shape == (360, 1, 8, 8)
    # Stratified: every class has 35 or 36 test examples.
    counts = torch.bincount(y_te, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37
    other = load_digits_split(seed=1)
    assert not torch.equal(other[3], y_te)


@pytest.mark.slow
def test_digits_task_is_trained_and_cached(digits_task) -> None:  # type: ignore[no-untyped-def]
    again = digits_task_fn_fast()
    for (k, v), (_, w) in zip(
        digits_task.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert torch.equal(v, w), k
    assert digits_task.num_classes == 10
    # Trained on the split's training part, which recovery fine-tuning reuses.
    x_tr, y_tr, x_te, y_te = load_digits_split(seed=0)
    assert digits_task.train_inputs is not None and digits_task.train_labels is not None
    assert torch.equal(digits_task.train_inputs, x_tr)
    assert torch.equal(digits_task.train_labels, y_tr)
    assert torch.equal(digits_task.eval_inputs, x_te)


@pytest.mark.slow
def test_digits_has_no_confirmation_split(digits_task) -> None:  # type: ignore[no-untyped-def]
    # Its 360 test images are all it has: the pool cannot spare a confirmation split.
    assert digits_task.confirm_inputs is None and digits_task.confirmation() is None
    from compresslab.tasks import digits

    assert "no confirmation split" in (digits.digits_task.__doc__ or "")


def _linear_task(**kwargs: object) -> Task:
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(10, 4, generator=gen), torch.randint(0, 3, (10,), generator=gen)
    return Task(name="t", model=model, eval_inputs=x, eval_labels=y, num_classes=3,
                info={"eval_examples": "10"}, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_confirmation_is_a_copy_judged_on_the_confirmation_split() -> None:
    assert _linear_task().confirmation() is None
    gen = torch.Generator().manual_seed(1)
    cx, cy = torch.randn(6, 4, generator=gen), torch.randint(0, 3, (6,), generator=gen)
    task = _linear_task(confirm_inputs=cx, confirm_labels=cy)
    confirm = task.confirmation()
    assert confirm is not None and type(confirm) is Task and confirm.model is task.model
    assert torch.equal(confirm.eval_inputs, cx) and torch.equal(confirm.eval_labels, cy)
    assert confirm.confirmation() is None
    with torch.no_grad():
        assert torch.equal(confirm.predictions(task.model), task.model(cx).argmax(dim=1))
    assert confirm.info == {"eval_examples": "6", "eval_split": "confirmation"}
    # The task itself is unchanged: its pool is still what the search compares on.
    assert task.eval_inputs.shape[0] == 10 and task.info == {"eval_examples": "10"}


def test_a_confirmation_split_comes_whole() -> None:
    with pytest.raises(TaskError, match="needs both"):
        _linear_task(confirm_inputs=torch.zeros(3, 4))
    with pytest.raises(TaskError, match="3 confirmation inputs but 2 labels"):
        _linear_task(confirm_inputs=torch.zeros(3, 4), confirm_labels=torch.zeros(2))


def digits_task_fn_fast() -> Task:
    return digits_task({})  # served from the session cache, no retraining


def test_unknown_digits_option_is_an_error() -> None:
    with pytest.raises(TaskError, match="valid options are"):
        digits_task({"layers": 3})


def test_metrics() -> None:
    preds = torch.tensor([0, 1, 1, 2])
    labels = torch.tensor([0, 1, 2, 2])
    assert accuracy(preds, labels) == 0.75
    # F1 per class: 1.0, 2/3, 2/3.
    assert macro_f1(preds, labels) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    lo, hi = wilson_interval(95, 100)
    assert lo < 0.95 < hi and hi - lo < 0.12


def test_user_entrypoint_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_tasks.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from compresslab.tasks import Task

            def build(options):
                torch.manual_seed(0)
                model = nn.Sequential(nn.Linear(4, options.get("hidden", 8)), nn.ReLU(),
                                      nn.Linear(options.get("hidden", 8), 3))
                x = torch.randn(30, 4)
                y = torch.randint(0, 3, (30,))
                return Task(name="mine", model=model, eval_inputs=x, eval_labels=y,
                            num_classes=3)

            def not_a_task(options):
                return "nope"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task = load_task(TaskSpec(entrypoint="my_tasks:build", options={"hidden": 16}))
    assert task.name == "mine"
    assert task.model[0].out_features == 16
    assert not task.model.training
    with pytest.raises(TaskError, match="not compresslab.tasks.Task"):
        load_task(TaskSpec(entrypoint="my_tasks:not_a_task"))
    with pytest.raises(TaskError, match="has no function 'missing'"):
        load_task(TaskSpec(entrypoint="my_tasks:missing"))
    recipe = load_recipe(
        {
            "name": "mine",
            "task": {"entrypoint": "my_tasks:build"},
            "compression": [{"method": "dynamic_int8"}],
        }
    )
    assert recipe.task.entrypoint == "my_tasks:build"


def test_missing_entrypoint_module_says_how_to_fix() -> None:
    with pytest.raises(TaskError, match="make it importable"):
        load_task(TaskSpec(entrypoint="no_such_module_xyz:build"))


def test_unknown_task_name_lists_the_builtins() -> None:
    with pytest.raises(TaskError, match="built-in tasks are digits"):
        load_task(TaskSpec(name="imagenet"))
