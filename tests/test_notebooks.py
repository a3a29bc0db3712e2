"""The derivations notebook runs end to end and writes its LaTeX export.

``derivations/recursions.ipynb`` is stored without outputs; here it is executed with nbclient on
the ``python3`` Jupyter kernel (importing this checkout's feyntk), with ``derivations/`` as the
working directory (where it writes ``recursions.tex`` and ``<name>_diagrams.png``, build outputs
ignored by git). The test is skipped
only when no Jupyter kernel can be started; an error in any cell fails it.
"""

import os
import time
from pathlib import Path

import pytest

_HOW = "install the test extras: python3 -m pip install -e '.[test]'"
nbformat = pytest.importorskip("nbformat", reason=f"nbformat is not installed; {_HOW}")
nbclient = pytest.importorskip("nbclient", reason=f"nbclient is not installed; {_HOW}")

ROOT = Path(__file__).resolve().parents[1]
DERIVATIONS = ROOT / "derivations"
TIMEOUT_S = 300  # per cell; the whole notebook takes well under a minute on 2 cores


def _client(nb):
    """A NotebookClient with a started kernel, or skip if no kernel can be started."""
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT_S,
                                     startup_timeout=120,
                                     resources={"metadata": {"path": str(DERIVATIONS)}})
    try:
        client.km = client.create_kernel_manager()
        client.start_new_kernel()
        client.start_new_kernel_client()
    except Exception as exc:  # no kernelspec, ipykernel missing, kernel died at start-up ...
        if client.km is not None and client.km.has_kernel:
            client.km.shutdown_kernel(now=True)
        pytest.skip(f"no Jupyter kernel 'python3' could be started: {type(exc).__name__}: {exc}")
    return client


def _stored_without_outputs(monkeypatch, name: str):
    """Read derivations/``name`` (stored without outputs) with the kernel importing this
    checkout's feyntk, not whichever copy happens to be installed."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    nb = nbformat.read(DERIVATIONS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "store the notebook without outputs"
    return nb


def test_recursions_notebook_executes_and_exports_latex(monkeypatch):
    nb = _stored_without_outputs(monkeypatch, "recursions.ipynb")
    client = _client(nb)
    t0 = time.time()
    client.execute()  # raises CellExecutionError (test failure) if any cell fails

    tex = DERIVATIONS / "recursions.tex"
    assert tex.exists() and tex.stat().st_mtime >= t0 - 1, "recursions.tex was not (re)written"
    text = tex.read_text()
    assert r"V^{(\ell+1)}" in text
    assert text.lstrip().startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    assert text.count(r"\begin{aligned}") == text.count(r"\end{aligned}") >= 2 * 9

    from feyntk.api import derivable

    for name in derivable():
        png = DERIVATIONS / f"{name}_diagrams.png"
        assert png.exists() and png.stat().st_mtime >= t0 - 1, f"{png.name} was not written"


def test_second_order_notebook_executes(monkeypatch):
    """derivations/second_order.ipynb (about 10 s on 2 cores): the K2, V1, V6 recursions in LaTeX,
    their diagram counts (6, 10, 8) and the deep-linear closed forms through predict to 1e-10
    (asserted inside the notebook)."""
    nb = _stored_without_outputs(monkeypatch, "second_order.ipynb")
    _client(nb).execute()  # raises CellExecutionError (test failure) if any cell fails
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []))
    assert "diagram counts: {'K2': 6, 'V1': 10, 'V6': 8}" in out
    assert r"\begin{aligned} {V_{6}^{(\ell+1)}}" in out and "K^{2,(\\ell+1)}" in out
    assert "max |diff|:" in out


def test_training_notebook_executes(monkeypatch):
    nb = _stored_without_outputs(monkeypatch, "training.ipynb")
    _client(nb).execute()  # raises CellExecutionError (test failure) if any cell fails


def test_equivariance_notebook_executes(monkeypatch):
    """derivations/equivariance.ipynb at its CI size (about 45 s on 2 cores): real trained
    augmented ensembles on the digits (C4) and the Ising lattice against the NTK prediction."""
    monkeypatch.delenv("FEYNTK_EQUIVARIANCE", raising=False)
    nb = _stored_without_outputs(monkeypatch, "equivariance.ipynb")
    t0 = time.time()
    _client(nb).execute()  # raises CellExecutionError (test failure) if any cell fails
    for name in ("equivariance_digits.png", "equivariance_ising.png"):
        png = DERIVATIONS / name
        assert png.exists() and png.stat().st_mtime >= t0 - 1, f"{name} was not written"
