"""The command line and its JSON contract (other tools call it)."""

import json

import numpy as np
import pytest

from feyntk.cli import main

SMALL = {"widths": [2, 8, 8], "activation": "tanh", "C_W": 1.3, "C_b": 0.1,
         "inputs": [[1.0, 0.3], [-0.4, 0.9]], "tensors": ["K", "Theta", "V"], "samples": 300,
         "seed": 3}


@pytest.fixture
def cfg_path(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(SMALL))
    return p


def test_predict_json_contract(cfg_path, tmp_path):
    out = tmp_path / "out.json"
    assert main(["predict", str(cfg_path), "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 8 and res["layer"] == 2
    assert set(res["tensors"]) == {"K", "Theta", "V"}
    assert np.asarray(res["tensors"]["V"]["value"]).shape == (2, 2, 2, 2)
    assert "se" not in res["tensors"]["K"]


def test_sample_json_contract(cfg_path, tmp_path):
    out = tmp_path / "mc.json"
    assert main(["sample", str(cfg_path), "--samples", "50", "--seed", "1", "-q",
                 "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 8 and res["samples"] == 50 and res["seed"] == 1
    for name in ("K", "Theta", "V"):
        v, se = (np.asarray(res["tensors"][name][k]) for k in ("value", "se"))
        assert v.shape == se.shape and np.all(se >= 0)
    assert "finite" in res["notes"]["K"]


def test_compare_prints_extrapolated_table(cfg_path, capsys):
    assert main(["compare", str(cfg_path), "--samples", "200", "-q"]) == 0
    out = capsys.readouterr().out
    assert "| V | 0,1,0,1 |" in out and "extrapolated" in out


def test_derive_diagrams_example_and_help(capsys, tmp_path):
    assert main(["derive", "V", "--latex"]) == 0
    assert r"V^{(\ell+1)}" in capsys.readouterr().out
    assert main(["diagrams", "F", "-o", str(tmp_path / "F.png")]) == 0
    assert (tmp_path / "F.png").stat().st_size > 1000
    assert "symmetry factor" in capsys.readouterr().out
    assert main(["example"]) == 0
    assert json.loads(capsys.readouterr().out)["widths"]
    for cmd in ("predict", "sample", "compare", "derive", "diagrams", "train-step"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "widths" in capsys.readouterr().out


def test_bad_input_exits_2_with_message(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SMALL, "widths": [2, 0, 8]}))
    assert main(["predict", str(bad)]) == 2
    assert "positive integer" in capsys.readouterr().err
    bad.write_text("{not json")
    assert main(["predict", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({**SMALL, "samples": 1}))
    assert main(["sample", str(bad)]) == 2
    assert "at least 2" in capsys.readouterr().err
