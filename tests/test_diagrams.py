"""The diagram engine: brute-force cumulants, symmetry factors, selection rules, counts."""

import math

import numpy as np
import pytest
import sympy as sp

from feyntk.diagrams.diagram import candidates, correlator, diagrams
from feyntk.diagrams.expand import expand, perfect_matchings
from feyntk.diagrams.fields import C_W, C_b, CORRELATORS, RATIO, Correlator, lam_W, lam_b
from feyntk.diagrams.generate import candidate_terms, generate, set_partitions
from feyntk.diagrams.select import Selector
from feyntk.numbers.evaluate import BlobCache, evaluate_term
from feyntk.spec.activation import get_activation

NAMES = tuple(CORRELATORS)
VALUES = {C_W: 1.3, C_b: 0.2, lam_W: 0.7, lam_b: 0.4, RATIO: 1.6}


def _symmetrise(name, T):
    """Impose the index symmetries the definitions of MATH.md §3 imply."""
    perms = {"V": [(1, 0, 2, 3), (0, 1, 3, 2), (2, 3, 0, 1)], "A": [(1, 0, 2, 3), (2, 3, 0, 1)],
             "B": [(1, 0, 3, 2), (2, 3, 0, 1)], "D": [(1, 0, 2, 3), (0, 1, 3, 2)],
             "F": [(2, 3, 0, 1)], "P": [(0, 2, 1, 3)], "Q": [], "R": [(0, 1, 3, 2)],
             "S": [(1, 0, 3, 2)], "T": [(1, 0, 3, 2)], "U": [(1, 0, 3, 2)]}[name]
    group = {tuple(range(4))}
    while True:
        new = {tuple(g[i] for i in p) for g in group for p in perms} | group
        if new == group:
            break
        group = new
    return sum(np.transpose(T, g) for g in group) / len(group)


def _random_state(N, seed=0, symmetric=True):
    """Random lower-layer tensors: the recursions are identities in these values."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(N, N))
    K = A @ A.T / N + 0.5 * np.eye(N)
    B = rng.normal(size=(N, N))
    state = {"K": K, "Theta": B @ B.T / N + 0.3 * np.eye(N)}
    for name in ("K1", "Theta1"):
        M = rng.normal(size=(N, N))
        state[name] = M + M.T
    for name in ("V", "A", "B", "D", "F", "P", "Q", "R", "S", "T", "U"):
        T = rng.normal(size=(N,) * 4)
        state[name] = _symmetrise(name, T) if symmetric else T
    return state


def _value(cands, alpha, state, cache):
    return sum(evaluate_term(t, alpha, state, cache, float(t.coeff.subs(VALUES)))
               for c in cands for t in candidate_terms(c))


def _moment(fields, order, state, cache, alpha):
    """E[Π fields] at one order, from ALL candidates (no connectedness): brute force."""
    corr = Correlator(tuple(fields), order)
    sel = Selector().without("connected")
    cands = [cand for c in expand(corr) for cand in generate(c, order) if sel.keep(cand)]
    return _value(cands, alpha, state, cache)


@pytest.mark.parametrize("name", ["K1", "V", "Theta1", "A", "B", "D", "F", "P", "Q"])
def test_connected_diagrams_equal_moebius_cumulant_of_brute_force_moments(name):
    """Sum of connected diagrams == joint cumulant from all Wick contractions (Möbius)."""
    N = 2
    state = _random_state(N, seed=3, symmetric=False)  # an identity even without symmetries
    cache = BlobCache(get_activation("tanh"), state["K"], "derivative")
    corr = correlator(name)
    fields = corr.fields
    rng = np.random.default_rng(1)
    for _ in range(3):
        idx = rng.integers(0, N, size=len(corr.output))
        alpha = dict(zip(corr.output, idx))
        total = 0.0
        for part in set_partitions(list(range(len(fields)))):
            mu = (-1) ** (len(part) - 1) * math.factorial(len(part) - 1)
            # first-order coefficient of a product of moments (m0 + m1/n)
            m = [(_moment([fields[i] for i in B], 0, state, cache, alpha),
                  _moment([fields[i] for i in B], 1, state, cache, alpha)) for B in part]
            first = sum(m[j][1] * np.prod([m[k][0] for k in range(len(m)) if k != j])
                        for j in range(len(m)))
            total += mu * first
        engine = _value(candidates(name), alpha, state, cache)
        assert engine == pytest.approx(total, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_symmetry_factor_from_automorphisms_equals_brute_force_weight(name):
    for d in diagrams(name):
        assert d.symmetry == d.weight, (name, d.kind)


@pytest.mark.parametrize("name", NAMES)
def test_grouped_diagrams_equal_sum_of_labelled_candidates(name):
    N = 2
    state = _random_state(N, seed=7)
    cache = BlobCache(get_activation("gelu"), state["K"], "derivative")
    corr = correlator(name)
    for idx in [(0,) * len(corr.output), (0, 1) * (len(corr.output) // 2)]:
        alpha = dict(zip(corr.output, idx))
        grouped = sum(evaluate_term(t, alpha, state, cache, float(t.coeff.subs(VALUES)))
                      for d in diagrams(name) for t in d.terms)
        assert grouped == pytest.approx(_value(candidates(name), alpha, state, cache),
                                        rel=1e-12, abs=1e-14)


def test_perfect_matchings_and_partitions_counts():
    assert len(perfect_matchings(list(range(6)))) == 15  # (2s-1)!!
    assert [len(set_partitions(list(range(n)))) for n in range(6)] == [1, 1, 2, 5, 15, 52]


# -- selection rules, each on a case where it matters ---------------------------------------
def _raw(name):
    corr = correlator(name)
    return [cand for c in expand(corr) for cand in generate(c, corr.order)]


def test_rule_connected_removes_disconnected_products():
    keep = Selector().without("connected")
    dropped = [c for c in _raw("V") if keep.keep(c) and not Selector().keep(c)]
    # e.g. the Gaussian product of the two bias pairs: a disconnected piece of E[zzzz]
    assert dropped and all(Selector().why_dropped(c) == "connected" for c in dropped)
    assert any(c.insertion is not None and c.insertion.name == "K1" for c in dropped)


def test_rule_neuron_deltas_picks_the_delta_term():
    # V between two blobs: of the 3 pairings only the one with both legs of a pair on the
    # same blob survives for each leg assignment
    raw = [c for c in _raw("V") if c.insertion is not None and c.insertion.name == "V"
           and len(c.blocks) == 2]
    kept = [c for c in raw if Selector().keep(c)]
    assert len(kept) == 6 and len(raw) > len(kept)
    assert {Selector().why_dropped(c) for c in raw if not Selector().keep(c)} >= {
        "neuron_deltas"}


def test_rule_zero_mean_drops_unlinked_offdiagonal_ntk():
    # P: Ĥ_{jk}Ĥ_{jk} on two blobs with one Ĥ consumed by a D/F vertex leaves an off-diagonal
    # Ĥ with zero mean; a dĤ that no P/Q vertex consumes has zero mean too
    from feyntk.diagrams.fields import Low

    dropped = [c for c in _raw("P") if Selector().why_dropped(c) == "zero_mean"]
    assert dropped
    for c in dropped:
        left = [f for i, f in enumerate(c.contraction.factors)
                if isinstance(f, Low) and i not in c.consumed()]
        assert any(f.kind != "H" or len({c.block_of_var(v) for v in f.vars}) == 2 for f in left)
    assert any(c.insertion is not None and c.insertion.name == "DF" for c in dropped)


# -- diagram counts against arXiv 2508.11522 ------------------------------------------------
# As drawn in the paper (App. E). REFERENCES.md lists A as 4 "counting the F^{(l+1)}-like term";
# the paper itself draws and prints 5 diagrams for A, and the F^{(l+1)}-like term belongs to Q.
PAPER_COUNTS = {"V": 2, "K1": 2, "F": 2, "B": 2, "D": 3, "P": 3, "A": 5, "Q": 4, "Theta1": 5}


def _paper_grouping(name):
    """Our diagrams merged the way the paper draws them.

    * The paper's NTK vertex 'λ_W σσ + C_W Θ σ'σ'' is one vertex: diagrams that differ only in
      which of the two terms of Ĥ's layer map an external NTK uses are one paper diagram.
    * Q: the paper writes the two diagrams of the dNTK map's λ_W·δ terms (one Gaussian, one F
      link) as a single term, (λ_W/C_W)·F^{(l+1)}.
    """
    keys = set()
    for d in diagrams(name):
        cand = d.candidate
        terms = tuple("Hvertex" if t.name in ("lambda_W", "chain") else t.name
                      for t in cand.contraction.terms)
        if any(t.startswith("lambda_W.") for t in terms):
            keys.add(("F^(l+1)",))
            continue
        consumed = tuple(sorted(cand.contraction.factors[i].vars[0].split(".")[0]
                                for i in cand.consumed()))  # which external NTK is linked
        keys.add((d.kind, terms, tuple(sorted(len(b) for b in cand.blocks)), consumed))
    return len(keys)


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_diagram_counts_against_the_paper(name):
    assert _paper_grouping(name) == PAPER_COUNTS[name]
