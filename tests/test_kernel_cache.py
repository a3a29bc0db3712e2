"""The on-disk kernel cache misses whenever anything that shapes generated code changes.

Keys (:func:`feyntk.kernels.module._keys`) combine the request (statistics, form, backend), the
diagram terms, the activation's full identity and :func:`feyntk.kernels.compile.generator_digest`
(sources of the generator, diagram engine, recursions, activation handling, quadrature rule,
printers; versions of Python and the packages). Each test changes one input and checks that every
key changes (a miss), and that an unchanged state gives the same keys and reuses the files (a hit).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import shutil
from pathlib import Path

import pytest

import feyntk
from feyntk.kernels import compile as kc
from feyntk.kernels import module as km
from feyntk.spec.activation import Activation, get_activation

PACKAGE = Path(feyntk.__file__).resolve().parent
REQUEST = (("K", "V"), "derivative", "numba")


@pytest.fixture(autouse=True)
def fresh_keys():
    """Recompute the memoised digest and keys around every test (others see the real ones)."""
    kc.generator_digest.cache_clear()
    km._keys.cache_clear()
    yield
    kc.generator_digest.cache_clear()
    km._keys.cache_clear()


def keys(act="tanh", request=REQUEST):
    names, form, backend = request
    key, ckeys, ikeys = km._keys(names, get_activation(act), form, backend)
    return {"unit": key, **{f"contract{i}": k for i, k in enumerate(ckeys)},
            **{f"integrand{d}": k for d, k in ikeys.items()}}


def recompute(act="tanh"):
    kc.generator_digest.cache_clear()
    km._keys.cache_clear()
    return keys(act)


def assert_all_differ(a: dict, b: dict):
    assert a.keys() == b.keys()
    same = [k for k in a if a[k] == b[k]]
    assert not same, f"keys unchanged (stale cache would be reused): {same}"


# -- what the digest reads ---------------------------------------------------------------------
def _module_file(name: str) -> Path | None:
    """The file of feyntk module ``name`` (a plain module, not a package), or None."""
    path = (PACKAGE / Path(*name.split(".")[1:])).with_suffix(".py")
    return path if path.exists() else None


def _reexported_from(package: str, name: str) -> Path | None:
    """The file of the feyntk module that package ``package``'s ``__init__`` imports ``name``
    from (None for the top-level package, a plain module or a name it does not re-export)."""
    init = PACKAGE / Path(*package.split(".")[1:]) / "__init__.py"
    if package == "feyntk" or not init.exists():
        return None
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and any((a.asname or a.name) == name for a in node.names):
            return _module_file(node.module)
    return None


def _feyntk_imports(path: Path) -> set[Path]:
    """Files of the feyntk modules that ``path`` imports (statically, at any depth of its body).

    ``from feyntk.pkg import name`` counts ``pkg/name.py`` if that is a module, else, for a
    package ``pkg`` (below the top level) whose ``__init__`` re-exports ``name``, the module it
    comes from (e.g. ``numbers/gaussian/adaptive.py`` for ``expect``).
    """
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "feyntk":
            out.update(_module_file(f"{node.module}.{a.name}")
                       or _reexported_from(node.module, a.name) for a in node.names)
            out.add(_module_file(node.module))
        elif isinstance(node, ast.Import):
            out.update(_module_file(a.name) for a in node.names
                       if a.name.split(".")[0] == "feyntk")
    return out - {None}


def test_digest_covers_every_module_the_generator_imports():
    """The closure of feyntk imports of the generator (and the recursions) is hashed."""
    covered = set(kc.source_files())
    todo = [PACKAGE / "kernels" / "module.py", PACKAGE / "recursions" / "recursion.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_feyntk_imports(path))
    needed = {p.relative_to(PACKAGE).as_posix() for p in seen}
    for rel in ("spec/activation.py", "diagrams/vertices.py", "diagrams/generate.py",
                "recursions/recursion.py", "kernels/printers.py", "kernels/lower.py"):
        assert rel in needed or rel in covered
    missing = needed - covered
    assert not missing, f"add to GENERATOR_SOURCES: {sorted(missing)}"
    assert {"kernels/printers.py", "recursions/nodes.py", "diagrams/vertices.py",
            "spec/activation.py", "numbers/gaussian/__init__.py",
            "numbers/gaussian/adaptive.py", "numbers/gaussian/pairs.py"} <= covered


def test_digest_reads_the_files_on_disk(tmp_path, monkeypatch):
    """An edit to a copy of the package changes the digest; an unrelated file does not."""
    root = tmp_path / "feyntk"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(kc, "_package_root", lambda: root)
    base = kc.digest_of(kc.source_files(), kc.versions())
    assert base == kc.digest_of(kc.source_files(), kc.versions())  # deterministic
    (root / "cli.py").write_text((root / "cli.py").read_text() + "\n# unrelated\n")
    assert kc.digest_of(kc.source_files(), kc.versions()) == base
    for rel in ("spec/activation.py", "diagrams/vertices.py", "recursions/nodes.py",
                "kernels/printers.py"):
        (root / rel).write_text((root / rel).read_text() + "\n# edited\n")
        new = kc.digest_of(kc.source_files(), kc.versions())
        assert new != base, rel
        base = new
    (root / "diagrams" / "new_stage.py").write_text("X = 1\n")  # a new module is covered too
    assert kc.digest_of(kc.source_files(), kc.versions()) != base


# -- every input misses, the unchanged state hits -------------------------------------------
def test_unchanged_state_gives_the_same_keys():
    a = keys()
    assert recompute() == a
    assert kc.generator_digest() == kc.digest_of(kc.source_files(), kc.versions())


@pytest.mark.parametrize("rel", sorted(kc.source_files()))
def test_a_changed_source_misses(rel, monkeypatch):
    before = keys()
    files = kc.source_files()
    files[rel] = files[rel] + b"\n# changed\n"
    monkeypatch.setattr(kc, "source_files", lambda: files)
    assert_all_differ(before, recompute())


@pytest.mark.parametrize("name", ["python", *kc.VERSIONED])
def test_a_changed_version_misses(name, monkeypatch):
    before = keys()
    vers = kc.versions()
    vers[name] = vers[name] + "+changed"
    monkeypatch.setattr(kc, "versions", lambda: vers)
    assert_all_differ(before, recompute())


def test_versions_come_from_the_installed_distributions(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version

    def fake(name):
        if name == "numba":
            raise importlib.metadata.PackageNotFoundError(name)
        return "99.0" if name == "sympy" else real(name)

    before = kc.generator_digest()
    monkeypatch.setattr(importlib.metadata, "version", fake)
    vers = kc.versions()
    assert vers["sympy"] == "99.0" and vers["numba"] == "absent"
    assert vers["feyntk"] == real("feyntk")
    kc.generator_digest.cache_clear()
    assert kc.generator_digest() != before


def test_codegen_version_misses(monkeypatch):
    before = keys()
    monkeypatch.setattr(kc, "CODEGEN_VERSION", kc.CODEGEN_VERSION + "x")
    assert_all_differ(before, recompute())


# -- the activation's full identity ------------------------------------------------------------
def test_activation_identity_covers_every_field():
    """Changing any field of the dataclass (present or future) changes the identity."""
    act = get_activation({"name": "leaky_relu", "slope": 0.1})
    ident = kc.activation_identity(act)
    assert ident == kc.activation_identity(get_activation({"name": "leaky_relu", "slope": 0.1}))
    for f in dataclasses.fields(Activation):
        other = copy.copy(act)
        object.__setattr__(other, f.name, ("changed", getattr(act, f.name)))
        assert kc.activation_identity(other) != ident, f.name


def test_activations_that_differ_only_outside_name_and_expression_miss():
    tanh = get_activation("tanh")
    twin = Activation(tanh.name, tanh.expr, closed_form="erf")  # same name and expression
    assert twin.name == tanh.name and twin.expr == tanh.expr
    a = km._keys(*REQUEST[:1], tanh, *REQUEST[1:])
    b = km._keys(*REQUEST[:1], twin, *REQUEST[1:])
    assert a[0] != b[0] and all(a[2][d] != b[2][d] for d in a[2])
    assert a[1] == b[1]  # contractions depend on smoothness only
    # a field added to the dataclass is part of the key without touching the key code
    Extended = dataclasses.make_dataclass("Extended", [("extra", float, 0.0)],
                                          bases=(Activation,), frozen=True)
    e0, e1 = Extended(tanh.name, tanh.expr), Extended(tanh.name, tanh.expr, extra=1.0)
    k0 = km._keys(*REQUEST[:1], e0, *REQUEST[1:])
    k1 = km._keys(*REQUEST[:1], e1, *REQUEST[1:])
    assert k0[0] != k1[0] and all(k0[2][d] != k1[2][d] for d in k0[2])
    assert k0[0] != a[0]
    # a float parameter is identified to the last bit
    lr = [get_activation({"name": "leaky_relu", "slope": s}) for s in (0.1, 0.1 + 1e-16 * 2)]
    assert kc.activation_identity(lr[0]) != kc.activation_identity(lr[1])


# -- end to end through the cache directory ----------------------------------------------------
def test_cache_directory_hits_when_unchanged_and_misses_when_the_engine_changes(
        tmp_path, monkeypatch):
    monkeypatch.setenv("FEYNTK_CACHE", str(tmp_path))
    assert kc.cache_dir() == tmp_path / f"kernels-v{kc.CODEGEN_VERSION}"
    generated = []
    for name in ("contraction_module_source", "integrand_module_source"):
        real = getattr(km, name)
        monkeypatch.setattr(km, name, lambda *a, real=real, **k: generated.append(a[-1]) or
                            real(*a, **k))
    request = (["K", "V"], "tanh", "derivative", "numba")
    first = km.codegen(*request, compile=False)
    assert all(p.exists() and p.parent == kc.cache_dir() for p in first.path)
    n_modules = len(first.path)
    assert len(generated) == n_modules  # an empty cache generates every module

    generated.clear()
    km._keys.cache_clear()
    hit = km.codegen(*request, compile=False)
    assert generated == []  # unchanged: every module read back from the directory
    assert (hit.key, hit.path, hit.source) == (first.key, first.path, first.source)

    files = kc.source_files()
    files["diagrams/vertices.py"] += b"\n# a change in the diagram engine\n"
    monkeypatch.setattr(kc, "source_files", lambda: files)
    kc.generator_digest.cache_clear()
    km._keys.cache_clear()
    miss = km.codegen(*request, compile=False)
    assert len(generated) == n_modules  # every module regenerated, none reused
    assert miss.key != first.key and not set(miss.path) & set(first.path)
    assert all(p.exists() for p in first.path + miss.path)  # old files are kept
