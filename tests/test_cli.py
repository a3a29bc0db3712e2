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


def test_train_sample_symmetrized_end_to_end(tmp_path, capsys):
    """`feyntk train-sample` trains real symmetrized networks f_G (group + symmetrize: true) and
    keeps train-sample's JSON contract; the help of every command names the group keys."""
    cfg = {"widths": [4, 8, 1], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
           "inputs": [[0.3, -0.5, 0.8, 0.1], [-0.5, 0.1, 0.3, 0.8]],
           "train_inputs": [[0.9, 0.2, -0.4, 0.3], [-0.6, 0.5, 0.1, 0.7]],
           "targets": [[0.5], [-0.3]], "steps": 3, "eta": 0.3,
           "group": {"name": "rot90", "shape": [2, 2]}, "symmetrize": True}
    path, out = tmp_path / "t.json", tmp_path / "mc.json"
    path.write_text(json.dumps(cfg))
    assert main(["train-sample", str(path), "--samples", "8", "--seed", "2", "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"n", "mean", "cov", "samples", "seed"} <= set(res)
    assert res["n"] == 8 and res["samples"] == 8 and res["seed"] == 2
    mean, se = (np.asarray(res["mean"][k]) for k in ("value", "se"))
    assert mean.shape == se.shape == (2, 1) and np.all(se > 0)
    assert np.asarray(res["cov"]["value"]).shape == (2, 2)
    # the second evaluation input is the first rotated by 90°: f_G gives it the same value
    assert abs(mean[0, 0] - mean[1, 0]) < 1e-10
    path.write_text(json.dumps({**cfg, "symmetrize": "yes"}))
    assert main(["train-sample", str(path), "--samples", "8"]) == 2
    assert "symmetrize must be true or false" in capsys.readouterr().err
    for cmd in ("predict", "sample", "train", "train-sample"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert all(k in text for k in ('"group": {"name": "rot90"', '"symmetrize": true',
                                        "output_action", "augment")), cmd
