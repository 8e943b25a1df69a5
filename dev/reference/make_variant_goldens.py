#!/usr/bin/env python3
"""Independent PyTorch reference for Headwise's attention variants (src/Headwise/Training/Layers, docs/variants.md).

For each variant writes under <out>/train_variants/<variant>/:
  weights.safetensors   F32 parameters under Headwise's names (TrainableTransformer.Parameters)
  grads.safetensors     F32 d(loss)/d(param) on one batch
  golden.json           the config (with attention_variant and its options), the batch, the loss

One small GPT-2-family model per variant (LayerNorm, learned positions, GELU MLP, tied embeddings, biases), the attention
written from the formulas in docs/variants.md with torch autograd doing the backward:
  symmetric_qk  w_qkv rows q | v, k = q
  moh           router w_router (NH + 2, C): shared softmax · α₀, routed softmax · α₁ on the top-k, gates scale z per head
  linear        φ = elu + 1, att = φ(q)φ(k)ᵀ masked causally, rows normalised
  sinkhorn      log-space rows / causal-prefix columns (logcumsumexp down each column), final row softmax
  affine_scaled w_affine (2·NH, C): α = 2σ(a[:NH]), β = tanh(a[NH:]), z = α·(p v) + β·(running mean of v)
  gaussian      gauss_mu, gauss_log_var (NH): scores − ((t − j)/seq_len − μ)² / (2·exp(s)) before the softmax
  low_rank      w_down (R, C) shared, w_qkv (3C, R): qkv = (x w_downᵀ) w_qkvᵀ + b
  relative_conv conv_qkv (3C, K): y[t, c] = Σ_i w[c, i]·qkv[t − i, c] (causal, per channel), then softmax attention

Usage:
  /usr/bin/python3 dev/reference/make_variant_goldens.py --out tests/goldens [VARIANT ...]
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F

from make_train_goldens import read_safetensors, write_safetensors

torch.set_num_threads(1)

B, T = 2, 8
BASE = dict(architecture="Gpt2", vocab_size=13, d_model=16, n_layers=2, n_heads=4, seq_len=T, d_mlp=24, norm_eps=1e-5,
            tied_embeddings=True)
CASES = {
    "symmetric_qk": dict(BASE, attention_variant="symmetric_qk"),
    "moh": dict(BASE, attention_variant="moh", moh_shared=1, moh_active=2),
    "linear": dict(BASE, attention_variant="linear"),
    "sinkhorn": dict(BASE, attention_variant="sinkhorn", sinkhorn_iters=3),
    "affine_scaled": dict(BASE, attention_variant="affine_scaled"),
    "gaussian": dict(BASE, attention_variant="gaussian"),
    "low_rank": dict(BASE, attention_variant="low_rank", low_rank=4),
    "relative_conv": dict(BASE, attention_variant="relative_conv", conv_kernel=3),
}
# fixed seeds, so a case's golden does not change when other cases are added (the first four: 10 + their index)
SEEDS = {"affine_scaled": 20, "gaussian": 21, "low_rank": 22, "relative_conv": 23}
NEG = -1e9  # a finite −∞: exp underflows to exactly 0 and no inf − inf appears in the sinkhorn iterates


def params(cfg, g):
    V, C, L, Fw, NH = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["d_mlp"], cfg["n_heads"]
    variant = cfg["attention_variant"]
    qkv = 2 * C if variant == "symmetric_qk" else 3 * C
    q_in = cfg.get("low_rank", C) if variant == "low_rank" else C
    mat = lambda *s: torch.randn(*s, generator=g) * 0.3
    vec = lambda n, base: base + torch.randn(n, generator=g) * 0.1
    p = {"wte": mat(V, C), "wpe": mat(cfg["seq_len"], C)}
    for l in range(L):
        q = f"blocks.{l}."
        p[q + "ln1.weight"], p[q + "ln1.bias"] = vec(C, 1.0), vec(C, 0.0)
        if variant == "low_rank":
            p[q + "attn.w_down"] = mat(q_in, C)
        p[q + "attn.w_qkv"], p[q + "attn.b_qkv"] = mat(qkv, q_in), vec(qkv, 0.0)
        p[q + "attn.w_o"], p[q + "attn.b_o"] = mat(C, C), vec(C, 0.0)
        if variant == "moh":
            p[q + "attn.w_router"] = mat(NH + 2, C) * 3  # spread logits: no near-ties in the top-k
        if variant == "affine_scaled":
            p[q + "attn.w_affine"] = mat(2 * NH, C)
        if variant == "gaussian":
            p[q + "attn.gauss_mu"], p[q + "attn.gauss_log_var"] = vec(NH, 0.0) * 3, vec(NH, -1.0)
        if variant == "relative_conv":
            K = cfg["conv_kernel"]
            p[q + "attn.conv_qkv"] = F.one_hot(torch.zeros(qkv, dtype=torch.long), K).float() + mat(qkv, K)  # identity + noise
        p[q + "ln2.weight"], p[q + "ln2.bias"] = vec(C, 1.0), vec(C, 0.0)
        p[q + "mlp.w_in"], p[q + "mlp.b_in"] = mat(Fw, C), vec(Fw, 0.0)
        p[q + "mlp.w_out"], p[q + "mlp.b_out"] = mat(C, Fw), vec(C, 0.0)
    p["ln_f.weight"], p["ln_f.bias"] = vec(C, 1.0), vec(C, 0.0)
    return p


def attention(cfg, q, k, v, mask, bias=None):
    """q, k, v: (B, NH, T, HD) → pattern (B, NH, T, T); bias (NH, T, T) added to the scaled scores."""
    variant, HD = cfg["attention_variant"], q.shape[-1]
    if variant == "linear":
        fq, fk = F.elu(q) + 1, F.elu(k) + 1
        s = (fq @ fk.transpose(-1, -2)) * mask
        return s / s.sum(-1, keepdim=True)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
    if bias is not None:
        s = s + bias
    s = s.masked_fill(~mask, NEG)
    if variant == "sinkhorn":
        for _ in range(cfg["sinkhorn_iters"]):
            r = (s - torch.logsumexp(s, -1, keepdim=True)).masked_fill(~mask, NEG)
            # column j, row t: log Σ_{t'=j..t} exp r[t', j]; entries t' < j are NEG, so a cumulative lse from row 0 is the same
            s = (r - torch.logcumsumexp(r, -2)).masked_fill(~mask, NEG)
    return s.softmax(-1)


def moh_gates(cfg, logits):
    NH, S, K = cfg["n_heads"], cfg["moh_shared"], cfg["moh_active"]
    alpha = logits[..., NH:].softmax(-1)
    shared = logits[..., :S].softmax(-1) * alpha[..., :1]
    routed = logits[..., S:NH].softmax(-1) * alpha[..., 1:]
    top = torch.zeros_like(routed).scatter(-1, logits[..., S:NH].topk(K, -1).indices, 1.0)
    return torch.cat([shared, routed * top], -1)  # (B, T, NH)


def loss_fn(cfg, p, idx, tgt):
    C, NH, eps = cfg["d_model"], cfg["n_heads"], cfg["norm_eps"]
    HD = C // NH
    Bn, Tn = idx.shape
    x = p["wte"][idx] + p["wpe"][:Tn]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(cfg["n_layers"]):
        q_ = f"blocks.{l}."
        h = F.layer_norm(x, (C,), p[q_ + "ln1.weight"], p[q_ + "ln1.bias"], eps)
        variant = cfg["attention_variant"]
        u = h @ p[q_ + "attn.w_down"].T if variant == "low_rank" else h
        qkv = u @ p[q_ + "attn.w_qkv"].T + p[q_ + "attn.b_qkv"]
        if variant == "relative_conv":
            w = p[q_ + "attn.conv_qkv"]  # (3C, K): tap i reads the row i steps back (zeros before the sequence)
            qkv = sum(w[:, i] * F.pad(qkv, (0, 0, i, 0))[:, :Tn] for i in range(w.shape[1]))
        bias = None
        if variant == "gaussian":
            d = (torch.arange(Tn)[:, None] - torch.arange(Tn)[None, :]).float() / cfg["seq_len"]  # (T, T)
            mu, lv = p[q_ + "attn.gauss_mu"], p[q_ + "attn.gauss_log_var"]
            bias = -(d - mu[:, None, None]) ** 2 / (2 * torch.exp(lv)[:, None, None])  # (NH, T, T)
        if cfg["attention_variant"] == "symmetric_qk":
            q, v = qkv.split(C, dim=2)
            k = q
        else:
            q, k, v = qkv.split(C, dim=2)
        q, k, v = [t.view(Bn, Tn, NH, HD).transpose(1, 2) for t in (q, k, v)]
        z = (attention(cfg, q, k, v, mask, bias) @ v).transpose(1, 2)  # (B, T, NH, HD)
        if variant == "affine_scaled":
            a = h @ p[q_ + "attn.w_affine"].T  # (B, T, 2·NH)
            alpha, beta = 2 * torch.sigmoid(a[..., :NH]), torch.tanh(a[..., NH:])
            mean_v = (v.cumsum(2) / torch.arange(1, Tn + 1).float()[:, None]).transpose(1, 2)  # (B, T, NH, HD)
            z = alpha.unsqueeze(-1) * z + beta.unsqueeze(-1) * mean_v
        if cfg["attention_variant"] == "moh":
            z = z * moh_gates(cfg, h @ p[q_ + "attn.w_router"].T).unsqueeze(-1)
        x = x + z.reshape(Bn, Tn, C) @ p[q_ + "attn.w_o"].T + p[q_ + "attn.b_o"]
        h = F.layer_norm(x, (C,), p[q_ + "ln2.weight"], p[q_ + "ln2.bias"], eps)
        m = F.gelu(h @ p[q_ + "mlp.w_in"].T + p[q_ + "mlp.b_in"], approximate="tanh")
        x = x + m @ p[q_ + "mlp.w_out"].T + p[q_ + "mlp.b_out"]
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    logits = x @ p["wte"].T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def make(out, name, seed):
    cfg = CASES[name]
    g = torch.Generator().manual_seed(seed)
    d = os.path.join(out, "train_variants", name)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "weights.safetensors"), params(cfg, g))
    p = {k: v.clone().requires_grad_(True) for k, v in read_safetensors(os.path.join(d, "weights.safetensors")).items()}
    batch = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g)
    idx, tgt = batch[:, :-1], batch[:, 1:]
    loss = loss_fn(cfg, p, idx, tgt)
    loss.backward()
    write_safetensors(os.path.join(d, "grads.safetensors"), {k: v.grad for k, v in p.items()})
    golden = dict(config=cfg, batch=B, seq_len=T, tokens=idx.reshape(-1).tolist(), targets=tgt.reshape(-1).tolist(),
                  loss=loss.item(), seed=seed, note="written by dev/reference/make_variant_goldens.py; torch " + torch.__version__)
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: loss {loss.item():.6f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("variants", nargs="*", help="only these cases (default: all)")
    args = ap.parse_args()
    for i, name in enumerate(CASES):
        if not args.variants or name in args.variants:
            make(args.out, name, SEEDS.get(name, 10 + i))
