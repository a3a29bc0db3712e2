"""Numeric evaluation of the derived recursions, layer by layer (the plain numpy path).

The recursions are the engine's diagrams (:func:`feyntk.diagrams.diagram.diagrams`); nothing
here knows any particular tensor. A diagram term is
``weight · coeff · Σ_g tensor[index] · Π means · Π_blobs ⟨∂_{legs} Π σ^{(k)}(z_s)⟩_K``
with all layer-ℓ quantities, the hyperparameters of layer ℓ+1 and r = n_ℓ/n_{ℓ-1}.

Two forms evaluate the same terms (MATH.md §4.4):

* ``derivative``: each leg differentiates one σ factor of its blob (product rule), so the dummy
  sample takes that factor's sample. Needs σ^{(k+legs)} as ordinary functions.
* ``inverse-metric``: ``⟨∂_{g1}…∂_{gk} F⟩ = ⟨F · He_{g1…gk}(z)⟩`` with Hermite polynomials of the
  inverse of K restricted to the blob's *distinct* samples; dummies run over those samples.
  Needs only the blob's own σ^{(k)}, so kinked activations (relu) work, but K restricted to each
  blob must be invertible.

Output arrays are in MATH.md's index order; 1/n tensors at layer ℓ+1 are coefficients of 1/n_ℓ.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from feyntk.diagrams.diagram import correlator, diagrams
from feyntk.errors import ActivationError
from feyntk.numbers import driver
from feyntk.numbers.distributions import blob_expectation
from feyntk.numbers.driver import MEMORY_BUDGET as MEMORY_BUDGET  # noqa: F401 (re-export)
from feyntk.numbers.driver import Hyper, array_bytes, first_kernels
from feyntk.numbers.gaussian import relu as relu_closed
from feyntk.numbers.gaussian import (QuadratureReport, check_kinks_at_zero_variance, expect,
                                     require_invertible)
from feyntk.spec.activation import Activation
from feyntk.spec.network import Network
from feyntk.spec.statistic import TENSOR_NAMES

FORMS = ("derivative", "inverse-metric")
RTOL_BLOB = 1e-12


def dependencies(names) -> tuple[str, ...]:
    """Dependency closure of the requested statistics: every tensor their diagrams read, and K
    (every blob is a Gaussian expectation at K)."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        needs = {"K"} | {t for d in diagrams(name) for t in d.tensors}
        todo += [t for t in needs if t not in seen]
    return tuple(n for n in TENSOR_NAMES if n in seen)


@dataclass
class BlobCache:
    """Gaussian expectations of σ-products at one layer's K, memoised per sample pattern."""

    act: Activation
    K: np.ndarray
    form: str
    store: dict = field(default_factory=dict)
    report: QuadratureReport | None = None
    fine: bool = False
    originals: tuple[int, ...] | None = None
    """Original input index of every sample, for error messages (default: the sample itself;
    set when repeated inputs were removed, see :mod:`feyntk.numbers.repeated`)."""

    def original(self, s: int) -> int:
        return int(s) if self.originals is None else int(self.originals[s])

    def label(self, s: int) -> str:
        return f"x[{self.original(s)}]"

    def groups(self, sigs, legs_at=None) -> tuple:
        """((sample, ks, j), ...) per distinct sample, j = legs differentiating that sample."""
        legs_at = legs_at or {}
        S = sorted({s for _, s in sigs})
        return tuple((s, tuple(sorted(k for k, t in sigs if t == s)), legs_at.get(s, 0))
                     for s in S)

    def closed(self, groups, weight=None) -> float | None:
        """The blob by the relu family's closed forms (:mod:`feyntk.numbers.gaussian.relu`),
        None where they do not apply (then the quadrature of :mod:`.distributions` decides)."""
        if not relu_closed.use(self.act):
            return None
        S = [g[0] for g in groups]
        key = ("relu", tuple(S))
        if key not in self.store:
            self.store[key] = relu_closed.ReluBlobs(self.act, self.K[np.ix_(S, S)])
        res = self.store[key].value(tuple((ks, j) for _, ks, j in groups), weight)
        return None if res is None or res[1][0] else float(res[0][0])

    def dist(self, groups) -> float:
        """Blob with distributional factors (kinked activations), see numbers.distributions."""
        key = ("d", groups)
        if key not in self.store:
            value = self.closed(groups)
            if value is None:
                labels = [self.label(i) for i in range(len(self.K))]
                value = float(blob_expectation(self.act, self.K, groups, labels=labels,
                                               report=self.report, fine=self.fine))
            self.store[key] = value
        return self.store[key]

    def plain(self, sigs: tuple[tuple[int, int], ...]) -> float:
        """⟨Π σ^{(k)}(z_s)⟩ for (k, sample) pairs with concrete samples."""
        if not self.act.is_smooth:
            return self.dist(self.groups(sigs))
        key = ("p", tuple(sorted(sigs)))
        if key not in self.store:
            S = sorted({s for _, s in sigs})
            check_kinks_at_zero_variance(self.act, tuple({k for k, _ in sigs}),
                                         self.K[np.ix_(S, S)], [self.label(s) for s in S])
            fns = [(S.index(s), self.act.numpy(k)) for k, s in sigs]

            def f(z):
                out = 1.0
                for i, fn in fns:
                    out = out * fn(z[:, i])
                return out

            self.store[key] = float(expect(f, self.K[np.ix_(S, S)], rtol=RTOL_BLOB,
                                           kinks=self.act.kinks, report=self.report,
                                           fine=self.fine).value)
        return self.store[key]

    def hermite(self, sigs: tuple[tuple[int, int], ...], nlegs: int):
        """(S, ⟨F·He_{g1..gk}⟩ as an array over S^k) for the blob's distinct samples S."""
        key = ("h", tuple(sorted(sigs)), nlegs)
        if key not in self.store:
            S = sorted({s for _, s in sigs})
            KS = self.K[np.ix_(S, S)]
            P = require_invertible(KS, [self.original(s) for s in S])
            fns = [(S.index(s), self.act.numpy(k)) for k, s in sigs]
            d = len(S)
            if not self.act.is_smooth:
                groups = self.groups(sigs)
                vals = [self.closed(groups, c) for c in itertools.product(range(d), repeat=nlegs)]
                if all(v is not None for v in vals):
                    self.store[key] = (S, np.asarray(vals).reshape((d,) * nlegs))
                    return self.store[key]

                def weight(z):
                    return _hermite(np.einsum("ij,bjp->bip", P, z), P, nlegs)

                val = blob_expectation(self.act, self.K, self.groups(sigs), weight,
                                       labels=[self.original(i) for i in range(len(self.K))],
                                       report=self.report, fine=self.fine)
                self.store[key] = (S, np.asarray(val).reshape((d,) * nlegs))
                return self.store[key]

            def f(z):  # z: (B, d, Pn) -> (B, d^k, Pn)
                F = 1.0
                for i, fn in fns:
                    F = F * fn(z[:, i])
                y = np.einsum("ij,bjp->bip", P, z)
                He = _hermite(y, P, nlegs)
                return (He * F[:, None, :]).reshape(z.shape[0], -1, z.shape[-1])

            val = expect(f, KS, rtol=RTOL_BLOB, report=self.report, fine=self.fine,
                         smooth=self.act.is_smooth).value.reshape((d,) * nlegs)
            self.store[key] = (S, val)
        return self.store[key]


def _hermite(y: np.ndarray, P: np.ndarray, k: int) -> np.ndarray:
    """Multivariate Hermite polynomials He_{g1..gk} for y = K^{-1} z, shape (B, d^k, Pn)."""
    B, d, n = y.shape
    if k == 0:
        return np.ones((B, 1, n))
    if k == 1:
        return y
    if k == 2:
        return (y[:, :, None] * y[:, None, :] - P[None, :, :, None]).reshape(B, d * d, n)
    if k == 3:
        yyy = y[:, :, None, None] * y[:, None, :, None] * y[:, None, None, :]
        corr = (P[None, :, :, None, None] * y[:, None, None, :]
                + P[None, :, None, :, None] * y[:, None, :, None]
                + P[None, None, :, :, None] * y[:, :, None, None])
        return (yyy - corr).reshape(B, d ** 3, n)
    if k == 4:
        e = np.einsum
        y4 = e("bap,bcp,bdp,bep->bacdep", y, y, y, y)
        two = 0
        for (i, j), (m, l) in (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)),
                               ((1, 2), (0, 3)), ((1, 3), (0, 2)), ((2, 3), (0, 1))):
            idx = ["a", "c", "d", "e"]
            sub = f"{idx[i]}{idx[j]},b{idx[m]}p,b{idx[l]}p->bacdep"
            two = two + e(sub, P, y, y)
        pp = (e("ac,de->acde", P, P) + e("ad,ce->acde", P, P) + e("ae,cd->acde", P, P))
        return (y4 - two + pp[None, ..., None]).reshape(B, d ** 4, n)
    return hermite_polynomials(y, P, k)


def hermite_polynomials(y: np.ndarray, P: np.ndarray, k: int) -> np.ndarray:
    """Multivariate Hermite polynomials He_{g1..gk} of y = K⁻¹z (P = K⁻¹), any k: shape
    (B, d^k, n) for y of shape (B, d, n), by ``He_{g R} = y_g He_R − Σ_{m∈R} P_{g m} He_{R∖m}``
    (the closed forms above serve k ≤ 4; order-1/n² blobs need up to 8 legs)."""
    B, d, n = y.shape
    H = [np.ones((B, n)), y]
    for j in range(2, k + 1):
        # H_j[g1, g2..gj] = y[g1] H_{j-1}[g2..gj] − Σ_m P[g1, gm] H_{j-2}[g2..ĝm..gj]
        letters = "cdefghijklmnopqrstu"[:j]
        new = np.einsum(f"b{letters[0]}z,b{letters[1:]}z->b{letters}z", y, H[j - 1])
        for m in range(1, j):
            rest = letters[1:m] + letters[m + 1:]
            new = new - np.einsum(f"{letters[0]}{letters[m]},b{rest}z->b{letters}z",
                                  P, H[j - 2])
        H.append(new)
    return H[k].reshape(B, d ** k, n) if k else H[0][:, None, :]


def _numeric_coeff(expr: sp.Expr, values: dict) -> float:
    return float(expr.subs(values))


def derivative_options(blob, alpha: dict, cache: BlobCache) -> list:
    """Derivative form of one blob: [(value thunk, dummy -> sample), ...] to be summed.

    Smooth σ: each leg differentiates one σ factor (product rule), so the dummy takes that
    factor's sample. Kinked σ: each leg picks a sample and the product at that sample is
    differentiated as one distribution (single product-rule terms such as σ⁗σ are ill-defined).
    """
    sigs = [(k, alpha[s]) for k, s in blob.sigs]
    opts = []
    if not cache.act.is_smooth:
        S = sorted({s for _, s in sigs})
        for pick in itertools.product(S, repeat=len(blob.legs)):
            groups = cache.groups(tuple(sigs), {s: pick.count(s) for s in set(pick)})
            opts.append((lambda gr=groups: cache.dist(gr), dict(zip(blob.legs, pick))))
        return opts
    for pick in itertools.product(range(len(sigs)), repeat=len(blob.legs)):
        ks = [k for k, _ in sigs]
        for m in pick:
            ks[m] += 1
        key = tuple(zip(ks, [s for _, s in sigs]))
        opts.append((lambda key=key: cache.plain(key),
                     {leg: sigs[m][1] for leg, m in zip(blob.legs, pick)}))
    return opts


def evaluate_term(term, alpha: dict, state: dict, cache: BlobCache, coeff: float) -> float:
    """Σ over dummies of one diagram term at concrete external samples ``alpha``."""
    means = 1.0
    for name, idx in term.means:
        means *= state[name][tuple(alpha[s] for s in idx)]
    if means == 0.0 or coeff == 0.0:
        return 0.0
    total = 0.0
    if cache.form == "derivative":
        per_blob = [derivative_options(blob, alpha, cache) for blob in term.blobs]
        for combo in itertools.product(*per_blob):
            g, val = {}, 1.0
            for value, gb in combo:
                g.update(gb)
                val *= value()
                if val == 0.0:
                    break
            if val != 0.0 and term.tensor is not None:
                name, idx = term.tensor
                val *= state[name][tuple(g[s] if s in g else alpha[s] for s in idx)]
            total += val
    else:
        blob_vals = []
        for blob in term.blobs:
            sigs = tuple((k, alpha[s]) for k, s in blob.sigs)
            if blob.legs:
                S, arr = cache.hermite(sigs, len(blob.legs))
                blob_vals.append((blob.legs, S, arr))
            else:
                blob_vals.append(((), None, cache.plain(sigs)))
        legs = [leg for legs_, S, _ in blob_vals for leg in legs_]
        ranges = [S for legs_, S, _ in blob_vals for _ in legs_]
        for choice in itertools.product(*(range(len(r)) for r in ranges)):
            g = {leg: ranges[i][c] for i, (leg, c) in enumerate(zip(legs, choice))}
            val, pos = 1.0, 0
            for legs_, S, arr in blob_vals:
                if legs_:
                    val *= arr[tuple(choice[pos:pos + len(legs_)])]
                    pos += len(legs_)
                else:
                    val *= arr
            if term.tensor is not None:
                name, idx = term.tensor
                val *= state[name][tuple(g[s] if s in g else alpha[s] for s in idx)]
            total += val
    return float(term.weight) * coeff * means * total


def _check_smoothness(act: Activation, name: str, form: str) -> None:
    if not act.is_smooth:
        return  # distributional derivatives are integrated; ill-defined entries raise later
    if form != "derivative":
        need = max((k for d in diagrams(name) for t in d.terms for b in t.blobs
                    for k, _ in b.sigs), default=0)
    else:
        need = max((max((k for k, _ in b.sigs), default=0) + len(b.legs)
                    for d in diagrams(name) for t in d.terms for b in t.blobs), default=0)
    if act.regular_order < need:
        hint = (" The inverse-metric form needs fewer derivatives: try form='inverse-metric'."
                if form == "derivative" else "")
        raise ActivationError(
            f"{name} in the {form} form needs σ^({need}) of {act.name!r} as an ordinary function, "
            f"but {act.name!r} is only {act.regular_order} times differentiable (its higher "
            f"derivatives contain delta functions).{hint}")


def choose_form(act: Activation, names, form: str = "auto") -> str:
    """``auto``: the derivative form when the activation is smooth enough, else inverse-metric."""
    if form != "auto":
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS} or 'auto', got {form!r}")
        for n in names:
            _check_smoothness(act, n, form)
        return form
    try:
        for n in names:
            _check_smoothness(act, n, "derivative")
        return "derivative"
    except ActivationError:
        for n in names:
            _check_smoothness(act, n, "inverse-metric")
        return "inverse-metric"


def step(name: str, state: dict, cache: BlobCache, values: dict, N: int) -> np.ndarray:
    """One statistic at layer ℓ+1 from the layer-ℓ ``state`` (all its dependencies)."""
    corr = correlator(name)
    out = np.zeros((N,) * len(corr.output))
    terms = [(t, _numeric_coeff(t.coeff, values)) for d in diagrams(name) for t in d.terms]
    for idx in itertools.product(range(N), repeat=len(corr.output)):
        alpha = dict(zip(corr.output, idx))
        try:
            out[idx] = sum(evaluate_term(t, alpha, state, cache, c) for t, c in terms)
        except ActivationError as exc:
            raise ActivationError(
                f"{name}{[cache.original(i) for i in idx]} is not defined for "
                f"{cache.act.name!r}: {exc} The recursion needs this product of distributional "
                "derivatives (kinks at coinciding samples). Use distinct inputs for these "
                "entries, or a smooth activation such as softplus with a large beta.") from None
    return out


def first_layer(network: Network, x: np.ndarray, names) -> dict:
    """Layer-1 state: exact K, Θ (:func:`feyntk.numbers.driver.first_kernels`); every 1/n
    tensor vanishes."""
    K, Theta = first_kernels(network, x)
    N = x.shape[0]
    exact = {"K": K, "Theta": Theta}
    return {n: exact[n] if n in exact else np.zeros((N,) * len(correlator(n).output))
            for n in names}


def state_bytes(closure, N: int) -> int:
    """Bytes of two layers of states of every statistic in ``closure`` over N samples."""
    return array_bytes([len(correlator(n).output) for n in closure], N, copies=2)


@dataclass
class OracleStep:
    """The numpy oracle behind :class:`feyntk.numbers.driver.LayerStep`: every statistic of
    ``closure`` by :func:`step`, blobs integrated by a fresh :class:`BlobCache` per layer."""

    closure: tuple[str, ...]
    form: str
    act: Activation
    report: QuadratureReport | None = None
    fine: bool = False
    originals: tuple[int, ...] | None = None

    def memory(self, N: int) -> tuple[int, str]:
        return state_bytes(self.closure, N), (f"layer states of {', '.join(self.closure)}; "
                                              f"{driver.RANK4}")

    def start(self, network: Network, x: np.ndarray) -> dict:
        return first_layer(network, x, self.closure)

    def step(self, state: dict, hp: Hyper) -> dict:
        cache = BlobCache(self.act, state["K"], self.form, report=self.report, fine=self.fine,
                          originals=self.originals)
        N = state["K"].shape[0]
        values = hp.symbols()
        return {n: step(n, state, cache, values, N) for n in self.closure}


def evaluate(network: Network, inputs, names, layer: int | None = None, *,
             form: str = "auto", max_memory_bytes: int | None = None,
             report: QuadratureReport | None = None,
             fine: bool = False) -> dict[str, np.ndarray]:
    """Evaluate statistics ``names`` at ``layer`` (default L) by the derived recursions with the
    numpy oracle: :func:`feyntk.numbers.driver.evaluate` (arguments, refusals and the treatment
    of repeated inputs there) with ``backend="numpy"``."""
    return driver.evaluate(network, inputs, names, layer, form=form, backend="numpy",
                           max_memory_bytes=max_memory_bytes, report=report, fine=fine)


def _evaluate(network: Network, x: np.ndarray, names, layer: int | None = None, *,
              form: str = "auto", max_memory_bytes: int | None = None,
              report: QuadratureReport | None = None, fine: bool = False,
              originals: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """:func:`evaluate` on the inputs as given (``originals``: their indices in the caller's
    inputs, for error messages)."""
    x, layer, closure, form = driver.prepare(network, x, names, layer, form)
    return driver.evaluate_as_given(network, x, names, layer, closure, form, "numpy",
                                    max_memory_bytes, report=report, fine=fine,
                                    originals=originals)
