"""Compiling generated source the way ``sympy.lambdify`` does, with an on-disk cache.

Generated modules are plain Python files under :func:`cache_dir` (``$FEYNTK_CACHE``, default
``~/.cache/feyntk``), named by their cache key. Loading one registers its source with
:mod:`linecache` (tracebacks and ``inspect.getsource`` show the generated lines) and imports it
from the file, so numba's own ``cache=True`` can persist machine code next to it.

The key is ``<statistics>-<activation>-<form>-<backend>-<hash>``; the hash covers the diagram
terms, the activation's full identity (every field of the frozen
:class:`~feyntk.spec.activation.Activation`, :func:`activation_identity`) and
:func:`generator_digest`: the source of every module that shapes generated code
(:data:`GENERATOR_SOURCES`: the kernel generator, the diagram engine, the recursions, the
activation's derivatives, the quadrature rule) and the versions of Python and of
:data:`VERSIONED` packages. A change in any of them writes a new file instead of reusing a stale
one (old files are never deleted automatically: remove the cache directory to reclaim space).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import linecache
import os
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType

CODEGEN_VERSION = "2"
"""Bump when the generated code changes for the same inputs."""

_LOADED: dict[str, ModuleType] = {}


def cache_dir() -> Path:
    """Directory of generated sources: ``$FEYNTK_CACHE`` or ``~/.cache/feyntk``."""
    root = os.environ.get("FEYNTK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "feyntk")
    path = Path(root) / f"kernels-v{CODEGEN_VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:40] or "x"


GENERATOR_SOURCES = ("kernels", "diagrams", "recursions", "spec/activation.py",
                     "spec/statistic.py", "numbers/gaussian", "errors.py")
"""Paths (relative to the ``feyntk`` package; folders mean every ``.py`` file below them) whose
source shapes generated code. ``tests/test_kernel_cache.py`` checks that every ``feyntk`` module
the generator imports, directly or not, is among them."""

VERSIONED = ("feyntk", "sympy", "numba", "llvmlite", "jax", "jaxlib", "numpy")
"""Distributions whose versions are part of every key (with Python's)."""


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def source_files() -> dict[str, bytes]:
    """``{path relative to feyntk/: source bytes}`` of :data:`GENERATOR_SOURCES`, sorted."""
    root = _package_root()
    files: dict[str, bytes] = {}
    for rel in GENERATOR_SOURCES:
        path = root / rel
        paths = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in paths:
            files[f.relative_to(root).as_posix()] = f.read_bytes()
    return dict(sorted(files.items()))


def versions() -> dict[str, str]:
    """``{"python": ..., package: version or "absent"}`` for :data:`VERSIONED`."""
    out = {"python": sys.version}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def digest_of(files: dict[str, bytes], vers: dict[str, str]) -> str:
    """Hash of :data:`CODEGEN_VERSION`, source ``files`` (names and contents) and ``vers``."""
    h = hashlib.sha256(f"codegen {CODEGEN_VERSION}\0".encode())
    for name, data in sorted(files.items()):
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    for name, version in sorted(vers.items()):
        h.update(f"{name}={version}\0".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def generator_digest() -> str:
    """Hash of everything that shapes generated code besides the request itself: the source of
    :data:`GENERATOR_SOURCES` and the versions of Python and :data:`VERSIONED` (computed once per
    process; ``generator_digest.cache_clear()`` recomputes it)."""
    return digest_of(source_files(), versions())


def _stable_repr(value) -> str:
    """A repr that identifies ``value`` exactly (sympy objects by ``srepr``)."""
    import sympy as sp

    if isinstance(value, sp.Basic):
        return sp.srepr(value)
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_stable_repr(v) for v in value)
        return f"{type(value).__name__}({inner})"
    if isinstance(value, dict):
        return "dict(" + ", ".join(f"{_stable_repr(k)}: {_stable_repr(v)}"
                                   for k, v in sorted(value.items(), key=repr)) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return activation_identity(value)
    return repr(value)


def activation_identity(act) -> str:
    """Every field of the (dataclass) activation ``act``, by name, with its type's name, so a
    field added to :class:`~feyntk.spec.activation.Activation` is part of the key by itself."""
    fields = ", ".join(f"{f.name}={_stable_repr(getattr(act, f.name))}"
                       for f in dataclasses.fields(act))
    return f"{type(act).__module__}.{type(act).__qualname__}({fields})"


def cache_key(statistics, activation: str, form: str, backend: str, digest: str) -> str:
    """``<statistics>-<activation>-<form>-<backend>-<hash>`` (a valid file/module stem).

    ``activation`` is only a label (its slug names the file); what identifies the request goes
    into ``digest`` (diagram terms, :func:`activation_identity`, ...). The hash covers the
    label, ``digest`` and :func:`generator_digest`.
    """
    stats = "_".join(statistics)
    h = hashlib.sha256(f"{stats}|{activation}|{form}|{backend}|{digest}|{generator_digest()}"
                       .encode()).hexdigest()[:12]
    return f"{_slug(stats)}-{_slug(activation)}-{_slug(form)}-{backend}-{h}"


def source_path(key: str) -> Path:
    return cache_dir() / f"{key.replace('-', '_')}.py"


def cached_source(key: str) -> str | None:
    """The cached source for ``key``, or None."""
    path = source_path(key)
    return path.read_text() if path.exists() else None


def store_source(key: str, source: str) -> Path:
    """Write ``source`` atomically (no rewrite when unchanged, so numba's cache stays valid)."""
    path = source_path(key)
    if path.exists() and path.read_text() == source:
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(source)
    os.replace(tmp, path)
    return path


def load_module(key: str, source: str) -> ModuleType:
    """Import generated ``source`` (stored under ``key``) as a module; memoised per process."""
    path = store_source(key, source)  # (re)written if the cache folder changed meanwhile
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    name = f"feyntk_generated.{path.stem}"
    linecache.cache[str(path)] = (len(source), None, source.splitlines(True), str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module.__source__ = source
    _LOADED[str(path)] = module
    return module
