"""Activations as sympy expressions in one variable ``z``.

An :class:`Activation` holds a sympy expression σ(z). Its derivatives up to any order are taken
symbolically and split into a *regular part* (an ordinary function, possibly with jumps written
as ``Heaviside(z - c)``) and a *singular part*: a finite sum of Dirac deltas and their
derivatives, ``Σ coeff · δ^{(m)}(z - c)``. This is the distributional derivative, so that
later stages can integrate kinked activations exactly (relu: σ' = step, σ'' = δ).

Normalisation uses the identity
``f(z) δ^{(m)}(z - c) = Σ_j (-1)^j binom(m, j) f^{(j)}(c) δ^{(m-j)}(z - c)``,
so every singular coefficient is a number.

Which definition feyntk reports for kinked activations: derivatives are distributional
(relu: σ' = step, σ'' = δ, σ‴ = δ'), and the products a recursion needs at one sample are
formed before differentiating, with δ(z)·H(z)^m = δ(z)/(m+1), the limit of every smoothing of
the kink, e.g. softplus_β(z) = log(1 + e^{βz})/β as β → ∞. Where that limit diverges (δ·δ, δ'·H
at one sample) the entry is refused. Automatic differentiation of a sampled relu network sees
σ'' = 0 almost everywhere, a different (and for the dNTK wrong) quantity; Monte Carlo checks of
relu's tensors therefore go through softplus_β. ``derivatives="pointwise"`` (config:
``{"name": "relu", "derivatives": "pointwise"}``) asks for that other quantity: every factor
σ^{(k)} is replaced by its regular part (relu: σ'' = σ‴ = 0), while the Gaussian identities that
differentiate products (integration by parts) stay distributional, so only the network's own
second and higher derivatives change. Which of the two trained relu networks follow is decided by
Monte Carlo in ``tests/test_training_relu.py``.

Common mistakes:
    * ``Heaviside(0)`` is taken as 1/2; it only matters on a set of measure zero.
    * A jump and a delta at the same point (e.g. ``Heaviside(z)**2`` differentiated twice in an
      unlucky way) is ill-defined; such expressions are rejected with an error.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np
import scipy.special as _sps
import sympy as sp

from feyntk.errors import ActivationError

Z = sp.Symbol("z", real=True)
"""The one variable every activation expression is written in."""

class Sigmoid(sp.Function):
    """The logistic function 1/(1+e^{-x}); derivatives stay polynomials in it (stable numerics)."""

    def fdiff(self, argindex=1):
        s = Sigmoid(self.args[0])
        return s * (1 - s)

    def _latex(self, printer):
        return rf"\operatorname{{sigmoid}}\left({printer._print(self.args[0])}\right)"


class Softplus(sp.Function):
    """log(1 + e^x), evaluated stably; its derivative is :class:`Sigmoid`."""

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def _latex(self, printer):
        return rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"


_SYMPY_LOCALS = {"z": Z, "Heaviside": sp.Heaviside, "H": sp.Heaviside, "erf": sp.erf,
                 "sigmoid": Sigmoid, "softplus": Softplus, "relu": lambda x: sp.Max(0, x)}

DERIVATIVES = ("distributional", "pointwise")
"""How derivatives of kinked activations are defined (see the module docstring)."""

MAX_ORDER = 8
"""Highest derivative order that activations are asked for (the ddNTKs need 4; the order-1/n²
K² needs 8 in the derivative form: two V vertices on one blob)."""


@dataclass(frozen=True)
class DeltaTerm:
    """One singular term ``coeff · δ^{(order)}(z - point)`` of a distributional derivative."""

    point: float
    order: int
    coeff: float


@dataclass(frozen=True)
class Derivative:
    """The k-th distributional derivative of an activation: regular part + deltas.

    Attributes:
        order: k.
        regular: sympy expression of the classical part (may contain ``Heaviside``).
        deltas: singular terms; empty for a function that is k times differentiable a.e.
            without jumps in its (k-1)-th derivative.
    """

    order: int
    regular: sp.Expr
    deltas: tuple[DeltaTerm, ...] = ()

    @property
    def is_regular(self) -> bool:
        return not self.deltas

    @property
    def has_jumps(self) -> bool:
        return bool(self.regular.atoms(sp.Heaviside))

    def expr(self) -> sp.Expr:
        """Full sympy expression, singular part written with ``DiracDelta``."""
        sing = sum((sp.Float(d.coeff) * (sp.DiracDelta(Z - d.point, d.order) if d.order
                    else sp.DiracDelta(Z - d.point)) for d in self.deltas), sp.Integer(0))
        return self.regular + sing


def _numpy_modules():
    return [{"erf": _sps.erf, "erfc": _sps.erfc, "Sigmoid": _sps.expit,
             "Softplus": lambda x: np.logaddexp(0.0, x),
             "Heaviside": lambda x, h=0.5: np.heaviside(x, h)}, "numpy"]


def _jax_modules():
    import jax
    import jax.numpy as jnp
    import jax.scipy.special as jss

    return [{"erf": jss.erf, "erfc": jss.erfc, "Sigmoid": jax.nn.sigmoid,
             "Softplus": jax.nn.softplus,
             "Heaviside": lambda x, h=0.5: jnp.heaviside(x, h)}, "jax"]


def _lambdify(expr: sp.Expr, modules) -> Callable:
    f = sp.lambdify(Z, expr, modules=modules)
    if Z not in expr.free_symbols:  # constants must still broadcast over arrays
        return lambda x, _f=f: _f(x) + 0 * x
    return f


@functools.lru_cache(maxsize=512)
def _kinks(expr: sp.Expr) -> tuple[float, ...]:
    """Kink points of σ (memoised: the sympy work was a third of a relu predict)."""
    return tuple(sorted({_split_linear_arg(h.args[0])[1] for h in expr.atoms(sp.Heaviside)}))


def _split_linear_arg(arg: sp.Expr) -> tuple[float, float]:
    """Return (slope, point) for a linear argument ``slope*(z - point)``."""
    poly = sp.Poly(sp.expand(arg), Z) if arg.free_symbols <= {Z} else None
    if poly is None or poly.degree() != 1:
        raise ActivationError(
            f"cannot locate the kink of {arg}: jumps and kinks are supported only at points "
            "z = c (arguments linear in z, e.g. Heaviside(z - 1)).")
    a, b = (float(c) for c in poly.all_coeffs())
    return a, -b / a + 0.0  # + 0.0 turns -0.0 into 0.0


def _canonical_heaviside(expr: sp.Expr) -> sp.Expr:
    """Rewrite Max/Min/Abs/sign/Piecewise into ``Heaviside(z - c)`` with positive slope."""
    expr = expr.rewrite(sp.Heaviside)
    expr = expr.replace(lambda e: isinstance(e, sp.Piecewise), _piecewise_to_heaviside)
    expr = expr.replace(lambda e: isinstance(e, sp.sign), lambda e: 2 * sp.Heaviside(e.args[0]) - 1)

    def canon(h):
        a, c = _split_linear_arg(h.args[0])
        return sp.Heaviside(Z - c) if a > 0 else 1 - sp.Heaviside(Z - c)

    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside), canon)
    # H(u)^k = H(u) for k >= 1
    expr = expr.replace(lambda e: isinstance(e, sp.Pow) and isinstance(e.base, sp.Heaviside)
                        and e.exp.is_positive, lambda e: e.base)
    return sp.expand(expr)


def _piecewise_to_heaviside(pw: sp.Piecewise) -> sp.Expr:
    """Piecewise((e1, z > c), (e2, True)) style, conditions linear in z -> Heaviside form."""
    out = sp.Integer(0)
    rest = sp.Integer(1)  # indicator that no earlier condition held
    for e, cond in pw.args:
        if cond is sp.true:
            out += e * rest
            return out
        if not isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan, sp.StrictLessThan,
                                 sp.LessThan)):
            raise ActivationError(f"unsupported Piecewise condition {cond}; use z > c or z < c")
        diff = cond.lhs - cond.rhs
        ind = sp.Heaviside(diff) if isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan)) \
            else sp.Heaviside(-diff)
        out += e * rest * ind
        rest = rest * (1 - ind)
    return out


def _normalise(expr: sp.Expr, order: int) -> Derivative:
    """Split an expression with DiracDelta factors into regular part + numeric delta terms."""
    if not expr.has(sp.DiracDelta):
        return Derivative(order=order, regular=expr)
    regular = sp.Integer(0)
    deltas: dict[tuple[float, int], float] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        factors = sp.Mul.make_args(term)
        dfac = [f for f in factors if isinstance(f, sp.DiracDelta)
                or (isinstance(f, sp.Pow) and isinstance(f.base, sp.DiracDelta))]
        if not dfac:
            regular += term
            continue
        if len(dfac) > 1 or isinstance(dfac[0], sp.Pow):
            raise ActivationError(f"ill-defined product of delta functions in {term}")
        delta = dfac[0]
        m = int(delta.args[1]) if len(delta.args) > 1 else 0
        a, c = _split_linear_arg(delta.args[0])
        if abs(a - 1.0) > 1e-14:
            raise ActivationError(f"unexpected delta argument {delta.args[0]}")
        coeff = sp.Mul(*[f for f in factors if f is not delta])
        here = [h for h in coeff.atoms(sp.Heaviside)
                if abs(_split_linear_arg(h.args[0])[1] - c) < 1e-14]
        if m == 0 and here:
            # δ(z−c)·P(H(z−c)) in the limit of any smoothing family of the step:
            # ∫ H_β' P(H_β) g → g(c) ∫_0^1 P(u) du (e.g. δ·H = δ/2, δ·H² = δ/3)
            u = sp.Symbol("u")
            poly = coeff.subs({h: u for h in here}).subs(Z, c)
            val = float(sp.N(sp.integrate(poly, (u, 0, 1)), 30))
            if val != 0.0:
                deltas[(c, 0)] = deltas.get((c, 0), 0.0) + val
            continue
        for j in range(m + 1):
            # f^{(j)}(c) from both sides: a jump of f, f', … where the delta sits is ill-defined
            fj = sp.diff(coeff, Z, j)
            sides = [float(sp.N(fj.subs({h: v for h in here}).subs(Z, c), 30)) for v in (0, 1)]
            if abs(sides[0] - sides[1]) > 1e-12 * (1 + abs(sides[0])):
                raise ActivationError(
                    f"a jump and a delta meet at z = {c} in {term}: this distribution is "
                    "ill-defined. Smooth the activation or move one of the kinks.")
            val = (-1) ** j * math.comb(m, j) * sides[0]
            if val != 0.0:
                key = (c, m - j)
                deltas[key] = deltas.get(key, 0.0) + val
    terms = tuple(DeltaTerm(point=c, order=m, coeff=v)
                  for (c, m), v in sorted(deltas.items()) if abs(v) > 1e-15)
    return Derivative(order=order, regular=sp.simplify(regular) if regular.atoms(sp.Heaviside)
                      and len(regular.args) < 20 else regular, deltas=terms)


@functools.lru_cache(maxsize=512)
def _derivative(expr: sp.Expr, k: int) -> Derivative:
    """k-th distributional derivative, built recursively from the (k-1)-th (cached)."""
    if k == 0:
        d0 = _normalise(expr, 0)
        if not d0.is_regular:
            raise ActivationError("the activation itself must be a function, not contain deltas")
        return d0
    return _normalise(sp.diff(_derivative(expr, k - 1).expr(), Z), k)


@functools.lru_cache(maxsize=1024)
def product_derivative(expr: sp.Expr, ks: tuple[int, ...], j: int,
                       pointwise: bool = False) -> Derivative:
    """The j-th distributional derivative of ``Π_m σ^{(k_m)}(z)`` for one variable z.

    The product is formed first and differentiated afterwards, so that e.g. for relu
    ``d⁴/dz⁴ (σσ) = d⁴/dz⁴ (z² H(z)) = 2δ'(z)`` is well defined although single product-rule
    terms such as ``σ⁗σ`` are not. Products that stay ill-defined (a delta times a jump at the
    same point, two deltas at one point) raise :class:`ActivationError`. With ``pointwise``
    each factor is the regular part of σ^{(k)} (σ'' = 0 for relu) before the j derivatives.
    """
    base = sp.expand(sp.Mul(*((_derivative(expr, k).regular if pointwise
                               else _derivative(expr, k).expr()) for k in ks)))
    # H^k = H as functions, but not next to a delta (δ·H² → δ/3 in the smooth limit)
    base = sp.Add(*(t if t.has(sp.DiracDelta) else t.replace(
        lambda e: isinstance(e, sp.Pow) and isinstance(e.base, sp.Heaviside), lambda e: e.base)
        for t in sp.Add.make_args(base)))
    d = _normalise(base, 0)
    for step in range(1, j + 1):
        d = _normalise(sp.diff(d.expr(), Z), step)
    return Derivative(order=j, regular=d.regular, deltas=d.deltas)


@dataclass(frozen=True)
class Activation:
    """A pointwise activation σ(z) given as a sympy expression in :data:`Z`.

    Attributes:
        name: short name (``"tanh"``, ``"relu"``, or the expression string for custom ones).
        expr: the sympy expression σ(z), jumps written with ``Heaviside(z - c)``.
        closed_form: key of a Gaussian-integral family with closed forms (``"linear"``,
            ``"relu"`` for the leaky/plain ReLU family, ``"erf"``) or ``None``.
        params: numeric parameters of the family (e.g. ``(("slope", 0.01),)``).
        derivatives: ``"distributional"`` (default: relu σ'' = δ, the β → ∞ limit of
            softplus_β) or ``"pointwise"`` (every σ^{(k)} replaced by its regular part, relu
            σ'' = 0: what automatic differentiation sees); identical for smooth activations.
    """

    name: str
    expr: sp.Expr
    closed_form: str | None = None
    params: tuple[tuple[str, float], ...] = field(default=())
    derivatives: str = "distributional"

    def __post_init__(self):
        if self.derivatives not in DERIVATIVES:
            raise ActivationError(
                f"derivatives must be one of {DERIVATIVES}, got {self.derivatives!r}: "
                "'distributional' (relu σ'' = δ, feyntk's default) or 'pointwise' (σ'' = 0 "
                "almost everywhere, what autodiff of a relu network sees)")
        expr = sp.sympify(self.expr)
        if not isinstance(expr, sp.Expr):
            raise ActivationError(f"activation {self.name!r} is not an expression in z")
        extra = expr.free_symbols - {Z}
        if extra or Z not in expr.free_symbols:
            raise ActivationError(
                f"activation {self.name!r} must be a function of the single variable z "
                f"(found symbols {sorted(map(str, expr.free_symbols)) or 'none'}). "
                f"Example: 'z*tanh(z)'. Known names: {', '.join(known_activations())}.")
        object.__setattr__(self, "expr", _canonical_heaviside(expr))
        grid = np.linspace(-12.0, 12.0, 2401)
        with np.errstate(all="ignore"):
            vals = np.asarray(self.numpy(0)(grid), dtype=float)
        if not np.all(np.isfinite(vals)):
            bad = grid[~np.isfinite(vals)][0]
            raise ActivationError(
                f"activation {self.name!r} is not finite at z = {bad:g}: it must be defined "
                "for every real z because preactivations are Gaussian.")

    # -- symbolic ---------------------------------------------------------------------------
    def derivative(self, k: int) -> Derivative:
        """The k-th distributional derivative (k = 0 is σ itself)."""
        if not 0 <= k <= MAX_ORDER:
            raise ActivationError(f"derivative order must be in 0..{MAX_ORDER}, got {k}")
        d = _derivative(self.expr, k)
        if self.derivatives == "pointwise" and d.deltas:
            return Derivative(order=k, regular=d.regular)
        return d

    @property
    def kinks(self) -> tuple[float, ...]:
        """Points where some derivative of σ is singular (jumps or deltas)."""
        return _kinks(self.expr)

    @property
    def is_smooth(self) -> bool:
        return not self.kinks

    @property
    def regular_order(self) -> int:
        """Largest k such that σ, σ', …, σ^{(k)} are ordinary functions (no deltas).

        ``MAX_ORDER`` for smooth activations; 1 for relu (σ' = step, σ'' = δ).
        """
        if self.is_smooth:
            return MAX_ORDER
        for k in range(MAX_ORDER + 1):
            if not self.derivative(k).is_regular:
                return k - 1
        return MAX_ORDER

    @property
    def is_scale_invariant(self) -> bool:
        """σ(λz) = λσ(z) for λ > 0 (linear, relu, leaky relu)."""
        grid = np.linspace(-5.0, 5.0, 101)
        f = self.numpy(0)
        return all(np.allclose(f(lam * grid), lam * f(grid), rtol=1e-12, atol=1e-12)
                   for lam in (0.37, 2.9))

    def require_regular(self, k: int, what: str) -> None:
        """Raise a clear error unless σ^{(k)} is an ordinary function."""
        if self.regular_order < k:
            d = self.derivative(k)
            raise ActivationError(
                f"{what} needs the derivative σ^({k}) of {self.name!r} as an ordinary function, "
                f"but it contains delta functions at z = {sorted({t.point for t in d.deltas})}. "
                "Use a smooth activation (e.g. gelu, tanh), or a tensor that needs fewer "
                "derivatives; for relu use the smooth family {\"name\": \"softplus\", "
                "\"beta\": 16}, whose beta -> infinity limit is the relu value feyntk predicts.")

    # -- numeric ----------------------------------------------------------------------------
    def blob_factor(self, ks: tuple[int, ...], j: int = 0) -> Derivative:
        """``d^j/dz^j Π_m σ^{(k_m)}(z)`` as a distribution (see :func:`product_derivative`)."""
        return product_derivative(self.expr, tuple(sorted(ks)), j,
                                  self.derivatives == "pointwise")

    def numpy(self, k: int = 0) -> Callable[[np.ndarray], np.ndarray]:
        """Vectorised numpy function of the regular part of σ^{(k)}."""
        return _lambdify_cached(self.derivative(k).regular, "numpy")

    def jax(self, k: int = 0) -> Callable:
        """JAX-traceable function of the regular part of σ^{(k)}."""
        return _lambdify_cached(self.derivative(k).regular, "jax")

    def __call__(self, x):
        return self.numpy(0)(np.asarray(x, dtype=float))

    def _repr_latex_(self) -> str:
        return rf"$\sigma(z) = {sp.latex(self.expr)}$"

    def __str__(self) -> str:
        return self.name


@functools.lru_cache(maxsize=512)
def _lambdify_cached(expr: sp.Expr, backend: str) -> Callable:
    return _lambdify(expr, _numpy_modules() if backend == "numpy" else _jax_modules())


# -- the catalogue --------------------------------------------------------------------------
def _relu_family(slope: float) -> sp.Expr:
    return Z * (sp.Float(slope) + (1 - sp.Float(slope)) * sp.Heaviside(Z)) if slope else \
        Z * sp.Heaviside(Z)


_FACTORIES: Mapping[str, Callable[..., Activation]] = {
    "linear": lambda: Activation("linear", Z, "linear"),
    "relu": lambda: Activation("relu", Z * sp.Heaviside(Z), "relu", (("slope", 0.0),)),
    "leaky_relu": lambda slope=0.01: Activation(
        f"leaky_relu(slope={slope:g})", _relu_family(float(slope)), "relu",
        (("slope", float(slope)),)),
    "tanh": lambda: Activation("tanh", sp.tanh(Z)),
    "erf": lambda: Activation("erf", sp.erf(Z), "erf"),
    "gelu": lambda: Activation("gelu", Z * (1 + sp.erf(Z / sp.sqrt(2))) / 2),
    "softplus": lambda beta=1.0: Activation(
        "softplus" if float(beta) == 1.0 else f"softplus(beta={float(beta):g})",
        Softplus(sp.Float(beta) * Z) / sp.Float(beta) if float(beta) != 1.0 else Softplus(Z),
        None, (("beta", float(beta)),)),
    "swish": lambda: Activation("swish", Z * Sigmoid(Z)),
    "sin": lambda: Activation("sin", sp.sin(Z)),
}


def with_derivatives(act: Activation, derivatives: str) -> Activation:
    """``act`` with kinked derivatives defined as ``derivatives`` (see :data:`DERIVATIVES`);
    the pointwise variant of a kinked activation is named ``"<name>[pointwise]"``."""
    if derivatives == act.derivatives:
        return act
    if derivatives not in DERIVATIVES:
        raise ActivationError(
            f"derivatives must be one of {DERIVATIVES}, got {derivatives!r}: 'distributional' "
            "(relu σ'' = δ, feyntk's default) or 'pointwise' (σ'' = 0 almost everywhere, what "
            "autodiff of a relu network sees)")
    if act.is_smooth:  # the two definitions coincide
        return act
    base = act.name.removesuffix("[pointwise]")
    return replace(act, derivatives=derivatives,
                   name=base + ("[pointwise]" if derivatives == "pointwise" else ""))


def known_activations() -> tuple[str, ...]:
    """Names accepted by :func:`get_activation`."""
    return tuple(_FACTORIES)


def get_activation(spec: str | Mapping | Activation | sp.Expr) -> Activation:
    """Build an activation from a name, a ``{"name": ..., **params}`` dict, or an expression.

    Examples: ``"tanh"``, ``{"name": "leaky_relu", "slope": 0.1}``,
    ``{"name": "softplus", "beta": 4}``, ``"z*tanh(z)"``, ``sympy.sin(Z) + Z``.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, Mapping):
        spec = dict(spec)
        name = spec.pop("name", None)
        derivatives = spec.pop("derivatives", "distributional")
        if name not in _FACTORIES:
            if name is not None and isinstance(name, str) and name.strip() and not spec:
                return with_derivatives(get_activation(name), derivatives)
            raise ActivationError(
                f"unknown activation {name!r}; known: {', '.join(known_activations())}")
        try:
            act = _FACTORIES[name](**spec)
        except TypeError as exc:
            raise ActivationError(f"bad parameters for activation {name!r}: {exc}") from None
        return with_derivatives(act, derivatives)
    if isinstance(spec, sp.Expr):
        return Activation(str(spec), spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ActivationError(f"activation must be a name or an expression in z, got {spec!r}")
    key = spec.strip()
    if key in _FACTORIES:
        return _FACTORIES[key]()
    try:
        expr = sp.sympify(key, locals=_SYMPY_LOCALS)
    except (sp.SympifyError, SyntaxError, TypeError) as exc:
        raise ActivationError(
            f"unknown activation {key!r}: not one of {', '.join(known_activations())} and not a "
            f"valid expression in z ({exc.__class__.__name__})") from None
    if not isinstance(expr, sp.Expr) or Z not in getattr(expr, "free_symbols", set()):
        raise ActivationError(
            f"unknown activation {key!r}: known names are {', '.join(known_activations())}; "
            "a custom activation must be an expression in the variable z, e.g. 'z*tanh(z)'.")
    return Activation(key, expr)
