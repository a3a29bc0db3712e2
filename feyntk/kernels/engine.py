"""Layer-by-layer evaluation with generated kernels (numba on the CPU, JAX anywhere).

Same contract as the oracle :func:`feyntk.numbers.evaluate.evaluate`; per layer step:

1. **tables**: the Gaussian integrals of every blob pattern over every subset of distinct
   samples (:mod:`feyntk.kernels.tables`), scattered into label-space tables;
2. **contraction**: each statistic's generated kernel evaluates its products of reads at one
   representative of every orbit of its index symmetries (found from the terms,
   :func:`feyntk.kernels.lower.symmetries`); the full array is filled from the orbits.

Only the dependency closure of the request is computed, and tables whose every use has a zero
coefficient at this layer (e.g. λ_W = 0) are not integrated.

Common mistakes:
    * Refusals can differ from the oracle's on degenerate inputs: the oracle skips a term as
      soon as one factor is exactly zero (e.g. Θ = 0 for a zero input with C_b = λ_b = 0) and
      may then never meet a blob it would refuse (a delta of relu at a zero-variance sample);
      the kernels integrate every table first and refuse.
"""

from __future__ import annotations

import functools
import sys
import time

import numpy as np

from feyntk.diagrams.diagram import correlator
from feyntk.errors import MemoryBudgetError
from feyntk.kernels.lower import Table, lower, symmetries
from feyntk.kernels.module import HYPER, codegen
from feyntk.kernels.tables import fill, fill_from_cache, integrals, requests, subsets_of, \
    table_bytes
from feyntk.numbers.evaluate import MEMORY_BUDGET, BlobCache, choose_form, dependencies, \
    first_layer, state_bytes
from feyntk.numbers.repeated import check_expanded_memory, find_repeats, relabelled
from feyntk.spec.network import Network, check_inputs

BACKENDS = ("numpy", "numba", "jax")


def available_backends() -> tuple[str, ...]:
    """Backends that can run here (numpy always)."""
    out = ["numpy"]
    for mod in ("numba", "jax"):
        try:
            __import__(mod)
            out.append(mod)
        except ImportError:  # pragma: no cover
            pass
    return tuple(out)


def _setup_jax() -> None:
    """float64, and a persistent XLA cache next to the generated sources (if none is set)."""
    import jax

    from feyntk.kernels.compile import cache_dir

    jax.config.update("jax_enable_x64", True)
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))


def has_gpu() -> bool:
    try:
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    except Exception:  # pragma: no cover - no jax or no devices
        return False


def choose_backend(backend: str = "auto") -> str:
    """``auto``: JAX when a GPU is present, else numba, else numpy."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or 'auto', got {backend!r}")
        if backend not in available_backends():
            raise ValueError(f"backend {backend!r} is not installed here")
        return backend
    avail = available_backends()
    if "jax" in avail and has_gpu():
        return "jax"
    return "numba" if "numba" in avail else "numpy"


@functools.lru_cache(maxsize=128)
def orbits(N: int, group: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Representatives ``idx`` (R, p) of the index orbits and ``fill`` (N^p,) into them."""
    p = len(group[0])
    shape = (N,) * p
    grid = np.indices(shape).reshape(p, -1)
    canon = np.min([np.ravel_multi_index(grid[list(g)], shape) for g in group], axis=0)
    reps, fill_ = np.unique(canon, return_inverse=True)
    idx = np.stack(np.unravel_index(reps, shape), axis=1).astype(np.int64)
    return np.ascontiguousarray(idx), fill_.reshape(-1)


def memory_needed(closure, form: str, N: int, smooth: bool = True) -> int:
    """Bytes for two layers of states plus the tables and integrals of one step."""
    tables = {k: v for n in closure for k, v in lower(n, form, smooth).tables.items()}
    return state_bytes(closure, N) + table_bytes(tables.values(), N)


def check_memory(names, closure, form: str, N: int, budget: int | None,
                 smooth: bool = True, distinct: bool = False) -> None:
    """Refuse requests over N inputs (``distinct``: the N distinct ones of repeated inputs)
    whose states and tables would not fit."""
    need = memory_needed(closure, form, N, smooth)
    budget = MEMORY_BUDGET if budget is None else budget
    if need > budget:
        raise MemoryBudgetError(
            f"predicting {list(names)} for N = {N}{' distinct' if distinct else ''} inputs needs "
            f"{need / 2**30:.2f} GiB (layer states of {', '.join(closure)} and the "
            f"Gaussian-expectation tables; rank-4 tensors hold N^4 entries), more than the budget "
            f"of {budget / 2**30:.2f} GiB. Use fewer inputs, request fewer rank-4 tensors, or "
            "raise max_memory_bytes.")


@functools.lru_cache(maxsize=64)
def _coefficients(closure: tuple, form: str, smooth: bool):
    """All products of the closure and one compiled function of their coefficients."""
    import sympy as sp

    prods = [p for n in closure for p in lower(n, form, smooth).products]
    f = sp.lambdify(HYPER, [p.coeff for p in prods], modules="math")
    return prods, lambda *h: [float(v) for v in f(*h)]


def step(gen, closure, state: dict, act, values: dict, backend: str, N: int,
         timings: dict | None = None, report=None, fine: bool = False,
         originals: tuple[int, ...] | None = None) -> dict:
    """One layer step ℓ → ℓ+1 of every statistic in ``closure`` with generated kernels.

    ``originals``: the caller's index of every sample, for error messages (repeated inputs
    removed, :mod:`feyntk.numbers.repeated`)."""
    module, imod = gen.contractions, gen.integrands
    t0 = time.perf_counter()
    hyper = [float(values[h]) for h in HYPER]
    needed: dict[str, Table] = {}
    prods, coeffs = _coefficients(tuple(closure), module.FORM, module.SMOOTH)
    for prod, c in zip(prods, coeffs(*hyper)):
        if c != 0.0:
            for r in prod.reads:
                if r.array in module.TABLES:
                    needed[r.array] = Table(*module.TABLES[r.array])
    K = np.ascontiguousarray(state["K"])
    tables = {name: np.zeros((N,) * Table(*spec).p) for name, spec in module.TABLES.items()}
    if module.SMOOTH:
        need_reqs = requests(needed.values())
        ints, subs = {}, {}
        for d, reqs in imod.REQUESTS.items():
            subs[d] = subsets_of(N, d)
            if d in need_reqs:
                with relabelled(None if originals is None else np.asarray(originals)):
                    ints[d] = integrals(act, K, d, reqs, imod.INTEGRANDS[d], backend,
                                        needed=need_reqs[d], subsets=subs[d],
                                        half=imod.HALF[d], report=report, fine=fine)
        for name, t in needed.items():
            tables[name] = fill(t, N, ints, subs)
    else:
        cache = BlobCache(act, K, module.FORM, report=report, fine=fine, originals=originals)
        for name, t in sorted(needed.items()):
            tables[name] = fill_from_cache(t, N, cache)
    t1 = time.perf_counter()
    new = {}
    for n in closure:
        kern, output, arrays = module.CONTRACT[n]
        idx, fill_ = orbits(N, symmetries(closure)[n])
        args = [state[a] if a in state else tables[a] for a in arrays]
        if backend == "numba":
            out = np.empty(len(idx))
            kern(idx, out, *[np.ascontiguousarray(a) for a in args], *hyper)
        else:
            import jax.numpy as jnp

            out = np.asarray(kern(jnp.asarray(idx), *[jnp.asarray(a) for a in args], *hyper))
        new[n] = out[fill_].reshape((N,) * len(output))
    if timings is not None:
        timings["tables"] = timings.get("tables", 0.0) + t1 - t0
        timings["contract"] = timings.get("contract", 0.0) + time.perf_counter() - t1
    return new


def evaluate(network: Network, inputs, names, layer: int | None = None, *, form: str = "auto",
             backend: str = "auto", max_memory_bytes: int | None = None,
             verbose: bool = False, log=None, report=None,
             fine: bool = False) -> dict[str, np.ndarray]:
    """Evaluate statistics ``names`` at ``layer`` with generated kernels.

    Same arguments and result as :func:`feyntk.numbers.evaluate.evaluate`, plus:

    Args:
        backend: ``"numba"``, ``"jax"``, ``"numpy"`` (the oracle itself) or ``"auto"``.
        verbose: print the wall time of every layer step (to ``log``, default stderr).
        report: a :class:`~feyntk.numbers.gaussian.QuadratureReport` to record integrals that
            stopped at the largest rule unconverged.
        fine: larger quadrature caps for 3- and 4-sample integrals.

    Repeated inputs are evaluated once and their rows repeated (:mod:`feyntk.numbers.repeated`);
    the memory check counts the distinct inputs (and the expanded results).
    """
    from feyntk.numbers.evaluate import evaluate as oracle

    backend = choose_backend(backend)
    x = check_inputs(inputs, network.n0)
    layer = network.L if layer is None else network.check_layer(layer)
    closure = dependencies(names)
    act = network.activation
    form = choose_form(act, [n for n in closure if n != "K"], form) if layer > 1 else "derivative"
    if backend == "numpy":
        return oracle(network, x, names, layer, form=form, max_memory_bytes=max_memory_bytes,
                      report=report, fine=fine)
    rep = find_repeats(x)
    if not rep.repeated:
        return _evaluate(network, x, names, layer, closure, form, backend, max_memory_bytes,
                         verbose, log, report, fine)
    budget = MEMORY_BUDGET if max_memory_bytes is None else max_memory_bytes
    check_expanded_memory(names, [len(correlator(n).output) for n in names], rep, budget)
    out = _evaluate(network, rep.unique, names, layer, closure, form, backend,
                    max_memory_bytes, verbose, log, report, fine, tuple(rep.first.tolist()))
    return rep.expand(out)


def _evaluate(network: Network, x: np.ndarray, names, layer: int, closure, form: str,
              backend: str, max_memory_bytes, verbose, log, report, fine,
              originals: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """:func:`evaluate` with generated kernels on the inputs as given (``originals``: their
    indices in the caller's inputs, for error messages)."""
    N = x.shape[0]
    act = network.activation
    check_memory(names, closure, form, N, max_memory_bytes, act.is_smooth,
                 distinct=originals is not None)
    log = log or sys.stderr
    state = first_layer(network, x, closure)
    if layer == 1:
        return {n: state[n] for n in names}
    if backend == "jax":
        _setup_jax()
    t = time.perf_counter()
    gen = codegen(closure, act, form, backend)
    if verbose:
        print(f"codegen {gen.key}: {time.perf_counter() - t:.3f} s "
              f"({', '.join(map(str, gen.path))})", file=log)
    from feyntk.diagrams.fields import C_W, C_b, RATIO, lam_W, lam_b

    for l in range(1, layer):
        hp = network.layer(l + 1)
        values = {C_W: hp.C_W, C_b: hp.C_b, lam_W: hp.lambda_W, lam_b: hp.lambda_b,
                  RATIO: network.widths[l] / network.widths[l - 1]}
        t = time.perf_counter()
        timings: dict = {}
        state = step(gen, closure, state, act, values, backend, N, timings, report, fine,
                     originals)
        if verbose:
            print(f"layer {l} -> {l + 1}: {time.perf_counter() - t:.3f} s (tables "
                  f"{timings['tables']:.3f} s, contraction {timings['contract']:.3f} s)",
                  file=log)
    return {n: state[n] for n in names}
