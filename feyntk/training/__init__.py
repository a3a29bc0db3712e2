"""Training stage (on top of ``numbers``): ensembles of networks trained by gradient descent.

``schedule`` (gradient descent / flow) → ``infinite`` (frozen-NTK closed forms) →
``dynamics`` (O(1/n) mean from the iterated function-space step map) and ``converged``
(its T = ∞ closed form) → ``ensemble`` (the ``train`` contract) and ``sample`` (real networks).
Conventions: MATH.md §7.
"""
