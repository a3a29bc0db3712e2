"""Real trained ensembles and what the seeds plot (issue 16 item 4, MATH.md §7).

Real networks are drawn exactly as :func:`feyntk.validate.sample.sample_parameters` draws them
(network s of seed k from ``fold_in(PRNGKey(k), s)``, so results do not depend on chunking) and
trained by full-batch gradient descent on the summed loss ``½ Σ_terms |f(x) − y|²`` with the
learning-rate vector λ of MATH.md §1, ``θ ← θ − η λ ⊙ ∇_θ L``, T steps. Three models:

* ``"mlp"`` on the training set as given;
* ``"augmented"``: the MLP on the whole orbit ``{(ρ(g)x_α, ρ_out(g)y_α)}`` (|G|·N_A terms);
* ``"symmetrized"``: the real symmetrized network ``f_G(θ; x) = |G|⁻¹ Σ_g ρ_out(g)ᵀ f(θ; ρ(g)x)``
  (the seeds' GCNN with a full-support lifting layer and group pooling) trained on the original
  set, by JAX autodiff through the orbit mean. With η_G = |G|η it has the augmented ensemble's
  infinite-width mean (the seeds' theorem, :func:`feyntk.symmetry.augment.seeds_theorem`).

Per-network outputs are kept (``outputs[s, δ, j]``), so every ensemble size M can be formed from
one run: the S networks are split into ⌊S/M⌋ disjoint ensembles of M consecutive networks, each
ensemble's mean output is scored, and the scores' mean and standard error over the disjoint
ensembles are reported (se = std/√k; NaN when only one ensemble fits).

Scores of an ensemble mean v on the orbit stack ``v[g, δ, j]`` = output j at ρ(g)x_δ:

* :func:`invariance_error2`: ``mean_{g, δ, j} (v[g, δ] − ρ_out(g) v[e, δ])_j²`` (squared);
* :func:`relative_orbit_std`: per δ, ``std_g v[g, δ] / |mean_g v[g, δ]|`` (scalar outputs);
* :func:`orbit_same_predictions`: per δ, how many of the |G| copies ρ(g)x_δ get the class of
  x_δ itself (argmax over outputs; the identity counts, so the value lies in 1..|G|).

Infinite width (the NTK prediction): the trained ensemble at infinite width is Gaussian with the
mean and covariance of :mod:`feyntk.symmetry.augment`. The mean squared invariance error of an
ensemble of M networks is exact, ``E[err²](M) = bias² + Var/M`` (:func:`ntk_invariance_error2`,
bias = 0 for full augmentation); the other scores are nonlinear in the outputs and are computed
on Gaussian draws of M-network ensembles (:func:`ntk_scores`, seeded), with the same estimator as
the real networks.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import SpecError
from feyntk.numbers.infinite import infinite_kernels
from feyntk.spec.network import Network, check_inputs
from feyntk.symmetry.augment import (TrainedEnsemble, augmented_ensemble,
                                     symmetrized_ensemble)
from feyntk.symmetry.groups import Group
from feyntk.symmetry.kernels import check_group
from feyntk.training.ensemble import check_targets
from feyntk.training.schedule import Schedule
from feyntk.validate.sample import (FieldSpec, forward, learning_rates, network_key,
                                    sample_parameters)

jax.config.update("jax_enable_x64", True)

MODELS = ("mlp", "augmented", "symmetrized")


# -- training sets and step sizes -------------------------------------------------------------
def orbit_training_set(group: Group, x_train, y) -> tuple[np.ndarray, np.ndarray]:
    """The full orbit ``(ρ(g)x_α, ρ_out(g)y_α)`` as (|G|·N_A, n0), (|G|·N_A, n_L), g-major."""
    x = check_inputs(x_train, group.n0, "train_inputs")
    Y = np.asarray(y, dtype=float)
    R = group.output_matrices(Y.shape[1])
    return (group.act(x).reshape(-1, group.n0),
            np.einsum("gij,aj->gai", R, Y).reshape(-1, Y.shape[1]))


def lambda_max(network: Network, x_train) -> float:
    """Largest eigenvalue of the infinite-width Θ_AA on the training inputs (repeats allowed)."""
    _, T = infinite_kernels(network, check_inputs(x_train, network.n0, "train_inputs"))
    return float(np.linalg.eigvalsh(0.5 * (T + T.T))[-1])


# -- real networks ----------------------------------------------------------------------------
def _model(spec: FieldSpec, mats, routs) -> Callable:
    """θ, x ↦ (n_L, N) outputs; with mats: the orbit mean ``|G|⁻¹ Σ_g ρ_out(g)ᵀ f(ρ(g)x)``."""
    if mats is None:
        return lambda t, x: forward(spec, t, x)

    def f(t, x):
        orbit = jnp.einsum("gij,aj->gai", mats, x)
        outs = jax.vmap(lambda xs: forward(spec, t, xs))(orbit)          # (G, n_L, N)
        return jnp.einsum("gji,gjn->in", routs, outs) / mats.shape[0]
    return f


@functools.partial(jax.jit, static_argnames=("spec", "symmetrized"))
def _train_chunk(keys, xa, yT, xe, eta, steps, mats, routs, spec: FieldSpec, symmetrized: bool):
    f = _model(spec, mats if symmetrized else None, routs)
    lam = learning_rates(spec)
    grad = jax.grad(lambda t: 0.5 * jnp.sum((f(t, xa) - yT) ** 2))

    def one(key):
        th0 = sample_parameters(spec, key)
        th = jax.lax.fori_loop(0, steps, lambda _, t: t - eta * lam * grad(t), th0)
        return f(th, xe).T, jnp.max(jnp.abs(f(th, xa) - yT))
    return jax.vmap(one)(keys)


def train_networks(network: Network, x_eval, x_train, y, schedule: Schedule, *, members: int,
                   seed: int = 0, model: str = "mlp", group: Group | None = None,
                   chunk: int = 64, progress: bool = False) -> dict:
    """Train ``members`` real networks by gradient descent and return every network's outputs.

    Args:
        network: the MLP (MATH.md §1).
        x_eval: (N_e, n0) evaluation inputs; x_train: (N_A, n0); y: (N_A, n_L) targets.
        schedule: gradient descent with a finite number of steps (``Schedule("steps", T, η)``).
        members: number of networks S; network s is drawn from ``network_key(seed, s)``.
        model: ``"mlp"``, ``"augmented"`` or ``"symmetrized"`` (module docstring; the last two
            need ``group``).
        chunk: networks trained together (vmapped); results do not depend on it.
        progress: a tqdm bar over chunks.

    Returns:
        ``{"outputs": (S, N_e, n_L), "max_residual": (S,) final max|f(x_A) − y|, "model",
        "seed", "members", "steps", "eta", "terms"}`` (terms: training terms of the loss).
    """
    import tqdm

    if model not in MODELS:
        raise SpecError(f"model must be one of {MODELS}, got {model!r}")
    if model != "mlp" and group is None:
        raise SpecError(f"model {model!r} needs a group")
    if not isinstance(schedule, Schedule) or schedule.kind != "steps" or schedule.steps is None:
        raise SpecError("train_networks runs gradient descent for a finite number of steps: "
                        "pass Schedule('steps', steps=T, eta=η)")
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
        raise SpecError(f"members must be a positive integer, got {members!r}")
    nL = network.widths[-1]
    xe = check_inputs(x_eval, network.n0)
    xa = check_inputs(x_train, network.n0, "train_inputs")
    Y = check_targets(y, xa.shape[0], nL)
    if group is not None:
        check_group(network, group)
        mats, routs = jnp.asarray(group.matrices), jnp.asarray(group.output_matrices(nL))
    else:
        mats = routs = jnp.zeros((1, 1, 1))
    if model == "augmented":
        xa, Y = orbit_training_set(group, xa, Y)
    spec = FieldSpec(network, nL, ("z",))
    S, C = int(members), max(1, min(int(chunk), int(members)))
    outs, res = [], []
    with tqdm.tqdm(total=S, unit="net", disable=not progress, desc=f"training {model}") as bar:
        for start in range(0, S, C):
            got = min(C, S - start)
            keys = jax.vmap(lambda i: network_key(seed, i))(
                jnp.arange(start, start + C, dtype=jnp.uint32))
            o, r = _train_chunk(keys, jnp.asarray(xa), jnp.asarray(Y.T), jnp.asarray(xe),
                                float(schedule.eta), int(schedule.steps), mats, routs,
                                spec=spec, symmetrized=model == "symmetrized")
            outs.append(np.asarray(o)[:got])
            res.append(np.asarray(r)[:got])
            bar.update(got)
    out = np.concatenate(outs)
    if not np.all(np.isfinite(out)):
        raise SpecError(f"training diverged ({schedule.describe()}): use a smaller eta "
                        "(eta·λ_max(Θ_AA) <= 1) or wider layers")
    return {"outputs": out, "max_residual": np.concatenate(res), "model": model, "seed": seed,
            "members": S, "steps": int(schedule.steps), "eta": float(schedule.eta),
            "terms": int(xa.shape[0])}


# -- scores of one ensemble mean on an orbit stack --------------------------------------------
def _orbit(group: Group, values) -> np.ndarray:
    """(|G|, N, n_L) from orbit values given as (|G|·N, n_L) (g-major) or (|G|, N, n_L)."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 2 and v.shape[0] % group.order == 0:
        return v.reshape(group.order, -1, v.shape[-1])
    if v.ndim == 3 and v.shape[0] == group.order:
        return v
    raise SpecError(f"orbit values must be (|G|·N, n_L) or (|G|, N, n_L) with |G| = "
                    f"{group.order}, got {v.shape}")


def invariance_error2(group: Group, orbit_values) -> float:
    """``mean_{g, δ, j} (v[g, δ] − ρ_out(g) v[e, δ])_j²`` for v (|G|, N, n_L)."""
    v = _orbit(group, orbit_values)
    R = group.output_matrices(v.shape[-1])
    return float(np.mean((v - np.einsum("gij,dj->gdi", R, v[0])) ** 2))


def relative_orbit_std(group: Group, orbit_values) -> np.ndarray:
    """(N,) ``std_g v[g, δ] / |mean_g v[g, δ]|`` (one output: invariant scalar targets)."""
    v = _orbit(group, orbit_values)
    if v.shape[-1] != 1:
        raise SpecError("relative_orbit_std is defined for one output")
    v = v[..., 0]
    return v.std(0) / np.abs(v.mean(0))


def orbit_same_predictions(group: Group, orbit_values) -> np.ndarray:
    """(N,) number of g with argmax_j v[g, δ, j] = argmax_j v[e, δ, j] (identity included)."""
    v = _orbit(group, orbit_values)
    cls = v.argmax(-1)
    return (cls == cls[0]).sum(0)


def accuracy(values, labels) -> float:
    """Fraction of rows whose argmax is the label."""
    return float(np.mean(np.asarray(values).argmax(-1) == np.asarray(labels)))


SCORES = {
    "invariance_error2": lambda G, v: invariance_error2(G, v),
    "relative_orbit_std": lambda G, v: float(np.mean(relative_orbit_std(G, v))),
    "orbit_same_predictions": lambda G, v: float(np.mean(orbit_same_predictions(G, v))),
}


def ensemble_curve(group: Group, outputs, sizes, scores=("invariance_error2",)) -> dict:
    """Scores of ensemble means against ensemble size M (module docstring).

    outputs: (S, |G|·N, n_L) per-network outputs on the orbit stack (g-major). Returns
    ``{score: {"size": [M], "mean": [...], "se": [...], "ensembles": [k]}}``.
    """
    out = np.asarray(outputs, dtype=float)
    S = out.shape[0]
    res = {}
    for name in scores:
        fn = SCORES[name]
        means, ses, ks = [], [], []
        for M in sizes:
            if not 1 <= M <= S:
                raise SpecError(f"ensemble size {M} must lie in 1..{S}")
            k = S // M
            vals = np.array([fn(group, out[i * M:(i + 1) * M].mean(0)) for i in range(k)])
            means.append(float(vals.mean()))
            ses.append(float(vals.std(ddof=1) / math.sqrt(k)) if k > 1 else float("nan"))
            ks.append(k)
        res[name] = {"size": list(sizes), "mean": means, "se": ses, "ensembles": ks}
    return res


# -- infinite width ---------------------------------------------------------------------------
def ntk_ensemble(network: Network, group: Group, x_test, x_train, y, schedule: Schedule, *,
                 model: str = "augmented") -> TrainedEnsemble:
    """Infinite-width trained ensemble on the orbit stack of x_test (g-major rows).

    ``model``: ``"augmented"`` (full orbit), ``"mlp"`` (no augmentation) or ``"symmetrized"``
    (f_G trained with step |G|η, which has the augmented mean).
    """
    X = group.act(check_inputs(x_test, network.n0)).reshape(-1, network.n0)
    if model == "augmented":
        return augmented_ensemble(network, group, X, x_train, y, schedule)
    if model == "mlp":
        return augmented_ensemble(network, group, X, x_train, y, schedule, elements=[0])
    if model == "symmetrized":
        sc = Schedule("steps", steps=schedule.steps, eta=schedule.eta * group.order)
        return symmetrized_ensemble(network, group, X, x_train, y, sc)
    raise SpecError(f"model must be one of {MODELS}, got {model!r}")


def ntk_invariance_error2(group: Group, ens: TrainedEnsemble, sizes) -> np.ndarray:
    """Exact ``E[invariance_error2]`` of an M-network infinite-width ensemble, per M in sizes.

    With d = v[g] − ρ_out(g)v[e] linear in the outputs: E[d²] = E[d]² + Var(d)/M.
    """
    mean = _orbit(group, ens.mean)
    G, N, nL = mean.shape
    R = group.output_matrices(nL)
    # D maps the flat outputs (g, δ, i) to the differences (g, δ, j)
    D = np.zeros((G, N, nL, G, N, nL))
    for g in range(G):
        for d in range(N):
            D[g, d, :, g, d, :] += np.eye(nL)
            D[g, d, :, 0, d, :] -= R[g]
    D = D.reshape(G * N * nL, -1)
    C = ens.cov.reshape(G * N * nL, G * N * nL)
    bias2 = float(np.mean((D @ mean.reshape(-1)) ** 2))
    var = float(np.einsum("ij,jk,ik->", D, C, D)) / D.shape[0]
    return np.array([bias2 + var / M for M in sizes])


def ntk_scores(group: Group, ens: TrainedEnsemble, sizes, scores, *, draws: int = 64,
               seed: int = 0) -> dict:
    """Scores of M-network ensembles drawn from the infinite-width Gaussian (module docstring).

    For each M, ``draws`` independent ensembles: the mean of M Gaussian networks is Gaussian
    with the ensemble's mean and covariance/M. Output neurons are independent with the same
    covariance (``cov = Σ ⊗ I``, the MLP and invariant f_G); returns the layout of
    :func:`ensemble_curve`.
    """
    mean = np.asarray(ens.mean, dtype=float)
    n, nL = mean.shape
    Sigma = ens.cov[:, 0, :, 0]
    if nL > 1 and np.abs(ens.cov - np.einsum("de,ij->diej", Sigma, np.eye(nL))).max() > \
            1e-10 * max(1.0, np.abs(Sigma).max()):
        raise SpecError("ntk_scores needs independent output neurons (cov = Σ ⊗ I)")
    w, V = np.linalg.eigh(0.5 * (Sigma + Sigma.T))
    L = V * np.sqrt(np.clip(w, 0.0, None))
    rng = np.random.default_rng(seed)
    res = {name: {"size": list(sizes), "mean": [], "se": [], "ensembles": []} for name in scores}
    for M in sizes:
        vals = {name: [] for name in scores}
        for _ in range(draws):
            v = mean + (L @ rng.standard_normal((n, nL))) / math.sqrt(M)
            for name in scores:
                vals[name].append(SCORES[name](group, v))
        for name in scores:
            a = np.array(vals[name])
            res[name]["mean"].append(float(a.mean()))
            res[name]["se"].append(float(a.std(ddof=1) / math.sqrt(draws)))
            res[name]["ensembles"].append(draws)
    return res


# -- data -------------------------------------------------------------------------------------
def digits(n_train: int, n_test: int, *, seed: int = 0, classes: int = 10):
    """scikit-learn's bundled 8 × 8 digits (no download), a seeded random train/test split.

    Each image is centred by its own mean pixel and scaled to norm √64 (both commute with the
    pixel permutations of C4 and D4). Targets are one-hot rows (n_L = ``classes``) of the labels
    0..classes−1. Returns ``(x_train, y_train, labels_train, x_test, labels_test)``.
    """
    from sklearn.datasets import load_digits

    data = load_digits(n_class=classes)
    X = data.images.reshape(len(data.images), 64).astype(float)
    X = X - X.mean(1, keepdims=True)
    X = X * (8.0 / np.linalg.norm(X, axis=1, keepdims=True))
    idx = np.random.default_rng(seed).permutation(len(X))
    if n_train + n_test > len(X):
        raise SpecError(f"the digits have {len(X)} images, asked for {n_train} + {n_test}")
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    lab = data.target
    return X[tr], np.eye(classes)[lab[tr]], lab[tr], X[te], lab[te]
