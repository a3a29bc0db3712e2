"""Symmetry stage (on top of ``numbers`` and ``training``): emergent equivariance, MATH.md §7.

``groups`` (finite groups as orthogonal matrices, parsed from the config's group spec) →
``kernels`` (infinite-width K and Θ of the symmetrized network f_G as group averages of the MLP
kernels) → ``augment`` (the orbit-augmented training set, the augmented and symmetrized
trained ensembles at infinite width, and the seeds' theorem μ^aug(t) = μ^G(|G| t)).
"""
