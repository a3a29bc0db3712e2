"""The layer maps of MATH.md §2 (z, Ĥ, dĤ, ddÎ, ddÎÎ), as the engine stores them, against
automatic differentiation of a real tiny network (full Jacobian, Hessian and third-derivative
tensors over every parameter), to 1e-12."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from feyntk.diagrams.fields import C_W, C_b, Low, Sig, lam_W, lam_b, layer_map
from feyntk.spec.activation import get_activation

jax.config.update("jax_enable_x64", True)

WIDTHS = [2, 3, 3, 3]
HP = dict(C_W=[1.3, 0.8, 1.6], C_b=[0.2, 0.1, 0.3], lam_W=[0.7, 1.4, 0.9], lam_b=[0.5, 0.2, 0.6])


def _params(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for l in range(1, len(WIDTHS)):
        n_in, n_out = WIDTHS[l - 1], WIDTHS[l]
        out.append(rng.normal(size=(n_out, n_in)) * np.sqrt(HP["C_W"][l - 1] / n_in))
        out.append(rng.normal(size=n_out) * np.sqrt(HP["C_b"][l - 1]))
    return out


def _flat(params):
    return jnp.concatenate([jnp.ravel(p) for p in params])


def _unflat(theta):
    out, k = [], 0
    for l in range(1, len(WIDTHS)):
        n_in, n_out = WIDTHS[l - 1], WIDTHS[l]
        out.append(theta[k:k + n_out * n_in].reshape(n_out, n_in))
        k += n_out * n_in
        out.append(theta[k:k + n_out])
        k += n_out
    return out


def _lambdas():
    lam = []
    for l in range(1, len(WIDTHS)):
        n_in, n_out = WIDTHS[l - 1], WIDTHS[l]
        lam += [HP["lam_W"][l - 1] / n_in] * (n_out * n_in) + [HP["lam_b"][l - 1]] * n_out
    return jnp.array(lam)


def _z(theta, x, layer, act):
    p = _unflat(theta)
    h = x.T  # (n0, N)
    for l in range(1, layer + 1):
        z = p[2 * l - 2] @ h + p[2 * l - 1][:, None]
        h = act(z)
    return z  # (n_layer, N)


def _fields(theta, x, layer, act):
    """Brute-force MATH.md §2 sums over all parameters: z, H, dH, ddI, ddII at ``layer``."""
    f = lambda t: _z(t, x, layer, act)
    J = jax.jacfwd(f)(theta)  # (n, N, P)
    Hs = jax.jacfwd(jax.jacfwd(f))(theta)
    T3 = jax.jacfwd(jax.jacfwd(jax.jacfwd(f)))(theta)
    lam = _lambdas()
    e = jnp.einsum
    H = e("iap,jbp,p->ijab", J, J, lam)
    dH = e("iapq,jbp,kcq,p,q->ijkabc", Hs, J, J, lam, lam)
    ddI = e("iapqr,jbp,kcq,ldr,p,q,r->ijklabcd", T3, J, J, J, lam, lam, lam)
    ddII = e("iapq,jbpr,kcq,ldr,p,q,r->ijklabcd", Hs, Hs, J, J, lam, lam, lam)
    return {"z": f(theta), "H": H, "dH": dH, "ddI": ddI, "ddII": ddII}


def _apply_map(kind, l, W, b, sig, low, samples):
    """Evaluate a stored layer map numerically for one tuple of external samples."""
    rank = {"z": 1, "H": 2, "dH": 3, "ddI": 4, "ddII": 4}[kind]
    labels = tuple(f"a{i}" for i in range(rank))
    amap = dict(zip(labels, samples))
    n_l, n_next = WIDTHS[l], WIDTHS[l + 1]
    values = {C_W: HP["C_W"][l], C_b: HP["C_b"][l], lam_W: HP["lam_W"][l], lam_b: HP["lam_b"][l]}
    out = np.zeros((n_next,) * rank)
    ext = "ABCD"[:rank]
    for t in layer_map(kind, labels):
        letters, ops, subs = {}, [], []

        def L(v):
            return letters.setdefault(v, "efghjkmpqrstuvwxyz"[len(letters)])

        for slot, v in t.weights:
            ops.append(W)
            subs.append(ext[slot] + L(v))
        for slot in t.biases:
            ops.append(b)
            subs.append(ext[slot])
        for a, c in t.deltas:
            ops.append(np.eye(n_next))
            subs.append(ext[a] + ext[c])
        for x in t.factors:
            if isinstance(x, Sig):
                ops.append(sig[x.k][:, amap[x.sample]])
                subs.append(L(x.var))
            else:
                arr = low[x.kind][(slice(None),) * len(x.vars) + tuple(amap[s] for s in x.samples)]
                ops.append(arr)
                subs.append("".join(L(v) for v in x.vars))
        coeff = float(t.coeff.subs(values)) / n_l ** len(t.averaged)
        out += coeff * np.einsum(",".join(subs) + "->" + ext, *ops)
    return out


@pytest.mark.parametrize("act_name", ["tanh", "gelu"])
@pytest.mark.parametrize("kind", ["z", "H", "dH", "ddI", "ddII"])
def test_layer_map_matches_autodiff(kind, act_name):
    act = get_activation(act_name)
    fj = act.jax(0)
    x = jnp.array([[0.8, -0.5], [0.3, 1.1]])
    theta = _flat(_params())
    l = 2  # map layer 2 -> 3
    lower = _fields(theta, x, l, fj)
    upper = _fields(theta, x, l + 1, fj)
    p = _params()
    W, b = np.asarray(p[2 * l]), np.asarray(p[2 * l + 1])
    z = np.asarray(lower["z"])
    sig = {k: act.numpy(k)(z) for k in range(4)}
    low = {k: np.asarray(v) for k, v in lower.items()}
    rank = {"z": 1, "H": 2, "dH": 3, "ddI": 4, "ddII": 4}[kind]
    for samples in itertools.product(range(2), repeat=rank):
        mapped = _apply_map(kind, l, W, b, sig, low, samples)
        truth = np.asarray(upper[kind])[(slice(None),) * rank + samples]
        np.testing.assert_allclose(mapped, truth, rtol=1e-12, atol=1e-12 * np.abs(truth).max())
