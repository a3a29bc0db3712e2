"""The symmetry keys of feyntk.train / train-sample (issue 16 item 1): contract shapes,
agreement with the symmetry stage's functions, and clear errors for bad combinations.

Each trained 1/n mean compiles its own jitted step map (tens of seconds on 2 cores): the default
run trains once (augment; symmetrize is covered by the predict test and the refusals),
the plain-vs-augmented mean1, the symmetrized network with an output action and the Monte Carlo
of f_G's tensors through ``sample`` are slow-marked.
"""

import json

import numpy as np
import pytest

import feyntk
from feyntk.cli import main
from feyntk.errors import GroupError, NotAvailableError, SpecError
from feyntk.spec.config import parse_request
from feyntk.symmetry.augment import augmented_ensemble, symmetrized_ensemble
from feyntk.symmetry.groups import parse_group
from feyntk.training.schedule import Schedule

ROT = [[0.0, -1.0], [1.0, 0.0]]


def _cfg(nL=1, **extra):
    rng = np.random.default_rng(5)
    return {"widths": [4, 8, nL], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
            "lambda_W": 1.0, "lambda_b": 0.2,
            "inputs": (0.6 * rng.standard_normal((2, 4))).tolist(),
            "train_inputs": (0.6 * rng.standard_normal((2, 4))).tolist(),
            "targets": rng.standard_normal((2, nL)).tolist(), "steps": 4, "eta": 0.2, **extra}


C4 = {"name": "rot90", "shape": [2, 2]}


def test_train_augment_keeps_the_contract_and_matches_the_stage():
    cfg = _cfg(group=C4, augment="full")
    out = feyntk.train(cfg)
    assert out["mean"]["value"].shape == (2, 1) and out["mean1"]["value"].shape == (2, 1)
    assert out["cov"]["value"].shape == (2, 2)
    assert out["symmetry"] == {"group": "rot90", "order": 4, "invariant": True,
                               "mode": "augment", "points": 8, "terms": 8}
    req = parse_request({k: v for k, v in cfg.items()
                         if k not in ("train_inputs", "targets", "steps", "eta", "group",
                                      "augment")})
    G = parse_group(C4, 4)
    ref = augmented_ensemble(req.network, G, cfg["inputs"], cfg["train_inputs"], cfg["targets"],
                             Schedule("steps", steps=4, eta=0.2))
    assert np.abs(out["mean"]["value"] - ref.mean).max() < 1e-12
    assert np.abs(out["cov"]["value"] - ref.cov[:, 0, :, 0]).max() < 1e-12
    assert np.all(np.isfinite(out["mean1"]["value"]))
    assert np.abs(out["mean1"]["value"]).max() > 1e-4


@pytest.mark.slow
def test_train_augment_changes_mean1():
    out = feyntk.train(_cfg(group=C4, augment="full"))
    plain = feyntk.train(_cfg())
    assert np.abs(plain["mean1"]["value"] - out["mean1"]["value"]).max() > 1e-3


@pytest.mark.slow
def test_train_symmetrize_equivariant_outputs():
    group = {**C4, "output_action": [ROT]}
    cfg = _cfg(nL=2, group=group, symmetrize=True)
    out = feyntk.train(cfg)
    assert out["mean"]["value"].shape == (2, 2) and out["mean1"]["value"].shape == (2, 2)
    assert out["cov"]["value"].shape == (2, 2)
    assert out["cov_outputs"]["value"].shape == (2, 2, 2, 2)
    assert out["symmetry"]["mode"] == "symmetrize" and not out["symmetry"]["invariant"]
    req = parse_request({k: cfg[k] for k in ("widths", "activation", "C_W", "C_b", "lambda_W",
                                             "lambda_b", "inputs")})
    ref = symmetrized_ensemble(req.network, parse_group(group, 4, 2), cfg["inputs"],
                               cfg["train_inputs"], cfg["targets"],
                               Schedule("steps", steps=4, eta=0.2))
    assert np.abs(out["mean"]["value"] - ref.mean).max() < 1e-12
    assert np.abs(out["cov_outputs"]["value"] - ref.cov).max() < 1e-12
    assert np.abs(out["mean1"]["value"]).max() > 1e-4


@pytest.mark.parametrize("extra,error,match", [
    ({"group": C4}, SpecError, "would change nothing"),
    ({"augment": "full"}, SpecError, "needs a \"group\""),
    ({"symmetrize": True}, SpecError, "needs a \"group\""),
    ({"group": C4, "augment": "full", "symmetrize": True}, SpecError, "not both"),
    ({"group": C4, "augment": "some"}, SpecError, "augment must be"),
    ({"group": C4, "symmetrize": "yes"}, SpecError, "symmetrize must be"),
    ({"group": {"name": "rot90", "shape": [3, 3]}, "augment": "full"}, GroupError, "n0"),
])
def test_bad_symmetry_configs_are_refused(extra, error, match):
    with pytest.raises(error, match=match):
        feyntk.train(_cfg(**extra))


def test_cli_train_with_symmetry(tmp_path, capsys):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_cfg(group=C4, augment="full")))
    out = tmp_path / "out.json"
    assert main(["train", str(path), "-o", str(out)]) == 0
    got = json.loads(out.read_text())
    assert np.asarray(got["mean1"]["value"]).shape == (2, 1)
    path.write_text(json.dumps(_cfg(group=C4)))
    assert main(["train", str(path)]) == 2
    assert "would change nothing" in capsys.readouterr().err


def test_train_sample_augmented_and_symmetrized_contract():
    cfg = _cfg(group=C4, augment="full")
    out = feyntk.api.train_sample(cfg, samples=64, seed=0)
    assert out["mean"]["value"].shape == (2, 1) and out["cov"]["value"].shape == (2, 2)
    assert np.all(np.isfinite(out["mean"]["value"]))
    sym = feyntk.api.train_sample(_cfg(group=C4, symmetrize=True), samples=64, seed=0)
    assert set(sym) == set(out) and sym["mean"]["se"].shape == (2, 1)
    assert sym["cov"]["se"].shape == (2, 2) and sym["samples"] == 64 and sym["n"] == 8
    assert np.abs(sym["mean"]["value"] - out["mean"]["value"]).max() > 1e-3  # f_G ≠ the MLP
    eq = feyntk.api.train_sample(_cfg(nL=2, group={**C4, "output_action": [ROT]},
                                      symmetrize=True), samples=16, seed=0)
    assert eq["mean"]["value"].shape == (2, 2) and eq["cov"]["value"].shape == (2, 2)


def test_train_sample_symmetrized_refusals():
    cfg = _cfg(group=C4, symmetrize=True)
    x = np.asarray(cfg["train_inputs"])
    on_orbit = {**cfg, "train_inputs": [x[0].tolist(), x[0].reshape(2, 2)[::-1].T.ravel().tolist()]}
    with pytest.raises(SpecError, match="one orbit"):
        feyntk.api.train_sample(on_orbit, samples=8)
    fixed = {**_cfg(nL=2, group={**C4, "output_action": [ROT]}, symmetrize=True),
             "train_inputs": [[0.5, 0.5, 0.5, 0.5], x[1].tolist()]}
    with pytest.raises(SpecError, match="fixed by a group element"):
        feyntk.api.train_sample(fixed, samples=8)


def _pcfg(**extra):
    return {"widths": [4, 8, 8], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
            "lambda_W": 1.0, "lambda_b": 0.2,
            "inputs": (0.6 * np.random.default_rng(11).standard_normal((2, 4))).tolist(),
            "tensors": ["K", "V", "B"], **extra}


def test_predict_and_sample_symmetrized():
    from feyntk.numbers.result import InputSet
    from feyntk.symmetry.tensors import symmetrized_statistics

    cfg = _pcfg(group=C4, symmetrize=True)
    out = feyntk.predict(cfg)
    req = parse_request(_pcfg())
    ref = symmetrized_statistics(req.network, parse_group(C4, 4), InputSet.of(x=req.inputs),
                                 ("K", "V", "B"))
    for t in ("K", "V", "B"):
        assert out["tensors"][t]["value"].shape == ref[t].shape
        assert np.abs(out["tensors"][t]["value"] - ref[t]).max() < 1e-13
    plain = feyntk.predict(_pcfg())
    assert np.abs(plain["tensors"]["V"]["value"] - out["tensors"]["V"]["value"]).max() > 1e-3
    with pytest.raises(SpecError, match="train / train-sample"):
        feyntk.predict(_pcfg(group=C4, augment="full"))
    with pytest.raises(NotAvailableError, match="output action"):
        feyntk.predict({**_pcfg(group={**C4, "output_action": [[[-1.0]]]}, symmetrize=True),
                        "widths": [4, 8, 1]})


@pytest.mark.slow
def test_sample_symmetrized_contract():
    mc = feyntk.sample({**_pcfg(group=C4, symmetrize=True), "tensors": ["V"]}, samples=400,
                       seed=2)
    assert mc["tensors"]["V"]["se"].shape == (2, 2, 2, 2) and mc["seed"] == 2
