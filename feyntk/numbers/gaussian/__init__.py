"""Gaussian expectations ⟨f⟩_K over the preactivations of up to four samples.

Conventions: ``⟨f⟩_K = E[f(z)]`` with ``z ~ N(0, K)``, ``K`` a d×d covariance (d ≤ 4 samples).

Two methods, one result type :class:`Estimate` (value and an error estimate):

* **Quadrature** (any f): K = L Lᵀ is factorised (:func:`factor`: a pivoted triangular factor
  for d ≥ 3, eigen directions for d ≤ 2), directions with zero variance are dropped (so
  duplicate inputs, zero-norm inputs and rank-deficient Gram matrices give the correct limit,
  never NaN), and a tensor-product Gauss–Hermite rule is applied: m points along the widest
  direction, fewer along narrower ones (∝ the column norm, :func:`node_counts`), nodes of
  negligible weight pruned (:data:`PRUNE`); 2-d integrals use a polar rule, and 3- and 4-d
  integrands whose kinks all sit at z_a = 0 (the relu family) a conical rule, its
  generalisation (:func:`conical_nodes`). The rule is refined (m → 2m) until two successive
  results agree to ``atol + rtol·|value|``; the error estimate is their difference. Smooth
  integrands converge exponentially, and so do kinked ones on the polar and conical rules;
  Gauss–Hermite on a kinked integrand converges only algebraically (and can look converged
  while wrong by ~1e-3), so it is the fallback only for kinks elsewhere or a factor too
  ill-conditioned to invert.
* **Closed forms** for pairs of σ-derivatives: linear; the ReLU/leaky-ReLU arc-cosine family;
  erf (Williams' arcsine kernel). Exact up to rounding (error reported as 0).

:func:`pair_table` evaluates ``E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)]`` for all pairs (a, b) of N
samples at once: the workhorse of the infinite-width kernels.

One module per rule; a new rule is a new module, chosen in :func:`expect`:

=================  ===============================================================================
``report``         tolerances (RTOL, ATOL), :class:`Estimate`, the error report
                   (:class:`QuadratureReport`, :func:`capped_error`, QUAD_WARN)
``gauss1d``        1-d rules: Gauss–Hermite, Gauss–Legendre, half-range
``factors``        factors K = L Lᵀ (eigen, pivoted triangular), rank decision, invertibility
``pruning``        node pruning of tensor rules (PRUNE, :func:`prune_cuts`)
``hermite``        anisotropic tensor Gauss–Hermite rule and its levels
``polar``          the 2-d polar rule
``piecewise``      the 1-d rule split at kinks (rank-one covariances)
``conical``        the 3- and 4-d conical rule (kinks at z_a = 0)
``adaptive``       :func:`expect`: rule choice and adaptive refinement
``closed``         closed forms of pairs of σ-derivatives
``orthant``        orthant probabilities and moments of centred Gaussians (Plackett, Stein)
``relu``           closed forms of the relu family's blobs over 1–4 samples, all subsets at once
``pairs``          pair tables by Mehler's expansion
``table``          :func:`pair_table` over all pairs of N samples
=================  ===============================================================================

Every name is re-exported here; code that patches a name for a test patches it in the module
that uses it (e.g. ``gaussian.conical.CONE_MAX``, ``gaussian.table.expect``).
"""

from __future__ import annotations

from feyntk.numbers.gaussian.report import (ATOL, EXTRAPOLATION_SAFETY, QUAD_WARN, RATE_EXPONENT,
                                            REFINED_SAFETY, RTOL, Estimate, QuadratureReport,
                                            capped_error, extrapolated_error, refined_error,
                                            tensor_error)
from feyntk.numbers.gaussian.gauss1d import _MP_LOCK, halfrange_rule, hermite_rule, legendre_rule
from feyntk.numbers.gaussian.factors import (_EIG_TOL, INVERSE_FLOOR, eigen_directions, factor,
                                             invertible, require_invertible, triangular_directions,
                                             _whiten)
from feyntk.numbers.gaussian.pruning import PRUNE, prune_cuts
from feyntk.numbers.gaussian.hermite import (M_MAX, M_START, MIN_SCALE, _apply_rule,
                                             direction_scales, node_counts, tensor_levels,
                                             _tensor_rule)
from feyntk.numbers.gaussian.polar import (POLAR_LEVELS, kinks_at_origin, polar_applies,
                                           _polar_apply, polar_nodes)
from feyntk.numbers.gaussian.piecewise import _piecewise_apply
from feyntk.numbers.gaussian.conical import (CONE_CHUNK, CONE_COND, CONE_LEVELS, CONE_MAX,
                                             CONE_SPLIT, _base_planes, cone_simplices,
                                             conical_applies, _conical_apply, conical_nodes,
                                             kink_planes, _simplex_rule)
from feyntk.numbers.gaussian.adaptive import PIECEWISE_LEVELS, expect, kinked_levels
from feyntk.numbers.gaussian.closed import _closed_pair
from feyntk.numbers.gaussian.pairs import mehler_pairs
from feyntk.numbers.gaussian.table import check_kinks_at_zero_variance, pair_table
from feyntk.numbers.gaussian import (adaptive, closed, conical, factors, gauss1d, hermite,
                                     orthant, pairs, piecewise, polar, pruning, relu, report,
                                     table)

__all__ = [
    "ATOL", "CONE_CHUNK", "CONE_COND", "CONE_LEVELS", "CONE_MAX", "CONE_SPLIT",
    "EXTRAPOLATION_SAFETY", "Estimate", "INVERSE_FLOOR", "MIN_SCALE", "M_MAX", "M_START",
    "PIECEWISE_LEVELS", "POLAR_LEVELS", "PRUNE", "QUAD_WARN", "QuadratureReport",
    "RATE_EXPONENT", "REFINED_SAFETY", "RTOL", "capped_error", "check_kinks_at_zero_variance",
    "cone_simplices", "conical_applies", "conical_nodes", "direction_scales",
    "eigen_directions", "expect", "extrapolated_error", "factor", "halfrange_rule",
    "hermite_rule", "invertible", "kink_planes", "kinked_levels", "kinks_at_origin",
    "legendre_rule", "mehler_pairs", "node_counts", "pair_table", "polar_applies",
    "polar_nodes", "prune_cuts", "refined_error", "require_invertible", "tensor_error",
    "tensor_levels", "triangular_directions"
]
