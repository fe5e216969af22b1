import pytest
import torch

from clm.core.checkpoint import load_checkpoint, save_checkpoint
from clm.core.errors import UserError


def test_round_trip_and_overwrite(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"w": torch.arange(3.0)}, {"step": 1}, {"kind": "x"})
    save_checkpoint(folder, {"w": torch.arange(4.0)}, {"step": 2}, {"kind": "x"})
    w, s, m = load_checkpoint(folder)
    assert torch.equal(w["w"], torch.arange(4.0)) and s["step"] == 2 and m["kind"] == "x"
    assert not (tmp_path / "ck.new").exists() and not (tmp_path / "ck.old").exists()


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none")
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"w": torch.ones(10)}, {"step": 1})
    (folder / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(folder)


def test_crash_between_renames_keeps_old(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"w": torch.ones(2)}, {"step": 1})
    folder.rename(tmp_path / "ck.old")  # what a crash after the first rename leaves
    w, s, _ = load_checkpoint(folder)
    assert s["step"] == 1
