from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from compresslab.errors import TaskError
from compresslab.tasks import load_weights


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    trained = _net(0)
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(trained.state_dict(), str(path))
    else:
        torch.save(trained.state_dict(), path)
    fresh = _net(1).train()
    assert not torch.equal(fresh[0].weight, trained[0].weight)
    out = load_weights(fresh, path)
    assert out is fresh and not out.training
    for (k, v), w in zip(trained.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_a_training_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    trained = _net(0)
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    out = load_weights(_net(1), tmp_path / "ckpt.pt")
    assert torch.equal(out[2].bias, trained[2].bias)


def test_errors_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="no weights file at"):
        load_weights(_net(0), tmp_path / "missing.pt")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(TaskError, match="use .safetensors or one of .pt"):
        load_weights(_net(0), tmp_path / "w.onnx")
    torch.save(_net(0), tmp_path / "whole.pt")  # a pickled module, not a state dict
    with pytest.raises(TaskError, match="save `model.state_dict\\(\\)` instead"):
        load_weights(_net(0), tmp_path / "whole.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(TaskError, match="cannot read .* as safetensors"):
        load_weights(_net(0), tmp_path / "junk.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(TaskError, match="corrupt or not a torch checkpoint"):
        load_weights(_net(0), tmp_path / "junk.pt")


def test_mismatches_are_listed(tmp_path: Path) -> None:
    wide = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    save_file(wide.state_dict(), str(tmp_path / "wide.safetensors"))
    with pytest.raises(TaskError, match=r"0.weight \(16, 4\) in the file, \(8, 4\) in the model"):
        load_weights(_net(0), tmp_path / "wide.safetensors")
    state = {f"module.{k}": v for k, v in _net(0).state_dict().items()}
    torch.save(state, tmp_path / "dp.pt")
    with pytest.raises(TaskError, match="strip the DataParallel prefix"):
        load_weights(_net(0), tmp_path / "dp.pt")
    partial = {k: v for k, v in _net(0).state_dict().items() if k.startswith("0.")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(TaskError, match="missing from the file: 2.bias, 2.weight"):
        load_weights(_net(1), tmp_path / "partial.pt")
    out = load_weights(_net(1), tmp_path / "partial.pt", strict=False)
    assert torch.equal(out[0].weight, partial["0.weight"])
