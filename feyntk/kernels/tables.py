"""Gaussian-expectation tables: every blob pattern over all sample assignments at once.

A table (:class:`feyntk.kernels.lower.Table`) over p labels is filled from *integrals* keyed
by the number d of distinct samples, a local pattern ``LP`` (sorted ``(k, slot)`` with slots
``0..d-1`` the sorted distinct samples) and a Hermite order q. For every d-subset S of the N
samples the integral ``⟨Π σ^{(k)}(z_{S[slot]}) He(z)⟩_{K_S}`` is computed once; the table entry
of a label assignment with d distinct samples is the integral of its subset and pattern.

The quadrature is the oracle's (:func:`feyntk.numbers.gaussian.expect` as called by
:class:`feyntk.numbers.evaluate.BlobCache`), executed for all subsets and patterns of one d
together: the same factor of K_S (:func:`feyntk.numbers.gaussian.factor`; zero directions get
one node), a tensor Gauss–Hermite rule (or the polar rule for 2-d), refined m → 2m per pattern
until two levels agree to ``atol + rtol·|value|``, with the same start and maximum m per rank.
Each pattern keeps the value of its own stopping level, so the numbers agree with the oracle to
rounding.

The integrands are generated kernels (:func:`integrand_source`); σ^{(k)} of all orders and
samples share CSE'd bodies. The numba kernels for d ≥ 3 run on the pivot-ordered variables of
the triangular factor (:func:`_numba_triangular`: σ of sample s evaluated at loop level s, the
innermost loop only sums moments of the last sample's functions, with addition theorems
(:mod:`feyntk.kernels.separable`) in place of transcendental calls), and their columns are
mapped back (:func:`_column_maps`); the JAX kernels for d ≠ 2 follow the same scheme as arrays
(:func:`_jax_triangular`). Tensor-rule kernels take a grid per row, so one call serves all
subsets of one rank at one level.

Common mistakes:
    * A Hermite table entry is masked (zero) where a picked label repeats the sample of an
      earlier label of its blob; the mask follows the blob's label order, never a sorted one.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import sympy as sp

from feyntk.kernels import separable
from feyntk.kernels.memo import LevelMemo, key_of
from feyntk.kernels.printers import PRINTERS, assignments, print_block
from feyntk.numbers.gaussian import relu as relu_closed
from feyntk.numbers.gaussian import (ATOL, POLAR_LEVELS, QuadratureReport,
                                     check_kinks_at_zero_variance, direction_scales, factor,
                                     hermite_rule, invertible,
                                     node_counts, polar_nodes, prune_cuts, require_invertible,
                                     tensor_levels, triangular_directions)
from feyntk.spec.activation import Z, Activation

RTOL = 1e-12
"""Relative tolerance of the adaptive rule (the oracle's ``RTOL_BLOB``)."""



# -- which integrals ------------------------------------------------------------------------
def surjections(p: int, d: int):
    """All maps slots(p) -> 0..d-1 that hit every target."""
    for phi in itertools.product(range(d), repeat=p):
        if len(set(phi)) == d:
            yield phi


def local_pattern(sigs, phi) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((k, phi[s]) for k, s in sigs))


def requests(tables) -> dict[int, list[tuple[tuple, int]]]:
    """Integrals needed by label-space tables: ``{d: [(LP, q), ...]}`` (sorted, deduplicated)."""
    return _requests(tuple(sorted(set(tables), key=lambda t: t.name)))


@functools.lru_cache(maxsize=256)
def _requests(tables: tuple) -> dict[int, list[tuple[tuple, int]]]:
    out: dict[int, set] = {}
    for t in tables:
        for d in range(1, t.p + 1):
            for phi in surjections(t.p, d):
                out.setdefault(d, set()).add((local_pattern(t.sigs, phi), t.legs))
    return {d: sorted(v) for d, v in sorted(out.items())}


def hermite_components(d: int, q: int) -> list[tuple[int, ...]]:
    """Sorted index multisets of an order-q Hermite polynomial in d variables."""
    return list(itertools.combinations_with_replacement(range(d), q))


def layout(d: int, reqs) -> tuple[list[int], list[int]]:
    """Column offset and width of each request in a d-kernel's output."""
    widths = [len(hermite_components(d, q)) if q else 1 for _, q in reqs]
    return [sum(widths[:i]) for i in range(len(widths))], widths


# -- generated integrands ---------------------------------------------------------------------
def _matchings(items):
    """Partial pairings of a list: yields (pairs, unpaired)."""
    if not items:
        yield [], []
        return
    first, rest = items[0], items[1:]
    for pairs, free in _matchings(rest):
        yield pairs, [first] + free
    for i in range(len(rest)):
        others = rest[:i] + rest[i + 1:]
        for pairs, free in _matchings(others):
            yield [(first, rest[i])] + pairs, free


def hermite_poly(comp, y, P) -> sp.Expr:
    """He_{comp}(y) for y = K⁻¹z with metric P = K⁻¹: Σ_matchings (−1)^pairs Π P Π y."""
    total = sp.Integer(0)
    for pairs, free in _matchings(list(comp)):
        term = sp.Integer((-1) ** len(pairs))
        for i, j in pairs:
            term *= P[i, j]
        for i in free:
            term *= y[i]
        total += term
    return total


def integrand_outputs(act: Activation, d: int, reqs) -> list[sp.Expr]:
    """The integrands, one per output column (order of :func:`layout`)."""
    z = sp.symbols(f"z0:{d}")
    Pm = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"P_{min(i, j)}_{max(i, j)}"))
    y = [sp.Symbol(f"y{i}") for i in range(d)]
    cache: dict = {}

    def sig(k, s):
        if (k, s) not in cache:
            cache[(k, s)] = act.derivative(k).regular.subs(Z, z[s])
        return cache[(k, s)]

    outs = []
    for lp, q in reqs:
        F = sp.Mul(*[sig(k, s) for k, s in lp])
        if not q:
            outs.append(F)
        else:
            outs += [F * hermite_poly(c, y, Pm) for c in hermite_components(d, q)]
    return outs


@functools.lru_cache(maxsize=256)
def parity(act: Activation, k: int) -> int:
    """+1 if σ^{(k)} is even, −1 if odd, 0 if neither (symbolically; memoised, since
    ``sympy.simplify`` takes seconds for transcendental σ and every table column asks)."""
    e = act.derivative(k).regular
    flip = e.subs(Z, -Z)
    if sp.simplify(flip - e) == 0:
        return 1
    if sp.simplify(flip + e) == 0:
        return -1
    return 0


def output_parities(act: Activation, d: int, reqs) -> list[int] | None:
    """Parity under z → −z of every output column, or None if some factor has none."""
    out = []
    for lp, q in reqs:
        sign = (-1) ** q
        for k, _ in lp:
            p = parity(act, k)
            if not p:
                return None
            sign *= p
        out += [sign] * (len(hermite_components(d, q)) if q else 1)
    return out


def half_grid(act: Activation, d: int, reqs) -> bool:
    """Whether the d-kernel sums half of its (z → −z symmetric) nodes: every output has a parity,
    odd ones vanish and even ones are twice the half sum. The tensor rule halves its first axis,
    the polar rule (d = 2) its arcs (:func:`~feyntk.numbers.gaussian.polar_nodes`)."""
    return act.is_smooth and output_parities(act, d, reqs) is not None


def integrand_source(act: Activation, d: int, reqs, backend: str, name: str) -> str:
    """Source of the integrand kernel ``name`` for d-sample blocks (see module docstring).

    With :func:`half_grid`, odd outputs are printed as 0 (the driver sums half the grid).
    """
    if backend == "numba" and d >= 3:
        return _numba_triangular(act, d, reqs, name)
    if backend == "jax" and d != 2:
        return _jax_triangular(act, d, reqs, name)
    outs = integrand_outputs(act, d, reqs)
    if half_grid(act, d, reqs):
        outs = [e if sgn > 0 else sp.Integer(0)
                for e, sgn in zip(outs, output_parities(act, d, reqs))]
    hermite = any(q for _, q in reqs)
    assigns = assignments([(f"o{j}", e) for j, e in enumerate(outs)])
    printer = PRINTERS[backend]()
    yfix = [f"y{i} = " + " + ".join(f"P_{min(i, j)}_{max(i, j)}*z{j}" for j in range(d))
            for i in range(d)] if hermite else []
    pload = [f"P_{i}_{j} = P[b, {i}, {j}]" for i in range(d) for j in range(i, d)] \
        if hermite else []
    n = len(outs)
    if backend == "numba":
        return _numba_integrand(d, n, assigns, printer, yfix, pload, name)
    return _jax_integrand(d, n, assigns, printer, yfix, pload, name)


def _loop_head(j: int, ind: str) -> list[str]:
    """Lines opening loop level j of a tensor-rule kernel on grid g of the row: node u_j,
    partial weight w_j (first axis strided: i0 = part, part + nparts, … below n0[g]), and the
    pruning skip of subtrees whose weight cannot reach cut[g, j]."""
    I = "    "
    rng = "range(part, n0[g], nparts)" if j == 0 else f"range(m[g, {j}])"
    w = "w[g, 0, i0]" if j == 0 else f"w{j - 1}*w[g, {j}, i{j}]"
    return [f"{ind}for i{j} in {rng}:", f"{ind}{I}u{j} = x[g, {j}, i{j}]", f"{ind}{I}w{j} = {w}",
            f"{ind}{I}if w{j} < cut[g, {j}]:", f"{ind}{I * 2}continue"]


def _kept_range(j: int, ind: str) -> list[str]:
    """Lines setting ``lo`` so that the innermost loop (level j) runs over the nodes
    ``lo … m[g, j] − lo − 1`` whose weight times w_{j−1} reaches cut[g, j]: the pruning of the
    other levels applied to the last one. Gauss–Hermite weights are symmetric and increase
    towards the centre, so the kept nodes are the central ones; ``lo`` is found by bisection
    over the first half (the centre always stays: w_{j−1} ≥ cut[g, j−1] = cut[g, j] / max w)."""
    I = "    "
    return [f"{ind}lo = 0", f"{ind}hi = m[g, {j}] // 2", f"{ind}while lo < hi:",
            f"{ind}{I}mid = (lo + hi) // 2", f"{ind}{I}if w{j - 1}*w[g, {j}, mid] >= cut[g, {j}]:",
            f"{ind}{I * 2}hi = mid", f"{ind}{I}else:", f"{ind}{I * 2}lo = mid + 1"]


TENSOR_ARGS = "L, grp, x, w, m, cut, xm, n0, P, part, nparts, out"
"""Arguments of the tensor-rule kernels: factors L (B, d, d); grp (B,) the grid of each row;
per grid g nodes x and weights w (G, d, M), counts m (G, d), pruning cuts cut (G, d), largest
|node| xm (G, d) and first-axis count n0 (G,) (half the nodes on a half grid); P (B, d, d);
this call sums the first-axis nodes part, part + nparts, …; out (B, nout)."""


def _numba_integrand(d, n, assigns, printer, yfix, pload, name) -> str:
    I = "    "
    if d == 2:  # explicit nodes (polar rule)
        lines = ["@numba.njit(nogil=True, cache=True, error_model='numpy', "
                 "fastmath={'reassoc', 'contract'})",
                 f"def {name}(z, w, P, lo, hi, out):",
                 f'{I}"""Σ_p w[b,p]·f_j(z[b,:,p]) for p in [lo, hi); {n} outputs f_j."""',
                 f"{I}for b in range(z.shape[0]):"]
        lines += [I * 2 + s for s in pload]
        lines += [f"{I * 2}acc{j} = 0.0" for j in range(n)]
        lines += [f"{I * 2}for p in range(lo, hi):",
                  f"{I * 3}z0 = z[b, 0, p]", f"{I * 3}z1 = z[b, 1, p]", f"{I * 3}ww = w[b, p]"]
        lines += [I * 3 + s for s in yfix]
        lines.append(print_block(assigns, printer, I * 3))
        lines += [f"{I * 3}acc{j} += ww*o{j}" for j in range(n)]
        lines += [f"{I * 2}out[b, {j}] = acc{j}" for j in range(n)]
        return "\n".join(lines) + "\n"
    lines = [f"@numba.njit(nogil=True, cache=True, error_model='numpy')",
             f"def {name}({TENSOR_ARGS}):",
             f'{I}"""Tensor rule: z = L·u on the grid Π_j x[g, j, :m[g, j]] of the row (first '
             f'axis strided by part/nparts), skipping subtrees whose weight cannot reach cut; {n} '
             'outputs."""',
             f"{I}for b in range(L.shape[0]):", f"{I * 2}g = grp[b]"]
    lines += [f"{I * 2}L_{s}_{j} = L[b, {s}, {j}]" for s in range(d) for j in range(d)]
    lines += [I * 2 + s for s in pload]
    lines += [f"{I * 2}acc{j} = 0.0" for j in range(n)]
    ind = I * 2
    for j in range(d):
        lines += _loop_head(j, ind)
        ind += I
        for s in range(d):
            prev = "" if j == 0 else f"t{s}_{j - 1} + "
            tgt = f"z{s}" if j == d - 1 else f"t{s}_{j}"
            lines.append(f"{ind}{tgt} = {prev}L_{s}_{j}*u{j}")
    lines += [ind + s for s in yfix]
    lines.append(print_block(assigns, printer, ind))
    lines += [f"{ind}acc{j} += w{d - 1}*o{j}" for j in range(n)]
    lines += [f"{I * 2}out[b, {j}] = acc{j}" for j in range(n)]
    return "\n".join(lines) + "\n"


def triangular_terms(act: Activation, d: int, reqs):
    """Each output column as ``Σ_g coef_g · g(z_{d-1})`` (for the triangular factor's kernels).

    Returns ``(atoms, inner, coefs)``: ``atoms[s]`` the derivative orders k of σ^{(k)}(z_s)
    needed for s < d-1 (symbols ``a{s}_{k}``); ``inner`` the distinct functions g of the last
    sample, keyed ``(ks, p)`` for ``Π_k σ^{(k)}(z) · z^p``; ``coefs[j]`` a dict ``{g index:
    expression in the atoms, z_0..z_{d-2} and P}`` (empty for an output printed as 0 on the half
    grid). Hermite polynomials in y = Pz are expanded in z_{d-1}.
    """
    last = d - 1
    z = sp.symbols(f"z0:{d}")
    Pm = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"P_{min(i, j)}_{max(i, j)}"))
    y = [sum(Pm[i, j] * z[j] for j in range(d)) for i in range(d)]
    zero = (output_parities(act, d, reqs) if half_grid(act, d, reqs) else None)
    atoms: dict[int, set] = {s: set() for s in range(last)}
    inner: list[tuple] = []
    coefs: list[dict] = []
    col = 0
    for lp, q in reqs:
        rest = sp.Mul(*[sp.Symbol(f"a{s}_{k}") for k, s in lp if s < last])
        ks = tuple(sorted(k for k, s in lp if s == last))
        for k, s in lp:
            if s < last:
                atoms[s].add(k)
        for c in (hermite_components(d, q) if q else [()]):
            terms: dict[int, sp.Expr] = {}
            if zero is None or zero[col] > 0:
                poly = sp.Poly(hermite_poly(c, y, Pm) if q else sp.Integer(1), z[last])
                for (p,), cf in poly.terms():
                    if (ks, p) not in inner:
                        inner.append((ks, p))
                    g = inner.index((ks, p))
                    terms[g] = terms.get(g, 0) + rest * cf
            coefs.append(terms)
            col += 1
    return {s: sorted(v) for s, v in atoms.items()}, inner, coefs


def _numba_triangular(act: Activation, d: int, reqs, name: str) -> str:
    """The d-sample kernel (d ≥ 3) for a lower-triangular factor L (z_s = Σ_{j≤s} L_sj u_j).

    z_s is complete at loop level s, so σ^{(k)}(z_s) is evaluated there, once per iteration of
    that level; the innermost loop evaluates only the functions g of the last sample and sums
    their moments M_g over the nodes the pruning keeps (:func:`_kept_range`: the central ones,
    1.4× fewer than all of them at m = 24 in 4-d, 2× at 48; on the carried products' path over
    all of them, which measured faster); each output Σ_g coef_g M_g is added once per
    iteration of level d-2. Where σ's atoms are exponentials (:mod:`feyntk.kernels.separable`)
    the loop nest runs on products carried from level to level (no ``exp`` in any loop) for
    subsets where they cannot overflow, and evaluates σ directly elsewhere.
    """
    I = "    "
    last = d - 1
    atoms, inner, coefs = triangular_terms(act, d, reqs)
    printer = PRINTERS["numba"]()
    zs = sp.symbols(f"z0:{d}")
    funcs = {s: [(f"a{s}_{k}", act.derivative(k).regular.subs(Z, zs[s])) for k in atoms[s]]
             for s in range(last)}
    funcs[last] = [(f"g{g}", sp.Mul(*[act.derivative(k).regular.subs(Z, zs[last]) for k in ks])
                    * zs[last] ** p) for g, (ks, p) in enumerate(inner)]
    splits = {s: separable.split([e for _, e in funcs[s]], zs[s], f"E{s}_") for s in range(d)}
    tabs = {(s, r, j): n for n, (s, r, j) in enumerate(
        (s, r, j) for s in range(d) for r in range(len(splits[s].rates)) for j in range(s + 1))}
    n = len(coefs)
    hermite = any(q for _, q in reqs)
    lines = ["@numba.njit(nogil=True, cache=True, error_model='numpy', "
             "fastmath={'reassoc', 'contract'})",
             f"def {name}({TENSOR_ARGS}):",
             f'{I}"""Tensor rule, lower-triangular L: z = L·u on the grid Π_j x[g, j, :m[g, j]] '
             f'of the row (first axis strided by part/nparts), skipping subtrees whose weight '
             f'cannot reach cut; {n} outputs."""']
    if tabs:
        lines.append(f"{I}tab = np.empty(({len(tabs)}, x.shape[2]))")
    lines += [f"{I}for b in range(L.shape[0]):", f"{I * 2}g = grp[b]"]
    ind = I * 2
    lines += [f"{ind}L_{s}_{j} = L[b, {s}, {j}]" for s in range(d) for j in range(s + 1)]
    if hermite:
        lines += [f"{ind}P_{i}_{j} = P[b, {i}, {j}]" for i in range(d) for j in range(i, d)]
    lines += [f"{ind}acc{j} = 0.0" for j in range(n) if coefs[j]]

    def nest(fast: bool, ind: str) -> list[str]:
        out = []
        for j in range(d):
            if j < last:
                out += _loop_head(j, ind)
            else:
                out += [f"{ind}M{g} = 0.0" for g in range(len(inner))]
                # (the carried products' inner loop is cheaper than the bisection saves)
                out += [f"{ind}lo = 0"] if fast else _kept_range(j, ind)
                out += [f"{ind}for i{j} in range(lo, m[g, {j}] - lo):",
                        f"{ind}{I}u{j} = x[g, {j}, i{j}]", f"{ind}{I}wl = w[g, {j}, i{j}]"]
            ind += I
            for s in range(j, d):
                prev = "" if j == 0 else f"t{s}_{j - 1} + "
                out.append(f"{ind}{f'z{s}' if s == j else f't{s}_{j}'} = {prev}L_{s}_{j}*u{j}")
                for r in range(len(splits[s].rates) if fast else 0):
                    prev = "" if j == 0 else f"E{s}_{r}_{j - 1}*"
                    tgt = f"E{s}_{r}" if s == j else f"E{s}_{r}_{j}"
                    out.append(f"{ind}{tgt} = {prev}tab[{tabs[(s, r, j)]}, i{j}]")
            exprs = splits[j].exprs if fast else [e for _, e in funcs[j]]
            if exprs:
                block = assignments([(nm, e) for (nm, _), e in zip(funcs[j], exprs)],
                                    prefix=f"e{j}_" if j < last else "h")
                out.append(print_block(block, printer, ind))
        out += [f"{ind}M{g} += wl*g{g}" for g in range(len(inner))]
        ind = ind[:-len(I)]
        outs = [(f"o{j}", sum(cf * sp.Symbol(f"M{g}") for g, cf in terms.items()))
                for j, terms in enumerate(coefs) if terms]
        out.append(print_block(assignments(outs, prefix="c"), printer, ind))
        out += [f"{ind}acc{j} += w{last - 1}*o{j}" for j in range(n) if coefs[j]]
        return out

    if any(coefs) and tabs:  # (no coefs: every output vanishes on the half grid)
        bounds = [f"({' + '.join(f'abs(L_{s}_{j})*xm[g, {j}]' for j in range(s + 1))})"
                  f"*{max(abs(k) for k in splits[s].rates)!r}"
                  for s in range(d) if splits[s].rates]
        lines.append(f"{ind}if max({', '.join(bounds)}, 0.0) <= {separable.EXP_LIMIT!r}:")
        for (s, r, j), t in tabs.items():
            lines += [f"{ind}{I}for i in range(m[g, {j}]):",
                      f"{ind}{I * 2}tab[{t}, i] = math.exp({splits[s].rates[r]!r}*L_{s}_{j}"
                      f"*x[g, {j}, i])"]
        lines += nest(True, ind + I)
        lines.append(f"{ind}else:")
        lines += nest(False, ind + I)
    elif any(coefs):
        lines += nest(False, ind)
    lines += [f"{ind}out[b, {j}] = {f'acc{j}' if coefs[j] else '0.0'}" for j in range(n)]
    return "\n".join(lines) + "\n"


def _jax_integrand(d, n, assigns, printer, yfix, pload, name) -> str:
    """The 2-d JAX kernel (polar rule: explicit nodes per row)."""
    I = "    "
    body = [I + s for s in yfix]
    body.append(print_block(assigns, printer, I))
    stack = f"jnp.stack([{', '.join(f'jnp.sum(ww*o{j})' for j in range(n))}])"
    pl = [I + s.replace("P[b, ", "Pb[") for s in pload]
    lines = [f"def _{name}(zb, wb, Pb):",
             f"{I}z0 = zb[0]", f"{I}z1 = zb[1]", f"{I}ww = wb"]
    lines += pl + body + [f"{I}return {stack}", "",
                          "@jax.jit",
                          f"def {name}(z, w, P):",
                          f'{I}"""Σ_p w[b,p]·f_j(z[b,:,p]); {n} outputs f_j."""',
                          f"{I}return jax.lax.map(lambda a: _{name}(*a), (z, w, P), "
                          "batch_size=8)"]
    return "\n".join(lines) + "\n"


def _jax_triangular(act: Activation, d: int, reqs, name: str) -> str:
    """The d-sample JAX kernel (d ≠ 2) for a lower-triangular factor L: the scheme of
    :func:`_numba_triangular` as arrays. On the kept (pruned) nodes U (d-1, T) of the first d-1
    directions, σ^{(k)}(z_s) for s < d-1 are evaluated once; the functions g of the last sample
    on (T, M) = outer × last-direction nodes are summed into their moments M_g (T,); each
    output Σ_g coef_g M_g is summed over the outer nodes with weights W. Rows are mapped in
    chunks of at most 2^22 inner nodes (memory)."""
    I = "    "
    last = d - 1
    atoms, inner, coefs = triangular_terms(act, d, reqs)
    printer = PRINTERS["jax"]()
    zs = sp.symbols(f"z0:{d}")
    n = len(coefs)
    lines = [f"def _{name}(Lb, Pb, U, W, xl, wl):",
             f'{I}"""One row: outer nodes U (d-1, T), weights W (T,); last direction xl, wl."""']
    lines += [f"{I}L_{s}_{j} = Lb[{s}, {j}]" for s in range(d) for j in range(s + 1)]
    if any(q for _, q in reqs):
        lines += [f"{I}P_{i}_{j} = Pb[{i}, {j}]" for i in range(d) for j in range(i, d)]
    for s in range(last):
        lines.append(f"{I}z{s} = " + " + ".join(f"L_{s}_{j}*U[{j}]" for j in range(s + 1)))
    lines.append(f"{I}z{last} = " + " + ".join(
        [f"L_{last}_{j}*U[{j}][:, None]" for j in range(last)] + [f"L_{last}_{last}*xl[None, :]"]))
    for s in range(last):
        if atoms[s]:
            block = assignments([(f"a{s}_{k}", act.derivative(k).regular.subs(Z, zs[s]))
                                 for k in atoms[s]], prefix=f"e{s}_")
            lines.append(print_block(block, printer, I))
    block = assignments([(f"g{g}", sp.Mul(*[act.derivative(k).regular.subs(Z, zs[last])
                                             for k in ks]) * zs[last] ** p)
                         for g, (ks, p) in enumerate(inner)], prefix="h")
    lines.append(print_block(block, printer, I))
    lines += [f"{I}M{g} = jnp.sum(g{g}*wl, axis=-1)" for g in range(len(inner))]
    outs = [(f"o{j}", sum(cf * sp.Symbol(f"M{g}") for g, cf in terms.items()))
            for j, terms in enumerate(coefs) if terms]
    lines.append(print_block(assignments(outs, prefix="c"), printer, I))
    sums = [f"jnp.sum(o{j}*W)" if coefs[j] else "jnp.zeros(())" for j in range(n)]
    lines += [f"{I}return jnp.stack([{', '.join(sums)}])", "",
              "@jax.jit",
              f"def {name}(L, P, grp, U, W, xl, wl):",
              f'{I}"""Tensor rule on the triangular factors L (B, d, d), row b on grid grp[b]: '
              f'outer nodes U[g], W[g], last direction xl[g], wl[g] (tables._jax_grids); {n} '
              'outputs."""',
              f"{I}bs = max(1, min(L.shape[0], (1 << 22) // max(1, U.shape[2]*xl.shape[1])))",
              f"{I}return jax.lax.map(lambda a: _{name}(a[0], a[1], U[a[2]], W[a[2]], xl[a[2]], "
              "wl[a[2]]), (L, P, grp), batch_size=bs)"]
    return "\n".join(lines) + "\n"


# -- the oracle's rule, for all subsets together --------------------------------------------
def _schedule(d: int, r: int, fine: bool = False) -> tuple[str, list[int]]:
    """Rule and m levels of :func:`feyntk.numbers.gaussian.expect` for rank r in d dims."""
    if 1 <= r <= 2 and d == 2:
        (m, m_max), rule = POLAR_LEVELS, "polar"
    else:
        (m, m_max), rule = tensor_levels(r, fine), "tensor"
    levels = [m]
    while r and m < m_max:
        m = min(2 * m, m_max)
        levels.append(m)
    return rule, levels


def _whiten(KS: np.ndarray):
    """Per-subset factors of :func:`feyntk.numbers.gaussian.factor` (B, d, d), their ranks
    (number of nonzero directions) and, for d ≥ 3, the pivot orders of the triangular factors
    (``L[b, perm[b]]`` lower triangular; None for d ≤ 2)."""
    if KS.shape[-1] >= 3:
        L, perm = triangular_directions(KS)
    else:
        L, perm = factor(KS), None
    return L, np.any(L != 0, axis=1).sum(-1), perm


def permutation_closure(d: int, reqs) -> list[tuple[tuple, int]]:
    """The requests with every relabelling of the d slots added (sorted). :func:`requests`
    already returns closed sets; the numba kernels for d ≥ 3 need one (:func:`_column_maps`)."""
    out = {(tuple(sorted((k, pi[s]) for k, s in lp)), q)
           for lp, q in reqs for pi in itertools.permutations(range(d))}
    return sorted(out)


@functools.lru_cache(maxsize=64)
def _column_maps(d: int, reqs: tuple) -> np.ndarray:
    """For each permutation π of the d slots (row ``Σ_t π[t]·d^t``): the column of the kernel's
    output layout that each column computes when the kernel is fed the variables in the order π
    (slot t ← variable π[t]). The requests of one d are closed under slot permutations (all
    surjections)."""
    offs, _ = layout(d, reqs)
    col = {}
    for (lp, q), o in zip(reqs, offs):
        for i, c in enumerate(hermite_components(d, q) if q else [()]):
            col[(lp, q, c)] = o + i
    if sorted(reqs) != permutation_closure(d, reqs):
        raise ValueError("the numba kernels for d ≥ 3 compute requests closed under slot "
                         "permutations; pass permutation_closure(d, reqs) (requests() is)")
    maps = np.zeros((d ** d, len(col)), dtype=np.int64)
    for pi in itertools.permutations(range(d)):
        cm = maps[sum(p * d ** t for t, p in enumerate(pi))]
        for (lp, q, c), j in col.items():
            cm[j] = col[(tuple(sorted((k, pi[t]) for k, t in lp)), q,
                         tuple(sorted(pi[t] for t in c)))]
    maps.flags.writeable = False
    return maps


def _run_permuted(run, kern, d, nout, L, P, perm, reqs, rule, m, scales, half):
    """``run`` (:func:`_run_numba` or :func:`_run_jax`) on the pivot-ordered variables
    (lower-triangular factors), columns mapped back to the kernel's layout for the original
    order."""
    B = L.shape[0]
    rows = np.arange(B)[:, None]
    out = run(kern, d, nout, np.ascontiguousarray(L[rows, perm]),
                     np.ascontiguousarray(P[rows[:, :, None], perm[:, :, None],
                                            perm[:, None, :]]), rule, m, scales, half)
    res = np.empty_like(out)
    res[rows, _column_maps(d, tuple(reqs))[perm @ d ** np.arange(d)]] = out
    return res


@functools.lru_cache(maxsize=256)
def _tensor_nodes(d: int, ms: tuple[int, ...]):
    """Per-direction nodes/weights padded to (d, M) (ms[j] nodes along direction j,
    :func:`~feyntk.numbers.gaussian.node_counts`) and the pruning cuts: a partial product
    w_0…w_j below cut[j] cannot reach PRUNE × the largest node weight, so the kernel skips its
    subtree (the oracle's pruned rule exactly). Cached: callers must not write to them."""
    rules = [hermite_rule(m) for m in ms]
    M = max(len(x) for x, _ in rules)
    X, W = np.zeros((d, M)), np.zeros((d, M))
    cnt = np.ones(d, dtype=np.int64)
    for j, (x, w) in enumerate(rules):
        X[j, :len(x)], W[j, :len(x)], cnt[j] = x, w, len(x)
    return X, W, cnt, prune_cuts(W.max(axis=1))


@functools.lru_cache(maxsize=256)
def _grids(d: int, grids: tuple[tuple[tuple[int, ...], bool], ...]):
    """The arrays ``x, w, m, cut, xm, n0`` of :data:`TENSOR_ARGS` for grids given as (node
    counts per direction, half) — one call of a tensor kernel serves rows on different grids.
    Cached: callers must not write to them."""
    parts = [_tensor_nodes(d, ms) for ms, _ in grids]
    G, M = len(grids), max(X.shape[1] for X, *_ in parts)
    x, w = np.zeros((G, d, M)), np.zeros((G, d, M))
    for g, (X, W, _, _) in enumerate(parts):
        x[g, :, :X.shape[1]], w[g, :, :X.shape[1]] = X, W
    cnt = np.array([c for _, _, c, _ in parts], dtype=np.int64)
    cut = np.array([c for *_, c in parts])
    n0 = np.array([c[0] // 2 if h else c[0] for (_, h), c in zip(grids, cnt)], dtype=np.int64)
    return x, w, cnt, cut, np.abs(x).max(-1), n0


THREADS = max(1, min(os.cpu_count() or 1, 8))
"""Threads the numba integrands run on (they release the GIL)."""


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    """One worker pool for the process (starting threads per call cost ~25 % of a predict)."""
    return ThreadPoolExecutor(THREADS, thread_name_prefix="feyntk-quadrature")


def _run_numba(kern, d, nout, L, P, rule, m, scales, half):
    """The integrals of rows with factors L (B, d, d) at level m; rows where ``half[b]`` sum
    half the nodes (:func:`half_grid`; doubled here). For the tensor rule, row b has its own
    grid ``node_counts(m, scales[b])``; the polar rule takes one half flag for all rows."""
    B = L.shape[0]
    if rule == "polar" or d == 2:
        if rule == "polar":  # (one half flag for all rows)
            zs, ws = polar_nodes(L, m, bool(half.any()))
        else:  # rank 0: one node at the origin
            zs, ws = np.zeros((B, 2, 1)), np.ones((B, 1))
        nodes = zs.shape[-1]
        call = lambda sl, part, nparts, out: kern(  # noqa: E731
            zs[sl], ws[sl], P[sl], part * nodes // nparts, (part + 1) * nodes // nparts, out)
    else:
        keys, grp = np.unique(np.concatenate([scales, half[:, None]], axis=1), axis=0,
                              return_inverse=True)
        grid = _grids(d, tuple((node_counts(m, k[:-1]), bool(k[-1])) for k in keys))
        grp = grp.reshape(-1).astype(np.int64)
        nodes = int((grid[-1][grp] * grid[2][grp, 1:].prod(-1)).max())
        call = lambda sl, part, nparts, out: kern(L[sl], grp[sl], *grid, P[sl],  # noqa: E731
                                                  part, nparts, out)
    out = np.zeros((B, nout))
    if THREADS == 1 or B * nodes < 20000:
        call(slice(None), 0, 1, out)
    elif rule == "polar" and B >= THREADS:  # rows of equal cost: split the rows
        parts = [slice(i * B // THREADS, (i + 1) * B // THREADS) for i in range(THREADS)]
        list(_pool().map(lambda sl: call(sl, 0, 1, out[sl]), parts))
    else:  # every thread sums a share of every row's first-axis nodes (balanced across grids)
        outs = [out] + [np.zeros((B, nout)) for _ in range(THREADS - 1)]
        list(_pool().map(lambda i: call(slice(None), i, THREADS, outs[i]), range(THREADS)))
        out = sum(outs)
    out[half] *= 2.0
    return out


@functools.lru_cache(maxsize=256)
def _outer_nodes(ms: tuple[int, ...], half: bool):
    """The JAX kernels' nodes (:func:`_jax_triangular`) for ``ms[j]`` nodes along direction j:
    U (d-1, T) and W (T,) the multi-indices of the first d-1 directions kept by the pruning cuts
    of all d (:func:`_tensor_nodes`, as the numba kernels prune), T padded to a power of two
    with zero weights (few shapes to compile); xl, wl the last direction's nodes. On a half
    grid direction 0 keeps its first half. Cached: callers must not write to them."""
    rules = [hermite_rule(m) for m in ms]
    cut = prune_cuts([w.max() for _, w in rules])
    if half:
        rules[0] = tuple(v[:len(v) // 2] for v in rules[0])
    d = len(ms)
    idx, weights = np.zeros((0, 1), dtype=np.int64), np.ones(1)
    for j, (_, w) in enumerate(rules[:-1]):
        wj = (weights[:, None] * w[None, :]).ravel()  # left to right, as the kernels multiply
        keep = np.nonzero(wj >= cut[j])[0]
        prev, new = np.divmod(keep, len(w))
        idx = np.concatenate([idx[:, prev], new[None, :]])
        weights = wj[keep]
    U = np.array([rules[j][0][idx[j]] for j in range(d - 1)]).reshape(d - 1, len(weights))
    if d > 1:
        pad = max(256, 1 << (len(weights) - 1).bit_length()) - len(weights)
        U, weights = np.pad(U, ((0, 0), (0, pad))), np.pad(weights, (0, pad))
    return U, weights, rules[-1][0], rules[-1][1]


@functools.lru_cache(maxsize=256)
def _jax_grids(grids: tuple[tuple[tuple[int, ...], bool], ...]):
    """:func:`_outer_nodes` of grids given as (node counts, half), stacked (G, …) and padded
    with zero weights to common sizes (G and T powers of two, M the largest): one compiled shape
    serves every mix of grids at a level. Cached: callers must not write to them."""
    parts = [_outer_nodes(ms, h) for ms, h in grids]
    G = 1 << (len(parts) - 1).bit_length()
    T = max(u.shape[1] for u, *_ in parts)
    M = max(len(x) for *_, x, _ in parts)
    d1 = parts[0][0].shape[0]
    U, W, xl, wl = np.zeros((G, d1, T)), np.zeros((G, T)), np.zeros((G, M)), np.zeros((G, M))
    for g, (u, w, x, v) in enumerate(parts):
        U[g, :, :u.shape[1]], W[g, :len(w)], xl[g, :len(x)], wl[g, :len(v)] = u, w, x, v
    return U, W, xl, wl


def _run_jax(kern, d, nout, L, P, rule, m, scales, half):
    """As :func:`_run_numba` (L lower triangular for the tensor rule); the polar rule takes one
    half flag for all rows. Tensor-rule rows are sent in one call per power-of-two size of the
    outer node list (:func:`_outer_nodes`), so padding wastes at most half of a call."""
    import jax.numpy as jnp

    def padded(a, n):  # bucketed batch: few distinct shapes to compile
        return np.concatenate([a, np.repeat(a[:1], n - len(a), axis=0)]) if n > len(a) else a

    B = L.shape[0]
    pad = 1 << max(0, (B - 1).bit_length())
    if rule == "polar" or d == 2:
        if rule == "polar":
            zs, ws = polar_nodes(padded(L, pad), m, bool(half.any()))
        else:
            zs, ws = np.zeros((pad, 2, 1)), np.ones((pad, 1))
        out = np.array(kern(jnp.asarray(zs), jnp.asarray(ws), jnp.asarray(padded(P, pad))))[:B]
    else:
        keys, grp = np.unique(np.concatenate([scales, half[:, None]], axis=1), axis=0,
                              return_inverse=True)
        grp = grp.reshape(-1)
        grids = [(node_counts(m, k[:-1]), bool(k[-1])) for k in keys]
        size = np.array([_outer_nodes(*g)[0].shape[1] for g in grids])
        out = np.empty((B, nout))
        for t in np.unique(size):
            sel = np.nonzero(size == t)[0]
            rows = np.nonzero(np.isin(grp, sel))[0]
            local = np.zeros(len(keys), dtype=np.int32)
            local[sel] = np.arange(len(sel))
            n = 1 << max(0, (len(rows) - 1).bit_length())
            grid = _jax_grids(tuple(grids[k] for k in sel))
            res = kern(jnp.asarray(padded(L[rows], n)), jnp.asarray(padded(P[rows], n)),
                       jnp.asarray(padded(local[grp[rows]], n)), *map(jnp.asarray, grid))
            out[rows] = np.array(res)[:len(rows)]
    out[half] *= 2.0
    return out


def integrals(act: Activation, K: np.ndarray, d: int, reqs, kern, backend: str,
              needed=None, subsets: np.ndarray | None = None, half: bool = False,
              report: QuadratureReport | None = None, fine: bool = False,
              memo: LevelMemo | None = None) -> dict:
    """``{(LP, q): array (C, ncols)}`` over all d-subsets (rows: ``combinations(N, d)`` order).

    Args:
        reqs: the requests the kernel ``kern`` computes (its output layout).
        needed: the requests whose values will be used (the oracle's refusals apply to these
            only); default all.
        half: the kernel was generated with :func:`half_grid` (tensor rule on half the grid).
        report: where to record subsets that reach the largest level unconverged.
        fine: the larger caps of :func:`feyntk.numbers.gaussian.tensor_levels`.
        memo: kernel outputs of earlier calls at the same K, reused level by level
            (:mod:`feyntk.kernels.memo`; the error estimate's re-runs).

    Plain requests have one column; Hermite requests one per sorted component
    (:func:`hermite_components`). Each request stops refining at its own level, as the oracle.
    """
    N = K.shape[0]
    S = np.array(list(itertools.combinations(range(N), d)), dtype=np.int64).reshape(-1, d) \
        if subsets is None else subsets
    KS = K[S[:, :, None], S[:, None, :]]
    C = len(S)
    offs, widths = layout(d, reqs)
    nout = sum(widths)
    colreq = np.repeat(np.arange(len(reqs)), widths)  # request of each output column
    needed = reqs if needed is None else needed
    ok = _check(act, S, KS, needed)
    P = np.zeros((C, d, d))
    if any(q for _, q in reqs) and ok.any():
        P[ok] = np.linalg.inv(KS[ok])
    L, rank, perm = _whiten(KS)
    result = np.zeros((C, nout))
    scales = direction_scales(L)  # 0: zero direction, one node
    # subsets of one rank share a rule and its levels; the tensor kernels take a grid per row
    run = _run_numba if backend == "numba" else _run_jax
    key = None if memo is None else key_of(d, reqs, half, K, S)
    for r in np.unique(rank):
        idx = np.nonzero(rank == r)[0]
        r = int(r)
        rule, levels = _schedule(d, r, fine)
        # the half grid: the polar rule's first two arcs, the tensor rule's axis 0 (not when
        # that is a zero direction, of one node)
        h = np.full(C, half and rule == "polar") if rule == "polar" else \
            (half and r > 0) & (scales[:, 0] > 0)
        if perm is not None:  # triangular kernels: pivot order
            run_at = lambda rows, m: _run_permuted(  # noqa: E731
                run, kern, d, nout, L[rows], P[rows], perm[rows], reqs, rule, m, scales[rows],
                h[rows])
        else:
            run_at = lambda rows, m: run(kern, d, nout, L[rows], P[rows], rule, m,  # noqa
                                         scales[rows], h[rows])
        if memo is not None:
            run_at = lambda rows, m, f=run_at, k=(key, rule): memo.run(  # noqa: E731
                k, m, rows, C, nout, f)
        prev = run_at(idx, levels[0])
        done = np.zeros((len(idx), len(reqs)), bool)
        val = prev.copy()
        active = np.arange(len(idx))
        dlast, dprev = np.full_like(prev, np.inf), np.full_like(prev, np.inf)
        for m in levels[1:]:
            cur = run_at(idx[active], m)
            diff = np.abs(cur - prev[active])
            dprev[active], dlast[active] = dlast[active], diff
            ok = diff <= ATOL + RTOL * np.abs(cur)
            was = done[active]
            # unconverged requests follow the latest level; converged ones are frozen
            val[active] = np.where(was[:, colreq], val[active], cur)
            done[active] = was | np.logical_and.reduceat(ok, offs, axis=1)
            prev[active] = cur
            active = active[~done[active].all(-1)]
            if not len(active):
                break
        if report is not None and len(active) and len(levels) > 1:
            report.add(dlast[active], dprev[active], val[active],
                       f"{d}-sample, m = {levels[-1]}")
        result[idx] = val
    return {req: result[:, o:o + wdt] for req, o, wdt in zip(reqs, offs, widths)}


def _check(act, S, KS, reqs) -> np.ndarray:
    """The oracle's refusals: kinks at zero variance; singular K_S in the inverse-metric form.

    Returns the mask of subsets whose K_S is invertible (where Hermite integrals can be formed).
    """
    zero = np.nonzero((np.diagonal(KS, axis1=1, axis2=2) <= 1e-300).any(-1))[0]
    for b in zero:
        for lp, q in reqs:
            if not q:
                check_kinks_at_zero_variance(act, tuple({k for k, _ in lp}), KS[b],
                                             [f"x[{s}]" for s in S[b]])
    ok, _ = invertible(KS)
    if any(q for _, q in reqs):
        for b in np.nonzero(~ok)[0][:1]:
            require_invertible(KS[b], S[b].tolist())  # raises, with the reason
    return ok


# -- tables from integrals -------------------------------------------------------------------
def fill(table, N: int, ints: dict, subsets: dict) -> np.ndarray:
    """The N^p array of a label-space table from the per-subset integrals."""
    p = table.p
    T = np.zeros((N,) * p)
    for d in range(1, p + 1):
        S = subsets[d]
        for phi in surjections(p, d):
            lp = local_pattern(table.sigs, phi)
            if table.legs:
                # mask: a picked slot must be the first slot of its sample
                if any(phi[c] in phi[:c] for c in table.comp):
                    continue
                comps = hermite_components(d, table.legs)
                col = comps.index(tuple(sorted(phi[c] for c in table.comp)))
                vals = ints[d][(lp, table.legs)][:, col]
            else:
                vals = ints[d][(lp, 0)][:, 0]
            T[tuple(S[:, phi[s]] for s in range(p))] = vals
    return T


def subsets_of(N: int, d: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(N), d)), dtype=np.int64).reshape(-1, d)


def table_bytes(tables, N: int) -> int:
    """Bytes held by the tables and their integrals for N samples."""
    total = sum(N ** t.p for t in tables)
    reqs = requests(tables)
    for d, rs in reqs.items():
        cols = sum(len(hermite_components(d, q)) if q else 1 for _, q in rs)
        total += 2 * math.comb(N, d) * cols
    return 8 * total


def _relu_blobs(cache):
    """The closed forms of the relu family (:class:`feyntk.numbers.gaussian.relu.ReluBlobs`)
    at the cache's K, kept in the cache (one per layer, shared by its tables); None where they
    do not apply or are switched off (:data:`feyntk.numbers.gaussian.relu.ENABLED`)."""
    if not relu_closed.use(cache.act):
        return None
    key = ("relu-closed",)
    if key not in cache.store:
        cache.store[key] = relu_closed.ReluBlobs(cache.act, cache.K)
    return cache.store[key]


def _closed_pattern(table, phi, d: int):
    """(groups, weight) of :meth:`ReluBlobs.value` for the table's labels mapped to the slots
    ``phi`` of a d-subset: per slot the orders k of its σ factors and the number j of legs that
    differentiate it (``"dist"`` tables), or the Hermite polynomial's slots (``"hermite"``)."""
    groups = []
    for t in range(d):
        ks = tuple(sorted(k for k, s in table.sigs if phi[s] == t))
        j = sum(1 for c in table.comp if phi[c] == t) if table.legs and table.kind == "dist" \
            else 0
        groups.append((ks, j))
    weight = None
    if table.legs and table.kind != "dist":
        weight = tuple(phi[c] for c in table.comp)
    return tuple(groups), weight


def fill_from_cache(table, N: int, cache) -> np.ndarray:
    """The table from the oracle's own blob cache (:class:`feyntk.numbers.evaluate.BlobCache`).

    Used for kinked activations, whose blobs are distributions. For the relu family (kinks at 0,
    polynomial pieces) every pattern is evaluated for all subsets at once by the closed forms of
    :mod:`feyntk.numbers.gaussian.relu` (the oracle's quadrature only for the rows they refuse:
    zero variances, collinear inputs); otherwise the blobs are integrated by
    :mod:`feyntk.numbers.distributions`, one call per distinct sample assignment. The subsets
    of one pattern run on the worker threads (the quadrature is numpy work that releases the
    GIL); the first runs alone, so that the caches it fills (lambdified σ, rules) are built once.
    """
    p = table.p
    T = np.zeros((N,) * p)
    closed = _relu_blobs(cache)
    for d in range(1, min(p, N) + 1):
        S = subsets_of(N, d)
        for phi in surjections(p, d):
            if table.legs and any(phi[c] in phi[:c] for c in table.comp):
                continue

            def one(sub, phi=phi) -> float:
                samp = [int(sub[phi[s]]) for s in range(p)]
                sigs = tuple((k, samp[s]) for k, s in table.sigs)
                if not table.legs:
                    return cache.plain(sigs)
                if table.kind == "dist":
                    legs_at: dict = {}
                    for c in table.comp:
                        legs_at[samp[c]] = legs_at.get(samp[c], 0) + 1
                    return cache.dist(cache.groups(sigs, legs_at))
                Sx, arr = cache.hermite(sigs, table.legs)
                return arr[tuple(Sx.index(samp[c]) for c in table.comp)]

            res = None if closed is None else closed.value(*_closed_pattern(table, phi, d))
            if res is not None:  # closed forms; the oracle only where they do not apply
                vals, bad = res
                if bad.any():
                    vals = vals.copy()
                    vals[bad] = [one(sub) for sub in S[bad]]
                T[tuple(S[:, phi[s]] for s in range(p))] = vals
                continue
            vals = [one(S[0])]
            if len(S) > 1:
                vals += (list(_pool().map(one, S[1:])) if THREADS > 1 and d >= 3
                         else [one(sub) for sub in S[1:]])
            T[tuple(S[:, phi[s]] for s in range(p))] = vals
    return T
