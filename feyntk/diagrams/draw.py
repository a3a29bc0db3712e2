"""Drawing diagrams (a side branch of the pipeline, like FeynArts' Paint).

Picture conventions: squares on the left are the external fields of layer ℓ+1; circles are
blobs (one layer-ℓ neuron each, labelled by the Gaussian expectation they carry); solid lines
are Wick pairs of layer-(ℓ+1) weights (C_W/n_ℓ), dash-dotted lines neuron averages (λ_W/n_ℓ),
grey lines bias pairs (C_b); dotted red lines are layer-ℓ NTK factors (Ĥ, dĤ) between the
blobs of their neuron slots; the diamond is the inserted layer-ℓ tensor, joined to blobs by
dashed z-legs (each a ∂/∂z) and to the NTK factors it consumes.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import networkx as nx
from matplotlib.figure import Figure

from feyntk.diagrams.fields import Low, Sig
from feyntk.spec.statistic import FIELD_KINDS

_SAMPLE_TEX = {f"a{i}": rf"\alpha_{i}" for i in range(6)}


def _ext_label(f) -> str:
    labs = "".join(f.labels)
    samples = "".join(_SAMPLE_TEX.get(s, s) for s in f.samples)
    return rf"${FIELD_KINDS[f.kind].latex}_{{{labs};{samples}}}$"


def _blob_label(sigs) -> str:
    parts = []
    for k, s in sigs:
        prime = "'" * k if k <= 3 else f"^{{({k})}}"
        parts.append(rf"\sigma{prime}_{{{_SAMPLE_TEX.get(s, s)}}}")
    return "$" + " ".join(parts) + "$" if parts else ""


def display_graph(diagram) -> nx.MultiGraph:
    """A simplified graph for drawing (externals, blobs, insertion)."""
    cand = diagram.candidate
    c = cand.contraction
    from feyntk.diagrams.diagram import correlator

    fields = correlator(diagram.statistic).fields
    G = nx.MultiGraph()
    for f, fld in enumerate(fields):
        G.add_node(("ext", f), kind="ext", label=_ext_label(fld))
    vb = cand.block_of_vertex()
    sigs: dict[int, list] = {b: [] for b in range(len(cand.blocks))}
    for x in c.factors:
        if isinstance(x, Sig):
            sigs[vb[c.vertex_of[x.var]]].append((x.k, x.sample))
    for b in range(len(cand.blocks)):
        G.add_node(("blk", b), kind="blob", label=_blob_label(sorted(sigs[b])))
    for vi, v in enumerate(c.vertices):
        for f in v.fields:
            G.add_edge(("ext", f), ("blk", vb[vi]), style="W" if v.kind == "W" else "avg")
    for a, b in c.bias_pairs:
        G.add_edge(("ext", a), ("ext", b), style="bias")
    used = cand.consumed()
    for i, x in enumerate(c.factors):
        if isinstance(x, Low):
            blks = [("blk", vb[c.vertex_of[v]]) for v in x.vars]
            for u, w in zip(blks, blks[1:]):
                G.add_edge(u, w, style="ntk" if i not in used else "ntk-used")
    for t, ins in enumerate(cand.inserted):
        node = ("ins",) if t == 0 else ("ins", t)
        G.add_node(node, kind="ins", label=ins.delta.tensor)
        for kind, target in zip(ins.insertion.legs, ins.legs):
            if kind == "z":
                G.add_edge(node, ("blk", target), style="leg")
            else:
                for v in c.factors[target].vars:
                    G.add_edge(node, ("blk", vb[c.vertex_of[v]]), style="ntk-leg")
    return G


_STYLES = {"W": dict(style="solid", color="black"), "avg": dict(style="dashdot", color="black"),
           "bias": dict(style="solid", color="0.6"), "ntk": dict(style="dotted", color="tab:red"),
           "ntk-used": dict(style="dotted", color="tab:red"),
           "leg": dict(style="dashed", color="tab:blue"),
           "ntk-leg": dict(style="dotted", color="tab:purple")}


def draw(diagram, ax=None):
    """Draw one diagram on a matplotlib axis; returns the axis."""
    G = display_graph(diagram)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    ext = [n for n, d in G.nodes(data=True) if d["kind"] == "ext"]
    fixed = {n: (-1.0, 1.0 - 2.0 * i / max(len(ext) - 1, 1)) for i, n in enumerate(ext)}
    pos = nx.spring_layout(nx.Graph(G), pos=fixed or None, fixed=list(fixed) or None, seed=1)
    from matplotlib.patches import FancyArrowPatch

    seen: dict = {}
    for u, v, d in G.edges(data=True):
        st = _STYLES[d["style"]]
        (x0, y0), (x1, y1) = pos[u], pos[v]
        if u == v:
            k = seen.setdefault((u, u), 0)
            seen[(u, u)] += 1
            ax.add_patch(plt.Circle((x0, y0 + 0.12 + 0.08 * k), 0.1 + 0.05 * k, fill=False,
                                    ls=st["style"], color=st["color"]))
            continue
        key = tuple(sorted((u, v), key=str))
        m = G.number_of_edges(u, v)
        k = seen.setdefault(key, 0)
        seen[key] += 1
        rad = 0.0 if m == 1 else 0.35 * (k - (m - 1) / 2)
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-", lw=1.4,
                                     linestyle=st["style"], color=st["color"], zorder=1,
                                     connectionstyle=f"arc3,rad={rad}"))
    for n, d in G.nodes(data=True):
        x, y = pos[n]
        if d["kind"] == "ext":
            ax.scatter([x], [y], marker="s", s=160, color="white", edgecolors="black", zorder=2)
            ax.annotate(d["label"], (x, y), xytext=(-8, 0), textcoords="offset points",
                        ha="right", va="center", fontsize=9)
        elif d["kind"] == "blob":
            ax.scatter([x], [y], s=700, color="#e8eef8", edgecolors="tab:blue", zorder=2)
            ax.annotate(d["label"], (x, y), ha="center", va="center", fontsize=8, zorder=3)
        else:
            ax.scatter([x], [y], marker="D", s=300, color="#fbe3c8", edgecolors="tab:orange",
                       zorder=2)
            ax.annotate(d["label"], (x, y), ha="center", va="center", fontsize=8, zorder=3)
    ax.set_title(f"{diagram.statistic}: {diagram.kind}  (S = {diagram.symmetry})", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_axis_off()
    ax.margins(0.25)
    return ax


def draw_all(diagrams, path: str | None = None):
    """All diagrams of a statistic in one figure; saved to ``path`` (PNG/SVG) if given."""
    n = len(diagrams)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows)) if path else plt.figure(
        figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for d, ax in zip(diagrams, axes.ravel()):
        draw(d, ax)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def to_png_bytes(diagram) -> bytes:
    """PNG of one diagram, drawn on a detached Figure (no pyplot state, any backend)."""
    fig = Figure(figsize=(4.2, 3.2))
    draw(diagram, fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
