"""feyntk: finite-width corrections of deep neural networks from Feynman diagrams.

Pipeline (one-way, as the sub-packages show): ``spec`` (network, activation, statistics
registry, request contract) → ``diagrams`` (expand, generate, select, weigh) → ``recursions``
(sympy, LaTeX) → ``numbers`` (Gaussian expectations, layer-by-layer evaluation) → ``validate``
(Monte Carlo of real networks). Conventions: ``MATH.md`` of the project (PDLT notation).

Quick start::

    import feyntk
    cfg = {"widths": [2, 32, 32], "activation": "tanh", "inputs": [[1.0, 0.3], [-0.4, 0.9]]}
    feyntk.predict(cfg)["tensors"]["K"]["value"]
    feyntk.sample({**cfg, "samples": 500})["tensors"]["K"]
"""

from feyntk.api import derivable as derivable
from feyntk.api import predict as predict
from feyntk.api import predict_ntk_step as predict_ntk_step
from feyntk.api import sample as sample
from feyntk.api import statistics as statistics
from feyntk.api import train as train
from feyntk.api import train_sample as train_sample
from feyntk.diagrams.diagram import diagrams as diagrams
from feyntk.diagrams.draw import draw_all as draw_all
from feyntk.errors import FeyntkError as FeyntkError
from feyntk.errors import QuadratureWarning as QuadratureWarning
from feyntk.numbers.gaussian import expect as expect
from feyntk.numbers.gaussian import pair_table as pair_table
from feyntk.numbers.infinite import infinite_kernels as infinite_kernels
from feyntk.numbers.infinite import kernel_layers as kernel_layers
from feyntk.recursions.recursion import recursion as recursion
from feyntk.spec.activation import Activation as Activation
from feyntk.spec.activation import get_activation as get_activation
from feyntk.spec.activation import known_activations as known_activations
from feyntk.spec.config import Request as Request
from feyntk.spec.config import parse_request as parse_request
from feyntk.spec.network import Network as Network
from feyntk.spec.statistic import REGISTRY as REGISTRY
from feyntk.spec.statistic import TENSOR_NAMES as TENSOR_NAMES

__version__ = "0.1.0"
