"""Check every kernel of a layer against a float32 reference before anything is timed.

Each op runs once on fresh random inputs (outputs poisoned first) and is compared by
relative Frobenius error; bf16 operands land between 1e-3 and 1e-2, NaN never passes.
GPU-only module.
"""

from __future__ import annotations

import torch

from bulletsim.gpu.attention import reference_attention, rel_err

TOL = 2e-2


def _rmsnorm_ref(x, w, eps=1e-5):
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.float()


def _rope_ref(x, pos, cos, sin):
    d2 = x.shape[-1] // 2
    c, s = cos[pos.long()][:, None, :], sin[pos.long()][:, None, :]
    x1, x2 = x[..., :d2].float(), x[..., d2:].float()
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)


def check_layer(model, b, layer: int = 0, max_rows: int = 256) -> dict[str, float]:
    """Run layer `layer` op by op on batch `b`; return {op: rel error}; raise if any fails."""
    w = model.layers[layer]
    ks = model.layer_kernels(layer, b)
    errs: dict[str, float] = {}
    r = slice(0, min(max_rows, b.num_tokens))
    qd, kvd, d = model.q_dim, model.kv_dim, model.d
    for x in (b.x, b.res):
        x.copy_(torch.randn_like(x))
    k_cache, v_cache = model.layer_cache(layer, b.pages_per_layer)
    names = [n for n, _ in ks]
    for i, (name, fn) in enumerate(ks):
        before = {
            k: getattr(b, k)[r].clone() for k in ("x", "res", "h", "qkv", "attn_out", "gu", "act")
        }
        full_qkv = b.qkv.clone() if name == "attn_prefill" else None
        for buf in _outputs(name, i, names, b):
            buf.fill_(float("nan"))
        fn()
        torch.cuda.synchronize()
        tag = f"{i}:{name}"
        if i == 0 or (name == "norm_rope_act" and i == 6):
            wn = w.norm1 if i == 0 else w.norm2
            res_ref = before["res"].float() + before["x"].float()
            errs[tag] = max(rel_err(b.res[r], res_ref), rel_err(b.h[r], _rmsnorm_ref(res_ref, wn)))
        elif name == "qkv":
            errs[tag] = rel_err(b.qkv[r], before["h"].float() @ w.wqkv.float().t())
        elif i == 2:
            nrot = model.qh + model.kvh
            x = before["qkv"][:, : nrot * d].view(-1, nrot, d)
            ref = _rope_ref(x, b.positions[r], model.cos, model.sin)
            errs[tag] = rel_err(b.qkv[r][:, : nrot * d].view(-1, nrot, d), ref)
        elif i == 3:
            k = b.qkv[:, qd : qd + kvd].view(-1, model.kvh, d)
            got = k_cache.view(-1, model.kvh, d)[b.slots]
            errs[tag] = rel_err(got, k)
        elif name == "attn_prefill":
            n0 = b.seq_lens[0]
            q = full_qkv[:n0, :qd].view(n0, model.qh, d)
            k = full_qkv[:n0, qd : qd + kvd].view(n0, model.kvh, d)
            v = full_qkv[:n0, qd + kvd :].view(n0, model.kvh, d)
            m = min(128, n0)
            ref = reference_attention(q[-m:], k, v, n0 - m)
            errs[tag] = rel_err(b.attn_out[n0 - m : n0].view(m, model.qh, d), ref)
        elif name == "attn_decode":
            table = b.extra["block_table"]
            n = b.seq_lens[0] + 1
            refs = []
            for j in range(min(2, b.num_tokens)):
                kk = k_cache[table[j].long()].reshape(-1, model.kvh, d)[:n]
                vv = v_cache[table[j].long()].reshape(-1, model.kvh, d)[:n]
                q = b.qkv[j : j + 1, :qd].view(1, model.qh, d)
                refs.append(reference_attention(q, kk, vv, None))
            got = b.attn_out[: len(refs)].view(len(refs), model.qh, d)
            errs[tag] = rel_err(got, torch.cat(refs))
        elif name == "o":
            errs[tag] = rel_err(b.x[r], before["attn_out"].float() @ w.wo.float().t())
        elif name == "gate_up":
            errs[tag] = rel_err(b.gu[r], before["h"].float() @ w.wgu.float().t())
        elif i == 8:
            g, u = before["gu"].float().chunk(2, -1)
            errs[tag] = rel_err(b.act[r], torch.nn.functional.silu(g) * u)
        elif name == "down":
            errs[tag] = rel_err(b.x[r], before["act"].float() @ w.wd.float().t())
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    if bad:
        raise AssertionError(f"kernel check failed (rel err > {TOL}): {bad}")
    return {k: float(f"{v:.2e}") for k, v in errs.items()}


def _outputs(name: str, i: int, names: list[str], b) -> list[torch.Tensor]:
    """Buffers op `i` writes, poisoned before it runs so unwritten elements show as NaN."""
    if name == "qkv":
        return [b.qkv]
    if name.startswith("attn"):
        return [b.attn_out]
    if name in ("o", "down"):
        return [b.x]
    if name == "gate_up":
        return [b.gu]
    if i in (0, 6):
        return [b.h]
    if i == 8:
        return [b.act]
    return []
