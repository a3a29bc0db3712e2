"""The engine's recursions against the published ones, typed in here as oracles.

Sources: PDLT ch. 4 (K¹, V) and ch. 8 (A, B, D, F); arXiv 2508.11522 App. E (D, F, A, B, P, Q,
R, S, T, U) and eq. 78 (Θ¹). The paper uses λ_W = 1, λ_b = 0, C_b = 0 and puts preactivation samples first
in D and F (REFERENCES.md): D^{MATH}_{abcd} = D^{paper}_{cdab}, F^{MATH}_{abcd} = F^{paper}_{badc}.
The oracles below are written in MATH.md's order after that conversion, with the paper's
misprints corrected where marked; ``test_published_misprint_*`` show what the printed versions
would give and what real sampled networks say.

Gaussian integrals here use a separate, plain product-rule implementation; the paper's F is
used in its printed inverse-metric form with the inverse of the *full* N×N kernel.
"""

import itertools

import numpy as np
import pytest

import feyntk
from feyntk.diagrams.fields import C_W, C_b, RATIO, lam_W, lam_b
from feyntk.numbers.evaluate import BlobCache, step
from feyntk.numbers.gaussian import expect
from feyntk.spec.activation import get_activation

N = 3  # every sample pattern with up to three distinct inputs; N = 2 for the slow recursions
CW, R_ = 1.37, 1.6  # C_W of layer ℓ+1 and n_ℓ/n_{ℓ-1}
PAPER = {C_W: CW, C_b: 0.0, lam_W: 1.0, lam_b: 0.0, RATIO: R_}


def _state(seed=4, n=N):
    from test_diagrams import _random_state

    return _random_state(n, seed=seed)


class Oracle:
    """⟨∂_{b…} Π σ^{(k)}(z_s)⟩ by the product rule, integrals by Gauss–Hermite."""

    def __init__(self, act, K):
        self.act, self.K, self.memo = act, K, {}

    def E(self, factors, derivs=()):
        factors = tuple(sorted(factors))
        if derivs:
            b, rest = derivs[0], derivs[1:]
            out = 0.0
            for m, (k, s) in enumerate(factors):
                if s == b:
                    out += self.E(factors[:m] + ((k + 1, s),) + factors[m + 1:], rest)
            return out
        if factors not in self.memo:
            S = sorted({s for _, s in factors})
            fs = [(S.index(s), self.act.numpy(k)) for k, s in factors]
            f = lambda z: np.prod([fn(z[:, i]) for i, fn in fs], axis=0)
            self.memo[factors] = float(expect(f, self.K[np.ix_(S, S)], rtol=1e-12).value)
        return self.memo[factors]

    def Ez(self, factors, a):
        """⟨(Π σ) z_a⟩ (for the inverse-metric form)."""
        key = ("z", tuple(sorted(factors)), a)
        if key not in self.memo:
            self.memo[key] = self._Ez(factors, a)
        return self.memo[key]

    def _Ez(self, factors, a):
        S = sorted({s for _, s in factors} | {a})
        fs = [(S.index(s), self.act.numpy(k)) for k, s in factors]
        f = lambda z: np.prod([fn(z[:, i]) for i, fn in fs], axis=0) * z[:, S.index(a)]
        return float(expect(f, self.K[np.ix_(S, S)], rtol=1e-13).value)


def s(a, k=0):
    return (k, a)


def oracle(name, st, o: Oracle):
    """Published recursions (MATH.md order), paper conventions λ_W = 1, λ_b = C_b = 0."""
    E, Th, r, cw = o.E, st["Theta"], R_, CW
    N = st["K"].shape[0]
    Kinv = np.linalg.inv(st["K"])
    rng = range(N)

    def Om(a, b):  # the paper's NTK vertex Ω_ab = σσ + C_W Θ_ab σ'σ'
        return [((1.0, [s(a), s(b)])), (cw * Th[a, b], [s(a, 1), s(b, 1)])]

    def EOm(a, b, derivs=(), extra=()):
        return sum(c * E(fs + list(extra), derivs) for c, fs in Om(a, b))

    def cov_Om(a, b, c, d, other=None):
        other = other or Om(c, d)
        return sum(c1 * c2 * (E(f1 + f2) - E(f1) * E(f2)) for c1, f1 in Om(a, b)
                   for c2, f2 in other)

    out = np.zeros((N,) * (2 if name in ("K1", "Theta1") else 4))
    for idx in itertools.product(rng, repeat=out.ndim):
        if name == "V":
            a1, a2, a3, a4 = idx
            v = cw**2 * (E([s(a1), s(a2), s(a3), s(a4)]) - E([s(a1), s(a2)]) * E([s(a3), s(a4)]))
            v += r * cw**2 / 4 * sum(st["V"][b] * E([s(a1), s(a2)], b[:2]) * E([s(a3), s(a4)], b[2:])
                                     for b in itertools.product(rng, repeat=4))
        elif name == "K1":
            a1, a2 = idx
            v = r * cw / 2 * sum(st["K1"][b] * E([s(a1), s(a2)], b)
                                 for b in itertools.product(rng, repeat=2))
            v += r * cw / 8 * sum(st["V"][b] * E([s(a1), s(a2)], b)
                                  for b in itertools.product(rng, repeat=4))
        elif name == "B":  # B[p,q,r,s]: NTKs (p,r) and (q,s)
            p, q, rr, ss = idx
            v = cw**2 * Th[p, rr] * Th[q, ss] * E([s(p, 1), s(q, 1), s(rr, 1), s(ss, 1)])
            v += r * cw**2 * E([s(p, 1), s(q, 1)]) * E([s(rr, 1), s(ss, 1)]) * st["B"][p, q, rr, ss]
        elif name == "F":  # F[a,b,c,d]: NTK (a,c), z b with a, z d with c; paper eq. 5
            a, b, c, d = idx
            v = cw**2 * E([s(a, 1), s(c, 1), s(b), s(d)]) * Th[a, c]
            left = np.array([o.Ez([s(b), s(a, 1)], x) for x in rng]) @ Kinv  # Σ_x ⟨… z_x⟩ K^{xg}
            right = np.array([o.Ez([s(d), s(c, 1)], y) for y in rng]) @ Kinv
            v += r * cw**2 * np.einsum("g,h,gh->", left, right, st["F"][a, :, c, :])
        elif name == "D":  # D[a1,a2,a3,a4]: NTK (a1,a2), z (a3,a4); paper eqs. 49-50
            a1, a2, a3, a4 = idx
            v = cw * sum(c * (E(f + [s(a3), s(a4)]) - E(f) * E([s(a3), s(a4)]))
                         for c, f in Om(a1, a2))
            v += r * cw / 4 * sum(st["V"][b] * E([s(a3), s(a4)], b[:2]) * EOm(a1, a2, b[2:])
                                  for b in itertools.product(rng, repeat=4))  # misprint fixed
            v += r * cw**2 / 2 * sum(E([s(a3), s(a4)], b) * E([s(a1, 1), s(a2, 1)])
                                     * st["D"][a1, a2, b[0], b[1]]
                                     for b in itertools.product(rng, repeat=2))
        elif name == "A":  # paper eqs. 52-53 with its two misprints fixed
            a1, a2, a3, a4 = idx
            v = cov_Om(a1, a2, a3, a4)
            v += r / 4 * sum(st["V"][b] * EOm(a1, a2, b[:2]) * EOm(a3, a4, b[2:])
                             for b in itertools.product(rng, repeat=4))
            v += r * cw / 2 * sum(EOm(a1, a2, b) * E([s(a3, 1), s(a4, 1)])
                                  * st["D"][a3, a4, b[0], b[1]]
                                  for b in itertools.product(rng, repeat=2))
            v += r * cw / 2 * sum(EOm(a3, a4, b) * E([s(a1, 1), s(a2, 1)])
                                  * st["D"][a1, a2, b[0], b[1]]
                                  for b in itertools.product(rng, repeat=2))
            v += r * cw**2 * E([s(a1, 1), s(a2, 1)]) * E([s(a3, 1), s(a4, 1)]) * st["A"][idx]
        elif name == "Theta1":  # eq. 78
            a1, a2 = idx
            v = r * cw * st["Theta1"][a1, a2] * E([s(a1, 1), s(a2, 1)])
            v += r / 2 * sum(st["K1"][b] * EOm(a1, a2, b) for b in itertools.product(rng, repeat=2))
            v += r / 8 * sum(st["V"][b] * EOm(a1, a2, b) for b in itertools.product(rng, repeat=4))
            v += r * cw / 2 * sum(E([s(a1, 1), s(a2, 1)], b) * st["D"][a1, a2, b[0], b[1]]
                                  for b in itertools.product(rng, repeat=2))
            v += r * cw * sum(E([s(a1, 1), s(a2, 1)], b) * st["F"][a1, b[0], a2, b[1]]
                              for b in itertools.product(rng, repeat=2))
        elif name in ("P", "P_printed"):  # eqs. 56-58, ⟨σ''_0 σ_3⟩ corrected
            a0, a1, a2, a3 = idx
            link = a0 if name == "P_printed" else a3
            v = cw**2 * Th[a0, a1] * Th[a0, a2] * E([s(a1, 1), s(a2, 1), s(a0, 2), s(a3)])
            v += r * cw**2 * E([s(a1, 1), s(a2, 1)]) * E([s(a0, 2), s(link)]) * st["B"][a0, a0, a1, a2]
            v += r * cw**2 * E([s(a1, 1), s(a2, 1)]) * sum(
                E([s(a0, 1), s(a3)], (b,)) * st["P"][a0, a1, a2, b] for b in rng)
        elif name == "Q":  # eqs. 59-60: first term (λ_W/C_W) F^{(ℓ+1)}, in MATH order
            a0, a1, a2, a3 = idx
            F_next = cw**2 * E([s(a0, 1), s(a2, 1), s(a1), s(a3)]) * Th[a0, a2] + r * cw**2 * sum(
                st["F"][a0, g, a2, h] * E([s(a0, 1), s(a1)], (g,)) * E([s(a2, 1), s(a3)], (h,))
                for g, h in itertools.product(rng, repeat=2))
            v = F_next / cw
            v += cw**2 * Th[a0, a1] * Th[a0, a2] * E([s(a0, 2), s(a1, 1), s(a2, 1), s(a3)])
            v += r * cw**2 * Th[a0, a1] * sum(
                E([s(a0, 2), s(a1, 1)], (l1,)) * E([s(a2, 1), s(a3)], (l3,)) * st["F"][a0, l1, a2, l3]
                for l1, l3 in itertools.product(rng, repeat=2))
            v += r * cw**2 * E([s(a0, 1), s(a1, 1)]) * sum(
                E([s(a2, 1), s(a3)], (b,)) * st["Q"][a0, a1, a2, b] for b in rng)
        elif name in ("R", "R_printed"):  # eqs. 61-63; terms 4-6 printed with σ_1 for σ'_1
            a0, a1, a2, a3 = idx
            k1 = 0 if name == "R_printed" else 1
            v = cw * Th[a0, a2] * Th[a0, a3] * E([s(a0, 2), s(a1), s(a2, 1), s(a3, 1)])
            v += r * cw * E([s(a0, 2), s(a1)]) * E([s(a2, 1), s(a3, 1)]) * st["B"][a0, a0, a2, a3]
            v += r * cw * E([s(a2, 1), s(a3, 1)]) * sum(
                E([s(a0, 1), s(a1)], (l1,)) * st["P"][a0, a2, a3, l1] for l1 in rng)
            v += cw**2 * Th[a0, a1] * Th[a0, a2] * Th[a0, a3] * E(
                [s(a0, 3), s(a1, k1), s(a2, 1), s(a3, 1)])
            v += r * cw**2 * Th[a0, a1] * E([s(a0, 3), s(a1, k1)]) * E(
                [s(a2, 1), s(a3, 1)]) * st["B"][a0, a0, a2, a3]
            v += r * cw**2 * Th[a0, a1] * E([s(a2, 1), s(a3, 1)]) * sum(
                E([s(a0, 2), s(a1, k1)], (l1,)) * st["P"][a0, a2, a3, l1] for l1 in rng)
            v += r * cw**2 * E([s(a0, 1), s(a1, 1)]) * E([s(a2, 1), s(a3, 1)]) * st["R"][idx]
        elif name == "S":  # eqs. 64-66; term 3 is a one-blob term (1/n_l, not 1/n_{l-1})
            a1, a2, a3, a4 = idx
            v = cw * E([s(a1, 1), s(a2, 1), s(a3, 1), s(a4, 1)]) * Th[a1, a3] * Th[a2, a4]
            v += r * cw * E([s(a1, 1), s(a2, 1)]) * E([s(a3, 1), s(a4, 1)]) * st["B"][idx]
            v += cw**2 * Th[a1, a2] * Th[a1, a3] * Th[a2, a4] * E(
                [s(a1, 2), s(a2, 2), s(a3, 1), s(a4, 1)])
            v += r * cw**2 * Th[a1, a2] * E([s(a1, 2), s(a2, 2)]) * E(
                [s(a3, 1), s(a4, 1)]) * st["B"][idx]
            v += r * cw**2 * E([s(a1, 1), s(a2, 1)]) * E([s(a3, 1), s(a4, 1)]) * st["S"][idx]
        elif name == "T":  # eqs. 67-68 (13 terms), paper T_{1324} = MATH T[1,2,3,4]
            a1, a2, a3, a4 = idx

            def F(p_, q_, r_, s_):  # the paper's F_{pqrs}: z p with NTK q, z r with NTK s
                return st["F"][q_, p_, s_, r_]

            Q = st["Q"]
            d2 = list(itertools.product(rng, repeat=2))
            v = E([s(a1, 1), s(a3), s(a2, 1), s(a4)]) * Th[a1, a2]
            v += r * sum(E([s(a1, 1), s(a3)], (l3,)) * E([s(a2, 1), s(a4)], (l4,))
                         * F(l3, a1, l4, a2) for l3, l4 in d2)
            v += cw * Th[a1, a2] * Th[a2, a4] * E([s(a1, 1), s(a3), s(a2, 2), s(a4, 1)])
            v += r * cw * Th[a2, a4] * sum(E([s(a1, 1), s(a3)], (l3,)) * E(
                [s(a2, 2), s(a4, 1)], (l4,)) * F(l3, a1, l4, a2) for l3, l4 in d2)
            v += r * cw * E([s(a2, 1), s(a4, 1)]) * sum(
                E([s(a1, 1), s(a3)], (l3,)) * Q[a2, a4, a1, l3] for l3 in rng)
            v += cw * Th[a1, a2] * Th[a1, a3] * E([s(a1, 2), s(a3, 1), s(a2, 1), s(a4)])
            v += r * cw * Th[a1, a3] * sum(E([s(a1, 2), s(a3, 1)], (l3,)) * E(
                [s(a2, 1), s(a4)], (l4,)) * F(l4, a2, l3, a1) for l3, l4 in d2)
            v += r * cw * E([s(a1, 1), s(a3, 1)]) * sum(
                E([s(a2, 1), s(a4)], (l4,)) * Q[a1, a3, a2, l4] for l4 in rng)
            v += cw**2 * Th[a1, a3] * Th[a2, a4] * Th[a1, a2] * E(
                [s(a1, 2), s(a3, 1), s(a2, 2), s(a4, 1)])
            v += r * cw**2 * Th[a1, a3] * Th[a2, a4] * sum(
                E([s(a1, 2), s(a3, 1)], (l3,)) * E([s(a2, 2), s(a4, 1)], (l4,))
                * F(l3, a1, l4, a2) for l3, l4 in d2)
            v += r * cw**2 * Th[a1, a3] * E([s(a2, 1), s(a4, 1)]) * sum(
                E([s(a1, 2), s(a3, 1)], (l3,)) * Q[a2, a4, a1, l3] for l3 in rng)
            v += r * cw**2 * Th[a2, a4] * E([s(a1, 1), s(a3, 1)]) * sum(
                E([s(a2, 2), s(a4, 1)], (l4,)) * Q[a1, a3, a2, l4] for l4 in rng)
            v += r * cw**2 * E([s(a1, 1), s(a3, 1)]) * E([s(a2, 1), s(a4, 1)]) * st["T"][idx]
        elif name == "U":  # eqs. 69-70, paper U_{1423} = MATH U[1,2,3,4]
            a1, a2, a3, a4 = idx
            v = cw**2 * Th[a1, a2] * Th[a2, a4] * Th[a1, a3] * E(
                [s(a1, 2), s(a4, 1), s(a2, 2), s(a3, 1)])
            v += r * cw**2 * E([s(a1, 1), s(a4, 1)]) * E([s(a2, 1), s(a3, 1)]) * st["U"][idx]
        out[idx] = v
    return out


FAST = ["V", "K1", "B", "F", "Theta1"]
SLOW3 = ["D", "A", "P", "Q", "R", "S", "T", "U"]


@pytest.mark.parametrize("name, n", [(x, 3) for x in FAST] + [(x, 2) for x in SLOW3] + [
    pytest.param(x, 3, marks=pytest.mark.slow) for x in SLOW3])
def test_engine_matches_published_recursion(name, n):
    st = _state(n=n)
    act = get_activation("tanh")
    engine = step(name, st, BlobCache(act, st["K"], "derivative"), PAPER, n)
    np.testing.assert_allclose(engine, oracle(name, st, Oracle(act, st["K"])), rtol=1e-9,
                               atol=1e-11)


def test_published_misprint_P_printed_form_disagrees():
    """The printed P has ⟨σ''_0 σ_0⟩ in its B-link; the engine (and the corrected oracle)
    has ⟨σ''_0 σ_3⟩. They differ whenever α0 ≠ α3; real networks decide in
    ``test_validation_mc.py::test_P_misprint_decided_by_monte_carlo``."""
    st = _state(n=2)
    o = Oracle(get_activation("tanh"), st["K"])
    printed, fixed = oracle("P_printed", st, o), oracle("P", st, o)
    assert np.abs(printed - fixed).max() > 1e-3
    diag = [i for i in itertools.product(range(2), repeat=4) if i[0] == i[3]]
    for i in diag:
        assert printed[i] == pytest.approx(fixed[i], rel=1e-12)


def test_published_misprint_R_printed_form_disagrees():
    """R's C_W² terms are printed with σ_1 where the ddI map gives σ'_1 (the paper's own diagrams
    label that vertex σ‴_j σ'_j); real networks decide in test_validation_mc."""
    st = _state(n=2)
    o = Oracle(get_activation("tanh"), st["K"])
    assert np.abs(oracle("R_printed", st, o) - oracle("R", st, o)).max() > 1e-2
