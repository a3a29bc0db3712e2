"""Finite groups as data: orthogonal actions on inputs (and optionally on outputs), MATH.md §7.

A :class:`Group` holds the n0 × n0 orthogonal matrices ρ(g) of all its elements (identity first)
and, for equivariance, the n_L × n_L orthogonal matrices ρ_out(g) of a homomorphism
(``ρ_out(gh) = ρ_out(g) ρ_out(h)`` whenever ``ρ(gh) = ρ(g) ρ(h)``); without them the action on
outputs is trivial (invariance). Elements are enumerated from the generators by closure in
breadth-first order of words (``ρ(s g) = ρ(s) ρ(g)``, generator s applied on the left), so the
identity is element 0 and the generators follow in the order given.

Binding config forms (:func:`parse_group`):

* ``{"name": "rot90", "shape": [h, w]}`` (h = w, h·w = n0): the four rotations of an image
  flattened row-major; generator (r,), r = ``numpy.rot90`` (90° counter-clockwise).
* ``{"name": "dihedral", "shape": [h, w]}`` (h = w): 8 elements; generators (r, s), r as above,
  s = ``numpy.fliplr`` (left–right mirror).
* ``{"name": "flip", "shape": [h, w]}``: 2 elements; generator (s,), the left–right mirror.
* ``{"name": "translate", "shape": [h, w]}``: the h·w cyclic translations of an h × w periodic
  lattice; generators (t_row, t_col) = ``numpy.roll`` by +1 along axis 0, then along axis 1.
* ``{"name": "shift"}`` (no shape): the n0 cyclic shifts of the coordinates; generator (t,),
  ``numpy.roll(x, 1)``.
* ``{"generators": [M1, M2, ...]}``: n0 × n0 orthogonal matrices; the generated group is
  enumerated (at most :data:`MAX_ORDER` elements).

Each form takes an optional ``"output_action": [R1, R2, ...]``, one n_L × n_L orthogonal matrix
per generator in the order above; it is extended along the enumeration and refused if it is not
a homomorphism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from feyntk.errors import GroupError

MAX_ORDER = 4096
"""Largest group enumerated; larger (or infinite) generated groups are refused."""

ORTHO_ATOL = 1e-10
"""Tolerance of ``max |MᵀM − I|`` for a matrix to count as orthogonal."""

MAX_MATRIX_BYTES = 512 * 1024 ** 2
"""Budget of the dense (|G|, n0, n0) array of input matrices (512 MiB)."""

MATCH_ATOL = 1e-8
"""Two group elements are the same when their matrices agree entrywise to this."""

NAMED = ("rot90", "dihedral", "flip", "translate", "shift")
_NEEDS_SHAPE = ("rot90", "dihedral", "flip", "translate")
_FORMS = ('{"name": "rot90" | "dihedral" | "flip" | "translate", "shape": [h, w]}, '
          '{"name": "shift"} or {"generators": [M1, M2, ...]} (n0 × n0 orthogonal matrices), '
          'each with an optional "output_action": [R1, ...] (one n_L × n_L orthogonal matrix '
          'per generator)')


@dataclass(frozen=True, eq=False)
class Group:
    """A finite group acting orthogonally on inputs and (optionally) outputs.

    Attributes:
        name: a label (the named group, or ``"generated"``).
        matrices: (|G|, n0, n0) the input action ρ(g) of every element; ``matrices[0] = I``.
        generators: indices into ``matrices`` of the generators, in the order they were given.
        words: per element, the generator indices s_1..s_k with ρ(g) = ρ(s_1)⋯ρ(s_k).
        output: (|G|, n_L, n_L) the output action ρ_out(g), or ``None`` for the trivial one.
    """

    name: str
    matrices: np.ndarray
    generators: tuple[int, ...]
    words: tuple[tuple[int, ...], ...]
    output: np.ndarray | None = None

    @property
    def order(self) -> int:
        return self.matrices.shape[0]

    @property
    def n0(self) -> int:
        return self.matrices.shape[1]

    @property
    def invariant(self) -> bool:
        """True when the output action is trivial (invariance rather than equivariance)."""
        return self.output is None or bool(
            np.all(np.abs(self.output - np.eye(self.output.shape[1])) <= MATCH_ATOL))

    def output_matrices(self, nL: int) -> np.ndarray:
        """(|G|, n_L, n_L) ρ_out(g) (identities for the trivial action)."""
        if self.output is None:
            return np.broadcast_to(np.eye(nL), (self.order, nL, nL)).copy()
        if self.output.shape[1] != nL:
            raise GroupError(f"the group's output action acts on {self.output.shape[1]} outputs, "
                             f"the network has n_L = {nL}")
        return self.output

    def act(self, x) -> np.ndarray:
        """(|G|, N, n0): ``out[g, a] = ρ(g) x_a`` for inputs x of shape (N, n0)."""
        x = np.asarray(x, dtype=float)
        return np.einsum("gij,aj->gai", self.matrices, x)

    def index(self, M) -> int:
        """Index of the element whose input matrix is M (GroupError if M is not in the group)."""
        d = np.abs(self.matrices - np.asarray(M, dtype=float)).max(axis=(1, 2))
        k = int(np.argmin(d))
        if d[k] > MATCH_ATOL:
            raise GroupError(f"the matrix is not an element of the group {self.name!r} "
                             f"(closest element differs by {d[k]:.3g})")
        return k

    def table(self) -> np.ndarray:
        """(|G|, |G|) multiplication table: ``ρ(g) ρ(h) = ρ(table[g, h])`` (O(|G|² n0³))."""
        look = _Lookup(self.n0)
        for k, M in enumerate(self.matrices):
            look.add(M, k)
        out = np.empty((self.order, self.order), dtype=int)
        for g in range(self.order):
            for h in range(self.order):
                k = look.find(self.matrices[g] @ self.matrices[h])
                if k is None:
                    raise GroupError(f"group {self.name!r} is not closed: element {g} times "
                                     f"element {h} is not an element")
                out[g, h] = k
        return out

    def inverses(self) -> np.ndarray:
        """(|G|,) index of g⁻¹ (ρ(g)⁻¹ = ρ(g)ᵀ)."""
        return np.array([self.index(M.T) for M in self.matrices])

    def subgroup(self, elements, name: str | None = None) -> "Group":
        """The subgroup generated by the given element indices (output action restricted)."""
        idx = [int(k) for k in elements]
        if not idx or any(not 0 <= k < self.order for k in idx):
            raise GroupError(f"subgroup elements must be indices in 0..{self.order - 1}, "
                             f"got {list(elements)}")
        out = None if self.output is None else self.output[idx]
        return generate(self.matrices[idx], out, name or f"{self.name}-subgroup")


class _Lookup:
    """Finds a matrix among stored ones to MATCH_ATOL via a binned scalar fingerprint uᵀMv."""

    BIN = 1e-4

    def __init__(self, n: int):
        rng = np.random.default_rng(12345)
        u, v = rng.standard_normal(n), rng.standard_normal(n)
        self.u, self.v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        self.bins: dict[int, list[tuple[np.ndarray, int]]] = {}

    def _key(self, M) -> int:
        return int(np.floor(float(self.u @ M @ self.v) / self.BIN))

    def find(self, M) -> int | None:
        key = self._key(M)
        for b in (key - 1, key, key + 1):
            for S, k in self.bins.get(b, ()):
                if np.abs(S - M).max() <= MATCH_ATOL:
                    return k
        return None

    def add(self, M, k: int) -> None:
        self.bins.setdefault(self._key(M), []).append((M, k))


def generate(generators, output=None, name: str = "generated", *,
             max_order: int = MAX_ORDER) -> Group:
    """Enumerate the group generated by orthogonal matrices (module docstring: order, words).

    Args:
        generators: (k, n0, n0) orthogonal matrices.
        output: optional (k, n_L, n_L) orthogonal matrices, the output action of each generator;
            extended by ``ρ_out(s g) = ρ_out(s) ρ_out(g)`` and checked on every edge (s, g) of
            the enumeration, which makes it a homomorphism exactly when no check fails.
        max_order: refuse groups with more elements.
    """
    gens = np.asarray(generators, dtype=float)
    n = gens.shape[1]
    outs = None if output is None else np.asarray(output, dtype=float)
    mats, words, outm = [np.eye(n)], [()], [None if outs is None else np.eye(outs.shape[1])]
    look = _Lookup(n)
    look.add(mats[0], 0)
    gen_index = []
    g = 0
    while g < len(mats):
        for s in range(len(gens)):
            M = gens[s] @ mats[g]
            R = None if outs is None else outs[s] @ outm[g]
            k = look.find(M)
            if k is None:
                _check_size(len(mats) + 1, n)
                if len(mats) >= max_order:
                    raise GroupError(
                        f"the generated group has more than {max_order} elements (or is "
                        "infinite: e.g. a rotation by an angle that is not a rational multiple "
                        "of 2π, or generators that are orthogonal only to rounding): use fewer "
                        f"or smaller generators, or a group of at most {max_order} elements")
                k = len(mats)
                mats.append(M)
                words.append((s, *words[g]))
                outm.append(R)
                look.add(M, k)
            elif R is not None and np.abs(R - outm[k]).max() > MATCH_ATOL:
                raise GroupError(
                    f"output_action is not a homomorphism of the group: the element reached "
                    f"as generator word {list((s, *words[g]))} equals the one with word "
                    f"{list(words[k])} on inputs, but their output matrices differ by "
                    f"{np.abs(R - outm[k]).max():.3g}. The output matrices must obey every "
                    "relation of the input generators (for rot90: R⁴ = I; for dihedral: "
                    "R_r⁴ = R_s² = I and R_s R_r R_s = R_r⁻¹)")
            if g == 0:
                gen_index.append(k)
        g += 1
    return Group(name, np.stack(mats), tuple(gen_index), tuple(words),
                 None if outs is None else np.stack(outm))


def _check_size(order: int, n0: int) -> None:
    need = 8 * order * n0 * n0
    if need > MAX_MATRIX_BYTES:
        raise GroupError(
            f"{order} elements acting on n0 = {n0} coordinates need {need / 2**20:.0f} MiB of "
            f"dense matrices, over the budget of {MAX_MATRIX_BYTES / 2**20:.0f} MiB: use a "
            "smaller input or a smaller group (e.g. a subgroup via \"generators\")")


def _image_permutation(shape: tuple[int, int], fn) -> np.ndarray:
    """Permutation matrix P with ``P @ x = fn(x.reshape(shape)).ravel()`` (row-major)."""
    h, w = shape
    src = np.asarray(fn(np.arange(h * w).reshape(h, w))).ravel()
    P = np.zeros((h * w, h * w))
    P[np.arange(h * w), src] = 1.0
    return P


def named_generators(name: str, n0: int, shape: tuple[int, int] | None) -> np.ndarray:
    """The generators of a named group in their documented order (module docstring)."""
    if name == "shift":
        return _image_permutation((1, n0), lambda a: np.roll(a, 1))[None]
    if name == "rot90":
        return _image_permutation(shape, np.rot90)[None]
    if name == "dihedral":
        return np.stack([_image_permutation(shape, np.rot90),
                         _image_permutation(shape, np.fliplr)])
    if name == "flip":
        return _image_permutation(shape, np.fliplr)[None]
    if name == "translate":
        return np.stack([_image_permutation(shape, lambda a: np.roll(a, 1, axis=0)),
                         _image_permutation(shape, lambda a: np.roll(a, 1, axis=1))])
    raise GroupError(f"unknown group name {name!r}; named groups: {', '.join(NAMED)}")


def _matrices(value, what: str, size: int, label: str) -> np.ndarray:
    """Validate a non-empty list of size × size finite orthogonal matrices."""
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
        raise GroupError(f"{what} must be a non-empty list of {size} × {size} matrices "
                         f"({label}), got {type(value).__name__}")
    out = []
    for k, M in enumerate(value):
        try:
            A = np.asarray(M, dtype=float)
        except (TypeError, ValueError):
            raise GroupError(f"{what}[{k}] is not a matrix of numbers; give a list of {size} "
                             f"lists of {size} numbers") from None
        if A.shape != (size, size):
            raise GroupError(f"{what}[{k}] must be {size} × {size} ({label}), got shape "
                             f"{A.shape}")
        if not np.all(np.isfinite(A)):
            raise GroupError(f"{what}[{k}] contains NaN or inf")
        dev = float(np.abs(A.T @ A - np.eye(size)).max())
        if dev > ORTHO_ATOL:
            raise GroupError(
                f"{what}[{k}] is not orthogonal (max |MᵀM − I| = {dev:.3g} > {ORTHO_ATOL:g}): "
                "give permutation or rotation/reflection matrices whose rows are orthonormal "
                "(to about 1e-12)")
        out.append(A)
    return np.stack(out)


def _shape(value, name: str, n0: int) -> tuple[int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
            for v in value)):
        raise GroupError(f"group {name!r} needs \"shape\": [h, w], two positive integers with "
                         f"h·w = n0 = {n0}; got {value!r}")
    h, w = int(value[0]), int(value[1])
    if h * w != n0:
        raise GroupError(f"group {name!r}: shape [{h}, {w}] has h·w = {h * w} pixels but the "
                         f"input has n0 = widths[0] = {n0} coordinates; give [h, w] with "
                         f"h·w = {n0}")
    if name in ("rot90", "dihedral") and h != w:
        raise GroupError(f"group {name!r} rotates by 90°, which needs a square image; shape "
                         f"[{h}, {w}] is not square (use \"flip\" or \"translate\" for "
                         "rectangular images)")
    return h, w


def parse_group(spec: Any, n0: int, nL: int | None = None) -> Group:
    """Validate a group spec (module docstring) for inputs of dimension n0 and n_L outputs."""
    if not isinstance(spec, Mapping):
        raise GroupError(f"group must be a JSON object: {_FORMS}; got {spec!r}")
    if "name" in spec and "generators" in spec:
        raise GroupError(f"give either \"name\" or \"generators\" for a group, not both: {_FORMS}")
    if "name" in spec:
        if spec["name"] not in NAMED:
            raise GroupError(f"unknown group name {spec['name']!r}; named groups: "
                             f"{', '.join(NAMED)}, or give {{\"generators\": [...]}}")
        allowed = ("name", "output_action") + (("shape",) if spec["name"] in _NEEDS_SHAPE else ())
    elif "generators" in spec:
        allowed = ("generators", "output_action")
    else:
        raise GroupError(f"a group needs \"name\" or \"generators\": {_FORMS}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise GroupError(f"unknown key(s) {unknown} in group {spec.get('name', 'generators')!r}; "
                         f"allowed: {', '.join(allowed)}"
                         + (" (shift acts on the n0 coordinates and takes no shape)"
                            if spec.get("name") == "shift" else ""))
    if "name" in spec:
        name = spec["name"]
        if name in _NEEDS_SHAPE and "shape" not in spec:
            raise GroupError(f"group {name!r} needs \"shape\": [h, w] with h·w = n0 = {n0} "
                             "(the image the n0 inputs are flattened from, row-major)")
        shape = _shape(spec["shape"], name, n0) if name in _NEEDS_SHAPE else None
        if name in ("translate", "shift") and n0 > MAX_ORDER:
            raise GroupError(f"{name!r} on n0 = {n0} coordinates has {n0} elements, more than "
                             f"MAX_ORDER = {MAX_ORDER}; use a subgroup via \"generators\"")
        if name in ("translate", "shift"):
            _check_size(n0, n0)
        gens = named_generators(name, n0, shape)
    else:
        name = "generated"
        gens = _matrices(spec["generators"], "generators", n0, "n0 × n0, acting on inputs")
    out = None
    if "output_action" in spec:
        if nL is None:
            raise GroupError("output_action needs the number of outputs n_L (widths[-1])")
        out = _matrices(spec["output_action"], "output_action", nL,
                        "n_L × n_L, acting on outputs")
        if len(out) != len(gens):
            raise GroupError(f"output_action must give one n_L × n_L matrix per generator: "
                             f"group {name!r} has {len(gens)} generator(s), got {len(out)}")
    return generate(gens, out, name)
