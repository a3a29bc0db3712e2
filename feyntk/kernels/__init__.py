"""Kernels generated from the diagrams: numba for the CPU, JAX for any device (stage 4).

Pipeline: :func:`lower` (diagram terms → products of reads, :mod:`.lower`) → integrand and
contraction source printed after CSE (:mod:`.printers`, :mod:`.module`) → cached and
compiled like ``lambdify`` (:mod:`.compile`) → evaluated layer by layer (:mod:`.engine`),
with the Gaussian-expectation tables computed by the oracle's quadrature rule for all
sample subsets at once (:mod:`.tables`).

Quick start::

    from feyntk.kernels import codegen, evaluate
    print(codegen("V", "tanh", "derivative", "numba").source)
    evaluate(network, x, ["V", "A"], backend="numba")
"""

from feyntk.kernels.compile import cache_dir as cache_dir
from feyntk.kernels.engine import BACKENDS as BACKENDS
from feyntk.kernels.engine import available_backends as available_backends
from feyntk.kernels.engine import choose_backend as choose_backend
from feyntk.kernels.engine import evaluate as evaluate
from feyntk.kernels.engine import memory_needed as memory_needed
from feyntk.kernels.lower import lower as lower
from feyntk.kernels.lower import symmetries as symmetries
from feyntk.kernels.module import Generated as Generated
from feyntk.kernels.module import codegen as codegen
