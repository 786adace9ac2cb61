"""``energy.device``: the bench runs and measures variants where the recipe says.

This torch is a CPU build, so CUDA itself is not reachable here; ``meta`` (a device every torch
has) stands in for it where placement is checked: the bench's ``device`` is the one seam. The
real GPU path is run by ``benchmarks/device_check.py`` on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tests_support import FAST_ENERGY, run_cli, small
from torch import nn

import compresslab.protocol
from compresslab.api import load_recipe
from compresslab.bench import Runtime, VariantBench, compress_context
from compresslab.compress import VariantSpec
from compresslab.compress.base import Step
from compresslab.errors import BackendUnavailableError, RecipeError, VariantError
from compresslab.tasks.metrics import predict

META = torch.device("meta")


def _bench(tmp_path: Path, task: Any, **kwargs: Any) -> VariantBench:
    recipe = load_recipe(small(tmp_path))
    bench = VariantBench(recipe=recipe, task=task, **kwargs)
    bench.device = "meta"  # stands in for cuda:N on a CPU-only torch
    return bench


def _devices(model: nn.Module) -> set[torch.device]:
    return {t.device for t in [*model.parameters(), *model.buffers()]}


@pytest.mark.slow
def test_the_built_model_and_the_batch_go_to_the_device(tmp_path: Path, digits_task: Any) -> None:
    bench = _bench(tmp_path, digits_task)
    model = bench.build(VariantSpec())
    assert _devices(model) == {torch.device("cpu")}  # built on the CPU
    assert _devices(bench.place(model)) == {META}
    assert bench.inference_batch().device == META
    assert bench.on_device(torch.zeros(2)).device == META
    assert _devices(digits_task.model) == {torch.device("cpu")}  # the task's model stays


@pytest.mark.slow
def test_measuring_puts_model_and_inputs_on_the_device(
    tmp_path: Path, digits_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def measure_model(model: nn.Module, batch: torch.Tensor, **kwargs: Any) -> str:
        seen["one"] = (_devices(model), batch.device)
        return "result"

    def measure_models_paired(base: Any, mine: Any, **kwargs: Any) -> str:
        seen["pair"] = [(_devices(m), b.device) for m, b, _ in (base, mine)]
        return "paired"

    monkeypatch.setattr(compresslab.protocol, "measure_model", measure_model)
    monkeypatch.setattr(compresslab.protocol, "measure_models_paired", measure_models_paired)
    bench = _bench(tmp_path, digits_task)
    cpu_model = bench.build(VariantSpec())
    # Windows only: the fake result is no EnergyResult to widen by the machine's repeatability.
    batch = digits_task.inference_batch(8)
    assert bench.measure(cpu_model, inputs=batch, standalone=False) == "result"
    assert seen["one"] == ({META}, META)
    assert bench.measure_paired(bench.build(VariantSpec())) == "paired"
    assert seen["pair"] == [({META}, META), ({META}, META)]


def test_accuracy_inputs_follow_the_model() -> None:
    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1, device=META))
            self.seen: list[torch.device] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(x.device)
            return torch.zeros(x.shape[0], 3)

    model = Recorder()
    preds = predict(model, torch.zeros(300, 4), batch_size=256)
    assert model.seen == [META, META]  # two batches, each moved to the model's device
    assert preds.device == torch.device("cpu") and preds.shape == (300,)


@pytest.mark.slow
def test_the_reused_float_model_stays_on_the_cpu(tmp_path: Path, digits_task: Any) -> None:
    bench = _bench(tmp_path, digits_task, reuse_float=True)
    placed = bench.place(bench.build(VariantSpec()))
    assert _devices(placed) == {META}
    assert bench._float is not None
    assert _devices(bench._float[1]) == {torch.device("cpu")}


@pytest.mark.slow
def test_cpu_only_layers_are_refused_on_a_gpu(tmp_path: Path, digits_task: Any) -> None:
    bench = _bench(tmp_path, digits_task)
    model = bench.build(VariantSpec((Step("dynamic_int8", {}),)))
    with pytest.raises(VariantError, match="CPU only"):
        bench.place(model)


@pytest.mark.slow
def test_bitsandbytes_quantizes_on_the_recipe_device(
    tmp_path: Path, digits_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compresslab.compress import bnb

    recipe = load_recipe(small(tmp_path))
    assert compress_context(recipe, digits_task).device == "cpu"
    lin = nn.Linear(64, 32)
    assert bnb.target_device(lin, "cpu") == torch.device("cpu")
    assert bnb.target_device(lin, "cuda:1") == torch.device("cuda:1")
    # On a GPU every shape fits: the packed AVX512-BF16 CPU layout is never used there.
    monkeypatch.setattr(bnb, "packs_for_cpu", lambda device: device.type == "cpu")
    assert not bnb.fits_4bit(nn.Linear(96, 10), blocksize=64)
    assert bnb.fits_4bit(nn.Linear(96, 10), blocksize=64, device="cuda:0")
    # The replacement layer is moved (so quantized) to the recipe's device, not the CPU.
    layer_type = bnb.bitsandbytes().nn.Linear8bitLt
    real_to = layer_type.to
    moved_to: list[object] = []

    def to(self: nn.Module, device: object) -> nn.Module:
        moved_to.append(device)
        return real_to(self, "cpu")  # quantize here: this machine has no GPU

    monkeypatch.setattr(layer_type, "to", to)
    bnb.int8_layer(nn.Linear(256, 64), threshold=6.0, device="cuda:0")
    assert moved_to == [torch.device("cuda:0")]


@pytest.mark.slow
def test_a_cuda_recipe_without_cuda_torch_is_refused_before_any_work(
    tmp_path: Path, digits_task: Any
) -> None:
    """Finding: `energy.device: cuda` ran the model on the CPU and charged an idle GPU."""
    if torch.version.cuda is not None:
        pytest.skip("this torch is a CUDA build")
    recipe = load_recipe(small(tmp_path))
    cuda = recipe.model_copy(update={"energy": recipe.energy.model_copy(update={"device": "cuda"})})
    with pytest.raises(BackendUnavailableError, match="CPU-only build"):
        VariantBench(recipe=cuda, task=digits_task)
    with pytest.raises(RecipeError, match="CPU-only build") as info:
        load_recipe(small(tmp_path, energy={**FAST_ENERGY, "device": "cuda:1"}))
    assert "field 'energy.device'" in str(info.value)


@pytest.mark.slow
def test_the_cli_refuses_a_cuda_recipe_in_one_line(tmp_path: Path) -> None:
    if torch.version.cuda is not None:
        pytest.skip("this torch is a CUDA build")
    recipe = tmp_path / "r.yaml"
    energy = {**FAST_ENERGY, "sampler": "auto", "device": "cuda:0"}
    recipe.write_text(yaml.safe_dump(small(tmp_path, energy=energy)))
    proc = run_cli("measure", str(recipe))
    assert proc.returncode == 2, proc.stderr  # a recipe error, before the task loads
    assert "Traceback" not in proc.stderr
    assert "CPU-only build" in proc.stderr and "energy.device: cpu" in proc.stderr
    assert f"{recipe}:" in proc.stderr and "field 'energy.device'" in proc.stderr


def test_a_causal_workload_follows_the_placed_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: the generation runner kept its prompts on the CPU when the model went to a GPU."""
    from llm_support import tiny_task

    task = tiny_task(tmp_path)
    bench = _bench(tmp_path, task)
    model = bench.place(bench.build(VariantSpec()))
    assert _devices(model) == {META}
    cpu_prompts = task.inference_batch(2)
    assert cpu_prompts.device == torch.device("cpu")
    for batch in (cpu_prompts, bench.inference_batch(Runtime(batch_size=2))):
        work = bench.workload(model, batch, Runtime())
        prefill = work.phases["prefill"]
        for w in (work, prefill):
            assert w.runner.prompts.device == META  # type: ignore[union-attr]
            assert w.inputs.device == META and _devices(w.runner) == {META}
    # The runner's prompts are a buffer: they move with it.
    cpu_model = bench.build(VariantSpec())
    runner = task.workload(cpu_model, cpu_prompts).runner
    assert runner.prompts.device == torch.device("cpu")
    assert runner.to(META).prompts.device == META
    assert _devices(cpu_model) == {META}

    seen: dict[str, Any] = {}

    def measure_model(runner: nn.Module, units: torch.Tensor, **kwargs: Any) -> str:
        seen.setdefault("one", []).append((_devices(runner), units.device))
        return "result"

    def measure_models_paired(base: Any, mine: Any, **kwargs: Any) -> str:
        seen["pair"] = [(_devices(m), b.device) for m, b, _ in (base, mine)]
        return "paired"

    monkeypatch.setattr(compresslab.protocol, "measure_model", measure_model)
    monkeypatch.setattr(compresslab.protocol, "measure_models_paired", measure_models_paired)
    small_batch = Runtime(batch_size=2)
    assert (
        bench.measure(bench.build(VariantSpec()), runtime=small_batch, standalone=False) == "result"
    )
    assert seen["one"] == [({META}, META)]
    assert bench.measure_paired(bench.build(VariantSpec()), runtime=small_batch) == "paired"
    assert seen["pair"] == [({META}, META), ({META}, META)]


#: Devices a test can run a model on here: the CPU, and CUDA where this torch sees a GPU.
RUNNABLE = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", RUNNABLE)
def test_a_causal_variant_is_evaluated_where_it_is_placed(tmp_path: Path, device: str) -> None:
    """The whole evaluation (choices, perplexity, answers, generation, prefill) on ``device``.

    On a CPU-only machine this runs on the CPU; where torch sees a GPU, on CUDA too: the
    prompts, the texts and the choices must all follow the model there.
    """
    from llm_support import tiny_task

    from compresslab.tasks.metrics import model_device

    task = tiny_task(tmp_path)
    bench = _bench(tmp_path, task)
    bench.device = device
    runtime = Runtime(batch_size=2)
    ev = bench.evaluate(VariantSpec((Step("bf16", {}),)), runtime=runtime)
    assert 0.0 <= ev.metric <= 1.0
    assert (ev.quality.perplexity or 0) > 1 and ev.answers
    assert ev.energy.batch_size == 2 * task.new_tokens  # units: generated tokens
    assert ev.phases["prefill"].batch_size == 2  # units: requests
    model = bench.place(bench.build(VariantSpec()))
    expected = torch.device(device)
    assert model_device(model) is not None and model_device(model).type == expected.type
    work = bench.workload(model, task.inference_batch(2), runtime)
    assert work.runner.prompts.device == model_device(model)  # type: ignore[union-attr]
    ids = work.runner(work.inputs)
    assert ids.shape == (2, task.new_tokens) and ids.device == model_device(model)
