"""Symmetry stage (on top of ``numbers`` and ``training``): emergent equivariance, MATH.md §7.

``groups`` (finite groups as orthogonal matrices, parsed from the config's group spec) →
``kernels`` (infinite-width K and Θ of the symmetrized network f_G as group averages of the MLP
kernels) → ``augment`` (the orbit-augmented training set, the augmented and symmetrized
trained ensembles at infinite width, and the seeds' theorem μ^aug(t) = μ^G(|G| t)).

``tensors`` (the fifteen order-1/n tensors of f_G as orbit averages; explicit-label cumulants for
an output action) → ``sample`` (Monte Carlo of real f_G) → ``training`` (the O(1/n) means of the
augmented and symmetrized trained ensembles; weighted reduced training points) → ``config``
(the config keys ``group``, ``augment``, ``symmetrize``) → ``experiments`` (real trained MLPs,
augmented MLPs and symmetrized networks with every network's outputs kept; invariance error,
relative orbit std and orbit-same predictions against ensemble size, with the NTK prediction;
the bundled digits) and ``ising`` (periodic Ising lattice: enumeration, Metropolis sampler).

Wired (issue 16 item 1): ``feyntk.train`` (augment or symmetrize), ``train-sample`` (augment:
MLPs on the orbit; symmetrize: real f_G trained by ``training.sample`` with the output map of
``sample.symmetrized_output_map``), ``predict`` and ``sample`` (symmetrize, invariant groups),
through one-line hooks in ``training.ensemble.train`` and ``api``. Not yet: predict/sample of f_G
with an output action (no δ-structured tensors; use ``tensors.symmetrized_statistics``).
"""
