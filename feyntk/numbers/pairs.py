"""Moved to :mod:`feyntk.numbers.gaussian.pairs` (two-sample tables by Mehler's expansion).

``feyntk.numbers.pairs`` stays importable and *is* that module (one module object, so patching
either name patches both)."""

import sys

from feyntk.numbers.gaussian import pairs as _pairs

sys.modules[__name__] = _pairs
