"""Gaussian expectations of blobs whose factors are distributions (kinked activations).

For relu and other activations with kinks, σ'' = δ and higher derivatives are derivatives of
deltas (MATH.md §4.4). A blob on one neuron is ``⟨Π_s D_s(z_s) · w(z)⟩_K`` where for each distinct
sample s, ``D_s = d^{j_s}/dz^{j_s} Π_m σ^{(k_m)}(z)`` (formed as one product, then differentiated:
:meth:`~feyntk.spec.activation.Activation.blob_factor`) is a regular function plus
``Σ c δ^{(q)}(z − p)``, and w is an optional smooth weight (the Hermite polynomial of the
inverse-metric form). Each choice of a delta term on a set D of samples is a lower-dimensional
Gaussian integral:

    ⟨Π_{a∈D} δ^{(q_a)}(z_a − p_a) G(z_R)⟩ = ρ_D(p) · E[G(z_R) · He_{D^q}(z) | z_D = p]

(Gaussian integration by parts: ∂_a^q ρ = (−1)^q He_{a…a} ρ with the Hermite polynomials of
K^{-1} restricted to the blob's samples). These are the relu values that softplus with sharpness
β → ∞ converges to; where a product is ill-defined (δ·δ, δ'·jump at one sample) the entry is
refused with :class:`~feyntk.errors.ActivationError`.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

from feyntk.errors import DegenerateKernelError
from feyntk.numbers.gaussian import expect, invertible
from feyntk.spec.activation import Activation, _lambdify_cached


def hermite_index(y: np.ndarray, P: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    """He_{idx}(z) for y = K^{-1} z (shape (B, d, n)) and P = K^{-1}: recursive definition
    He_{i,rest} = y_i He_{rest} − Σ_m P_{i,rest_m} He_{rest without m}."""
    if not idx:
        return np.ones(y.shape[:1] + y.shape[2:])
    i, rest = idx[0], idx[1:]
    out = y[:, i] * hermite_index(y, P, rest)
    for m, r in enumerate(rest):
        out = out - P[i, r] * hermite_index(y, P, rest[:m] + rest[m + 1:])
    return out


def blob_expectation(act: Activation, K: np.ndarray, groups, weight: Callable | None = None,
                     rtol: float = 1e-11, labels=None, report=None, fine: bool | int = False):
    """``⟨Π_s D_s(z_s) · weight(z)⟩_K`` for distinct samples.

    Args:
        act: the activation.
        K: covariance over the samples named in ``groups`` (full (N, N) matrix).
        groups: ``((sample, ks, j), ...)`` with distinct samples: D_s = d^j/dz^j Π σ^{(k)}.
        weight: optional smooth function of z (B, d, n) -> (B, ..., n) (Hermite polynomials).
        report: a :class:`~feyntk.numbers.gaussian.QuadratureReport` where the integrals that
            stop at their rule's largest level unconverged are recorded (passed to every
            :func:`~feyntk.numbers.gaussian.expect`), or None.
        fine: the rules' caps doubled this many times (``True``: once; negative: halved), see
            :func:`~feyntk.numbers.gaussian.kinked_levels` and
            :func:`~feyntk.numbers.gaussian.tensor_levels`.
    Returns:
        a float, or an array of weight's middle shape.
    """
    S = [g[0] for g in groups]
    KS = K[np.ix_(S, S)]
    d = len(S)
    parts = [act.blob_factor(tuple(ks), j) for _, ks, j in groups]
    options = []
    for part in parts:
        opts = [("reg", _lambdify_cached(part.regular, "numpy"))] if part.regular != 0 else []
        opts += [("delta", t.point, t.order, t.coeff) for t in part.deltas]
        options.append(opts)
    total = 0.0
    for combo in itertools.product(*options):
        D = [i for i, o in enumerate(combo) if o[0] == "delta"]
        R = [i for i, o in enumerate(combo) if o[0] == "reg"]
        if not D:
            fns = [combo[i][1] for i in R]

            def f(z, fns=fns):
                val = np.ones((z.shape[0], z.shape[-1]))
                for i, fn in enumerate(fns):
                    val = val * fn(z[:, i])
                if weight is None:
                    return val
                wt = weight(z)
                return val[:, None, :] * wt if wt.ndim == 3 else val * wt

            total = total + expect(f, KS, rtol=rtol, kinks=act.kinks, report=report,
                                   fine=fine).value
            continue
        total = total + _delta_term(combo, D, R, KS, weight, rtol, S, labels, act.kinks,
                                    report, fine)
    return total


def _delta_term(combo, D, R, KS, weight, rtol, S, labels, kinks, report=None, fine=0):
    KDD = KS[np.ix_(D, D)]
    w = np.linalg.eigvalsh(KDD)
    if w.min() <= 1e-12 * max(w.max(), 1e-300):
        names = [labels[S[i]] if labels else S[i] for i in D]
        raise DegenerateKernelError(
            f"delta functions of a kinked activation sit at samples {names} whose "
            "preactivations are perfectly correlated (duplicate or zero inputs): the Gaussian "
            "integral diverges. Remove the duplicates.")
    p = np.array([combo[i][1] for i in D])
    q = tuple(i for i in D for _ in range(combo[i][2]))
    coeff = np.prod([combo[i][3] for i in D])
    KDDi = np.linalg.inv(KDD)
    rho = np.exp(-0.5 * p @ KDDi @ p) / np.sqrt((2 * np.pi) ** len(D) * np.linalg.det(KDD))
    P = None
    if q:
        if not invertible(KS)[0]:
            raise DegenerateKernelError(
                "a derivative of a delta function needs the blob's kernel to be invertible; "
                "its samples are duplicates or collinear inputs. Remove the duplicates.")
        P = np.linalg.inv(KS)
    A = KS[np.ix_(R, D)] @ KDDi if R else np.zeros((0, len(D)))
    mu = A @ p
    Sigma = KS[np.ix_(R, R)] - A @ KS[np.ix_(D, R)] if R else None
    fns = [combo[i][1] for i in R]
    dtot = KS.shape[0]

    def f(wz):  # wz: (B, |R|, n) centred conditional variables
        B, n = wz.shape[0], wz.shape[-1]
        z = np.empty((B, dtot, n))
        for k, i in enumerate(D):
            z[:, i] = p[k]
        for k, i in enumerate(R):
            z[:, i] = mu[k] + wz[:, k]
        val = np.ones((B, n))
        for k, fn in enumerate(fns):
            val = val * fn(z[:, R[k]])
        if q:
            val = val * hermite_index(np.einsum("ij,bjn->bin", P, z), P, q)
        if weight is not None:
            wt = weight(z)
            val = val[:, None, :] * wt if wt.ndim == 3 else val * wt
        return val

    if R:
        E = expect(f, Sigma, rtol=rtol, kinks=kinks, shift=mu, report=report,
                   fine=fine).value
    else:
        out = f(np.zeros((1, 0, 1)))
        E = out[0, ..., 0]
    return coeff * rho * E
