"""Two-sample tables ``E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)]`` for all pairs of N samples
(:func:`pair_table`): closed forms (:mod:`.closed`), Mehler's expansion (:mod:`.pairs`) or the
polar rule (:func:`~feyntk.numbers.gaussian.adaptive.expect`)."""

from __future__ import annotations

import numpy as np

from feyntk.errors import DegenerateKernelError
from feyntk.numbers.gaussian.adaptive import expect
from feyntk.numbers.gaussian.closed import _closed_pair
from feyntk.numbers.gaussian.factors import eigen_directions
from feyntk.numbers.gaussian.pairs import mehler_pairs
from feyntk.numbers.gaussian.report import RTOL, Estimate
from feyntk.spec.activation import Activation, with_derivatives


def check_kinks_at_zero_variance(act: Activation, ks: tuple[int, ...], K: np.ndarray,
                                 labels) -> None:
    """A deterministic z = 0 sitting exactly on a jump of σ^{(k)} has no defined value."""
    zero = np.nonzero(np.diag(K) <= 1e-300)[0]
    if not len(zero):
        return
    for k in ks:
        # σ^{(k)} is undefined at 0 if it holds a delta there or jumps there (then σ^{(k+1)}
        # holds an order-0 delta at 0)
        dist = with_derivatives(act, "distributional")  # a jump stays a jump when σ'' = 0
        here = [t for t in dist.derivative(k).deltas if t.point == 0.0] + [
            t for t in dist.derivative(k + 1).deltas if t.point == 0.0 and t.order == 0]
        if here:
            names = [labels[i] if labels is not None else int(i) for i in zero]
            raise DegenerateKernelError(
                f"inputs {names} have zero preactivation variance (K_aa = 0, e.g. a zero input "
                f"with C_b = 0), so z sits exactly on the kink of {act.name!r} at 0 and "
                f"σ^({k})(0) is undefined. Remove or perturb these inputs, or use C_b > 0.")


def pair_table(act: Activation, K, k1: int = 0, k2: int | None = None, *,
               method: str = "auto", rtol: float = RTOL, labels=None) -> Estimate:
    """``E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)]_K`` for all a, b as an (N, N) table.

    Only the regular part of each derivative is integrated (for relu, σ' = step); callers
    that need delta contributions must integrate them separately.

    Args:
        act: the activation.
        K: (N, N) covariance of the preactivations.
        k1, k2: derivative orders (k2 defaults to k1); for k1 ≠ k2 every ordered pair is
            integrated (the table is not symmetric).
        method: ``"auto"`` (closed form when one exists, else quadrature), ``"closed"``,
            ``"quadrature"`` (smooth σ: Mehler's expansion, :mod:`.pairs`, with the polar
            rule for the pairs it does not resolve; kinked σ: the polar rule) or
            ``"polar"`` (the 2-d polar rule of :func:`expect` for every pair: the oracle).
        labels: names of the samples for error messages (default: their indices).
    """
    k2 = k1 if k2 is None else k2
    K = np.asarray(K, dtype=float)
    N = K.shape[0]
    check_kinks_at_zero_variance(act, (k1, k2), K, labels)
    # pairs (a ≤ b) of a symmetric table, every ordered pair (a, b) of an asymmetric one
    iu = np.triu_indices(N) if k1 == k2 else tuple(np.indices((N, N)).reshape(2, -1))
    Kaa, Kbb, Kab = K[iu[0], iu[0]], K[iu[1], iu[1]], K[iu]
    value = err = None
    if method in ("auto", "closed"):
        value = _closed_pair(act, k1, k2, Kaa, Kbb, Kab)
        if value is not None:
            err = np.zeros_like(value)
        elif method == "closed":
            raise NotImplementedError(
                f"no closed form for E[σ^({k1}) σ^({k2})] of {act.name!r}")
    if value is None:
        f1, f2 = act.numpy(k1), act.numpy(k2)
        cov = np.stack([np.stack([Kaa, Kab], -1), np.stack([Kab, Kbb], -1)], -2)
        eigen_directions(cov)  # the refusals of expect (finite, PSD) for every pair
        todo = np.ones(len(Kab), bool)
        value, err = np.empty(len(Kab)), np.empty(len(Kab))
        if method != "polar" and act.is_smooth:  # Mehler's expansion, all pairs at once
            v, e, ok = mehler_pairs(f1, f2, np.diagonal(K), iu[0], iu[1], Kab, same=k1 == k2)
            value[ok], err[ok], todo = v[ok], e[ok], ~ok

        def integrand(z):
            with np.errstate(over="ignore", under="ignore"):
                return f1(z[:, 0]) * f2(z[:, 1])

        if np.any(todo):  # the 2-d polar rule (kinked σ, or samples Mehler did not resolve)
            est = expect(integrand, cov[todo], rtol=rtol, kinks=act.kinks)
            value[todo], err[todo] = est.value, est.error
    V = np.empty((N, N))
    E = np.empty((N, N))
    V[iu] = value
    E[iu] = err
    if k1 == k2:
        V[iu[1], iu[0]] = value
        E[iu[1], iu[0]] = err
    if not np.all(np.isfinite(V)):
        raise DegenerateKernelError(
            f"Gaussian expectation of {act.name!r} is not finite for this kernel "
            f"(max |K| = {np.abs(K).max():.3g}); the activation may grow too fast")
    return Estimate(V, E)
