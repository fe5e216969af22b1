"""The design corpus: deterministic, cached, read back exactly; another grid's file is refused by name."""

import json

import numpy as np
import pytest

from clm.cli.main import main
from clm.core.errors import UserError
from clm.domains.design.corpus import build_corpus, read_corpus, write_corpus
from clm.domains.design.fe import FESolver
from clm.domains.design.simp import simp


def test_corpus_is_deterministic_and_reads_back(tmp_path):
    a = build_corpus(3, 2, 16, 8, 0.4, seed=5, max_iter=15)
    b = build_corpus(3, 2, 16, 8, 0.4, seed=5, max_iter=15)
    assert np.array_equal(a.design, b.design) and np.array_equal(a.compliance, b.compliance)
    assert [lc.key() for lc in a.load_cases] == [lc.key() for lc in b.load_cases]
    assert list(a.heldout) == [False, False, False, True, True]
    write_corpus(tmp_path / "c.safetensors", a)
    c = read_corpus(tmp_path / "c.safetensors", 16, 8)
    assert np.array_equal(c.grey, a.grey) and np.array_equal(c.heldout, a.heldout)
    # each stored compliance is the FE solve of its stored design, and SIMP's own figure for its grey design
    s = FESolver(16, 8)
    for k in range(5):
        assert c.compliance[k] == pytest.approx(s.compliance(c.design[k], c.load_cases[k]), rel=1e-12)
        assert c.compliance_grey[k] == pytest.approx(simp(c.load_cases[k], max_iter=15).compliance, rel=1e-12)
        assert c.design[k].sum() == round(0.4 * 128)


def test_corpus_of_another_grid_is_refused_naming_file_and_field(tmp_path):
    write_corpus(tmp_path / "c.safetensors", build_corpus(1, 1, 16, 8, 0.4, max_iter=3))
    with pytest.raises(UserError, match=r"c.safetensors: header nelx x nely is 16x8, but this run's grid is 32x16") as e:
        read_corpus(tmp_path / "c.safetensors", 32, 16)
    assert e.value.exit_code == 2
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(UserError, match="junk.safetensors: not a safetensors design corpus"):
        read_corpus(tmp_path / "junk.safetensors")


def test_cli_corpus_caches_and_rejects_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLM_CACHE", str(tmp_path))
    args = ["design", "corpus", "--n-train", "2", "--n-heldout", "1", "--grid", "16x8", "--max-iter", "5", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (first["cached"], second["cached"]) == (False, True) and first["path"] == second["path"]
    assert main(["design", "corpus", "--volfrac", "1.2"]) == 2
    assert "--volfrac 1.2 must lie in (0, 1)" in capsys.readouterr().err
    assert main(["design", "corpus", "--grid", "80x8"]) == 2
