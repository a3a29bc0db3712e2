"""Step 4, *weigh*: diagrams as coloured graphs, grouped by isomorphism, with symmetry factors.

A candidate becomes a networkx graph whose nodes are coloured by what they are:
external fields (each its own colour, so they stay fixed), vertices (Wick pairs and neuron
averages, joined to the external fields through ``W`` stubs that remember the slot), blocks
(distinct layer-ℓ neurons), σ-factors (derivative order and sample), NTK-type factors with one
node per slot (slot and sample), and each inserted vertex with a node per leg and a node per
Kronecker-δ pair of its δ-term (two inserted copies of one vertex are exchanged by an
automorphism: the 1/2! of the Gram–Charlier series). Isomorphic candidates are the same diagram.

The symmetry factor of a diagram is ``1/|Aut|``, the automorphisms of its graph (networkx VF2
on the coloured graph). It must equal the total combinatorial weight of the labelled candidates
in its class, which :func:`group` also accumulates: the brute-force check.
"""

from __future__ import annotations

import networkx as nx
from networkx.algorithms import isomorphism as iso

from feyntk.diagrams.fields import Low, Sig
from feyntk.diagrams.generate import Candidate


def candidate_graph(cand: Candidate) -> nx.Graph:
    """The coloured graph of a candidate diagram (node attribute ``c`` is the colour)."""
    c = cand.contraction
    G = nx.Graph()
    for f, t in enumerate(c.terms):
        G.add_node(("ext", f), c=("ext", f, t.name))
    for vi, v in enumerate(c.vertices):
        G.add_node(("v", vi), c=("vertex", v.kind))
        if v.kind == "W":
            for k, (f, slot) in enumerate(v.slots):
                G.add_node(("w", vi, k), c=("W", slot))
                G.add_edge(("v", vi), ("w", vi, k))
                G.add_edge(("w", vi, k), ("ext", f))
        else:
            G.add_edge(("v", vi), ("ext", v.fields[0]))
    for k, (a, b) in enumerate(c.bias_pairs):
        G.add_node(("bias", k), c="bias")
        G.add_edge(("bias", k), ("ext", a))
        G.add_edge(("bias", k), ("ext", b))
    for b, vs in enumerate(cand.blocks):
        G.add_node(("blk", b), c="block")
        for v in vs:
            G.add_edge(("blk", b), ("v", v))
    vo = c.vertex_of
    for i, x in enumerate(c.factors):
        if isinstance(x, Sig):
            G.add_node(("sig", i), c=("sig", x.k, x.sample))
            G.add_edge(("sig", i), ("v", vo[x.var]))
        elif isinstance(x, Low):
            G.add_node(("low", i), c=("low", x.kind))
            for m, (var, s) in enumerate(zip(x.vars, x.samples)):
                G.add_node(("slot", i, m), c=("slot", m, s))
                G.add_edge(("low", i), ("slot", i, m))
                G.add_edge(("slot", i, m), ("v", vo[var]))
    for t, ins in enumerate(cand.inserted):
        node = ("ins",) if t == 0 else ("ins", t)
        G.add_node(node, c=("ins", ins.delta.tensor))
        names: dict[str, tuple] = {}
        counts: dict[str, int] = {}
        for leg, (kind, target) in enumerate(zip(ins.insertion.legs, ins.legs)):
            k = counts.get(kind, 0)
            counts[kind] = k + 1
            ln = ("leg", leg) if t == 0 else ("leg", t, leg)
            G.add_node(ln, c=("leg", kind))
            G.add_edge(node, ln)
            if kind == "z":
                G.add_edge(ln, ("blk", target))
                names[f"z{k}"] = ln
            else:
                G.add_edge(ln, ("low", target))
                for m in range(len(c.factors[target].vars)):
                    names[f"{kind}{k}.{m}"] = ("slot", target, m)
        for q, (a, b) in enumerate(ins.delta.pairs):
            dp = ("dp", q) if t == 0 else ("dp", t, q)
            G.add_node(dp, c="delta")
            G.add_edge(node, dp)
            G.add_edge(dp, names[a])
            G.add_edge(dp, names[b])
    return G


def _node_match(a, b) -> bool:
    return a["c"] == b["c"]


def automorphisms(G: nx.Graph) -> int:
    """Number of colour-preserving automorphisms of G."""
    gm = iso.GraphMatcher(G, G, node_match=_node_match)
    return sum(1 for _ in gm.isomorphisms_iter())


def _hash(G: nx.Graph) -> str:
    H = G.copy()
    for n, d in H.nodes(data=True):
        d["s"] = repr(d["c"])
    return nx.weisfeiler_lehman_graph_hash(H, node_attr="s", iterations=4)


def group(cands: list[Candidate]) -> list[tuple[Candidate, nx.Graph, list[Candidate]]]:
    """Group candidates into isomorphism classes: (representative, its graph, members)."""
    buckets: dict[str, list] = {}
    for cand in cands:
        G = candidate_graph(cand)
        classes = buckets.setdefault(_hash(G), [])
        for entry in classes:
            if nx.is_isomorphic(entry[1], G, node_match=_node_match):
                entry[2].append(cand)
                break
        else:
            classes.append((cand, G, [cand]))
    return [e for classes in buckets.values() for e in classes]
