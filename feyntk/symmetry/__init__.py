"""Symmetry stage (on top of ``numbers`` and ``training``): emergent equivariance, MATH.md §7.

``groups`` (finite groups as orthogonal matrices, parsed from the config's group spec) →
``kernels`` (infinite-width K and Θ of the symmetrized network f_G as group averages of the MLP
kernels) → ``augment`` (the orbit-augmented training set, the augmented and symmetrized
trained ensembles at infinite width, and the seeds' theorem μ^aug(t) = μ^G(|G| t)).

Not yet wired into the config/CLI (issue 16): the keys ``group`` (parsed by
:func:`groups.parse_group` with n0 = widths[0], n_L = widths[-1]), ``augment`` ("full" | "none")
and ``symmetrize`` need adding to ``spec.config.CONFIG_KEYS`` / ``training.ensemble.TRAIN_KEYS``
and dispatching in ``api.predict`` (K_G, Θ_G), ``training.ensemble.train`` (augmented or
symmetrized ensembles), and the samplers.
"""
