"""Code printers for the generated kernels: one printer class per backend.

``NumbaPrinter`` and ``JaxPrinter`` are sympy ``PythonCodePrinter`` s that differ only by their
module tables (``_module`` and the function table ``_kf``): the kernels' bodies are the same
CSE'd assignments, printed for scalars inside numba loops or for arrays under ``jax.jit``.
Both are strict: a function without an entry in the table raises instead of printing code
that would fail later.

:func:`assignments` turns a list of named sympy outputs into ``sympy.codegen.ast.Assignment``
nodes after common-subexpression elimination, and :func:`print_block` prints them.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.ast import Assignment
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

_FUNCTIONS = ("exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "tan", "atan",
              "asinh", "acosh", "atanh", "asin", "acos", "erf", "erfc", "expm1", "log1p")


class _KernelPrinter(PythonCodePrinter):
    """Strict scalar/array code printer; subclasses set ``_module`` and ``_kf``."""

    _module = "math"
    _kf: dict[str, str] = {}
    _kc: dict[str, str] = {}

    def __init__(self, settings=None):
        super().__init__({"strict": True, "fully_qualified_modules": True, **(settings or {})})
        self.known_functions = dict(self._kf)
        self.known_constants = dict(self._kc)

    def _print_Rational(self, expr):
        return f"({float(expr.p)!r}/{float(expr.q)!r})"

    def _print_Integer(self, expr):
        return f"{float(expr)!r}"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and 1 < int(exp) <= 8:  # exact repeated products, no pow() call
            b = self.parenthesize(base, 100)
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and -8 <= int(exp) <= -1:
            return f"(1.0/{self.parenthesize(base ** (-exp), PRECEDENCE['Mul'])})"
        if exp == sp.Rational(1, 2):
            return f"{self._kf['sqrt']}({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0/{self._kf['sqrt']}({self._print(base)}))"
        return super()._print_Pow(expr, rational=rational)

    def _print_Indexed(self, expr):
        return f"{expr.base}[{', '.join(self._print(i) for i in expr.indices)}]"

    def _print_Symbol(self, expr):
        return expr.name

    def _print_Heaviside(self, expr):
        return f"{self._heaviside}({self._print(expr.args[0])})"

    def _print_Sigmoid(self, expr):  # feyntk.spec.activation.Sigmoid
        return f"{self._sigmoid}({self._print(expr.args[0])})"

    def _print_Softplus(self, expr):  # feyntk.spec.activation.Softplus
        return f"{self._softplus}({self._print(expr.args[0])})"


class NumbaPrinter(_KernelPrinter):
    """Scalar code for ``numba.njit`` kernels (``math`` module functions).

    ``tanh`` prints as the module's ``_tanh`` (one ``exp``; twice as fast as libm's ``tanh``,
    absolute error below 2e-16).
    """

    _module = "math"
    _kf = {**{f: f"math.{f}" for f in _FUNCTIONS}, "tanh": "_tanh"}
    _kc = {"Pi": "math.pi", "Exp1": "math.e"}
    _heaviside = "_heaviside"
    _sigmoid = "_sigmoid"
    _softplus = "_softplus"


class JaxPrinter(_KernelPrinter):
    """Array code for ``jax.jit`` functions (``jax.numpy`` and ``jax.scipy.special``)."""

    _module = "jnp"
    _kf = {**{f: f"jnp.{f}" for f in _FUNCTIONS}, "erf": "jss.erf", "erfc": "jss.erfc"}
    _kc = {"Pi": "jnp.pi", "Exp1": "jnp.e"}
    _heaviside = "_heaviside"
    _sigmoid = "jax.nn.sigmoid"
    _softplus = "jax.nn.softplus"


PRINTERS = {"numba": NumbaPrinter, "jax": JaxPrinter}


def assignments(outputs: list[tuple[str, sp.Expr]], prefix: str = "x") -> list[Assignment]:
    """CSE over all outputs; returns temporaries then one assignment per named output."""
    names = [n for n, _ in outputs]
    exprs = [sp.sympify(e) for _, e in outputs]
    subs, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(prefix), optimizations="basic",
                           order="none")
    out = [Assignment(s, e) for s, e in subs]
    out += [Assignment(sp.Symbol(n), e) for n, e in zip(names, reduced)]
    return out


def print_block(assigns: list[Assignment], printer: _KernelPrinter, indent: str,
                augment: dict[str, str] | None = None) -> str:
    """Print assignments, one per line; ``augment`` maps output names to ``+=`` targets."""
    lines = []
    augment = augment or {}
    for a in assigns:
        lhs = a.lhs.name
        rhs = printer.doprint(a.rhs)
        if lhs in augment:
            lines.append(f"{indent}{augment[lhs]} += {rhs}")
        else:
            lines.append(f"{indent}{lhs} = {rhs}")
    return "\n".join(lines)
