"""Compiling generated source the way ``sympy.lambdify`` does, with an on-disk cache.

Generated modules are plain Python files under :func:`cache_dir` (``$FEYNTK_CACHE``, default
``~/.cache/feyntk``), named by their cache key. Loading one registers its source with
:mod:`linecache` (tracebacks and ``inspect.getsource`` show the generated lines) and imports it
from the file, so numba's own ``cache=True`` can persist machine code next to it.

The key is ``<statistics>-<activation>-<form>-<backend>-<hash>``; the hash covers the diagram
terms, the activation's expression and the generator's own source, so a change in any of them
writes a new file instead of reusing a stale one (old files are never deleted automatically:
remove the cache directory to reclaim space).
"""

from __future__ import annotations

import functools
import hashlib
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


@functools.lru_cache(maxsize=1)
def generator_digest() -> str:
    """Hash of the code generator's own source, so that editing it never reuses stale files."""
    h = hashlib.sha256(CODEGEN_VERSION.encode())
    here = Path(__file__).parent
    for name in ("lower.py", "printers.py", "tables.py", "module.py", "separable.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def cache_key(statistics, activation: str, form: str, backend: str, digest: str) -> str:
    """``<statistics>-<activation>-<form>-<backend>-<hash>`` (a valid file/module stem).

    The hash covers ``digest`` (diagram terms, activation expression, ...) and
    :func:`generator_digest`.
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
