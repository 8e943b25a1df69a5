#!/usr/bin/env python3
"""Independent PyTorch reference for Headwise training (src/Headwise/Training).

For each case under <out>/train/<case>/ writes:
  weights.safetensors   F32 initial parameters under Headwise's parameter names (TrainableTransformer.Parameters)
  grads.safetensors     F32 d(loss)/d(param) of batch 0 at the initial parameters
  golden.json           config, AdamW options, and for 10 steps: the batch, the lr, the loss before the update

The models are our own short PyTorch forwards (no transformers package): GPT-2 (LayerNorm, learned positions,
gelu tanh, tied embeddings, biases) and Llama (RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention, untied).
The optimiser is torch.optim.AdamW with two parameter groups (weight decay on 2-D tensors only), a linear warmup then
cosine learning rate, and torch.nn.utils.clip_grad_norm_.

Usage:
  /usr/bin/python3 dev/reference/make_train_goldens.py --out tests/goldens
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

B, T, STEPS = 2, 8, 10
ADAM = dict(lr=1e-2, min_lr_fraction=0.1, warmup=2, weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, clip=1.0)


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[8 + n + b0:8 + n + b1], "<f4").copy()).reshape(info["shape"])
    return out


def gpt2_params(cfg, g):
    V, C, L, Fw = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["d_mlp"]
    mat = lambda *s: torch.randn(*s, generator=g) * 0.3
    vec = lambda n, base: base + torch.randn(n, generator=g) * 0.1
    p = {"wte": mat(V, C), "wpe": mat(cfg["seq_len"], C)}
    for l in range(L):
        q = f"blocks.{l}."
        p[q + "ln1.weight"], p[q + "ln1.bias"] = vec(C, 1.0), vec(C, 0.0)
        p[q + "attn.w_qkv"], p[q + "attn.b_qkv"] = mat(3 * C, C), vec(3 * C, 0.0)
        p[q + "attn.w_o"], p[q + "attn.b_o"] = mat(C, C), vec(C, 0.0)
        p[q + "ln2.weight"], p[q + "ln2.bias"] = vec(C, 1.0), vec(C, 0.0)
        p[q + "mlp.w_in"], p[q + "mlp.b_in"] = mat(Fw, C), vec(Fw, 0.0)
        p[q + "mlp.w_out"], p[q + "mlp.b_out"] = mat(C, Fw), vec(C, 0.0)
    p["ln_f.weight"], p["ln_f.bias"] = vec(C, 1.0), vec(C, 0.0)
    return p


def gpt2_loss(cfg, p, idx, tgt):
    C, NH, eps = cfg["d_model"], cfg["n_heads"], cfg["norm_eps"]
    HD = C // NH
    Bn, Tn = idx.shape
    x = p["wte"][idx] + p["wpe"][:Tn]                                      # hidden_states = inputs_embeds + position_embeds
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(cfg["n_layers"]):
        q_ = f"blocks.{l}."
        h = F.layer_norm(x, (C,), p[q_ + "ln1.weight"], p[q_ + "ln1.bias"], eps)
        qkv = h @ p[q_ + "attn.w_qkv"].T + p[q_ + "attn.b_qkv"]           # query, key, value = self.c_attn(h).split(C, dim=2)
        q, k, v = qkv.split(C, dim=2)
        q, k, v = [t.view(Bn, Tn, NH, HD).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        z = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + z @ p[q_ + "attn.w_o"].T + p[q_ + "attn.b_o"]
        h = F.layer_norm(x, (C,), p[q_ + "ln2.weight"], p[q_ + "ln2.bias"], eps)
        m = F.gelu(h @ p[q_ + "mlp.w_in"].T + p[q_ + "mlp.b_in"], approximate="tanh")
        x = x + m @ p[q_ + "mlp.w_out"].T + p[q_ + "mlp.b_out"]
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    logits = x @ p["wte"].T                                                # tied lm_head
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def llama_params(cfg, g):
    V, C, L, Fw = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["d_mlp"]
    NH, NKV, HD = cfg["n_heads"], cfg["n_kv_heads"], cfg["d_head"]
    mat = lambda *s: torch.randn(*s, generator=g) * 0.3
    vec = lambda n: 1.0 + torch.randn(n, generator=g) * 0.1
    p = {"wte": mat(V, C)}
    for l in range(L):
        q = f"blocks.{l}."
        p[q + "ln1.weight"] = vec(C)
        p[q + "attn.w_qkv"] = mat((NH + 2 * NKV) * HD, C)
        p[q + "attn.w_o"] = mat(C, NH * HD)
        p[q + "ln2.weight"] = vec(C)
        p[q + "mlp.w_gate"], p[q + "mlp.w_up"], p[q + "mlp.w_out"] = mat(Fw, C), mat(Fw, C), mat(C, Fw)
    p["ln_f.weight"] = vec(C)
    p["w_u"] = mat(V, C)
    return p


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w   # LlamaRMSNorm


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def llama_loss(cfg, p, idx, tgt):
    C, NH, NKV, HD, eps = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"], cfg["d_head"], cfg["norm_eps"]
    Bn, Tn = idx.shape
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, HD, 2).float() / HD))
    freqs = torch.outer(torch.arange(Tn).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    x = p["wte"][idx]
    for l in range(cfg["n_layers"]):
        q_ = f"blocks.{l}."
        h = rms(x, p[q_ + "ln1.weight"], eps)
        qkv = h @ p[q_ + "attn.w_qkv"].T
        q, k, v = qkv.split([NH * HD, NKV * HD, NKV * HD], dim=2)
        q = q.view(Bn, Tn, NH, HD).transpose(1, 2)
        k = k.view(Bn, Tn, NKV, HD).transpose(1, 2)
        v = v.view(Bn, Tn, NKV, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin                                # apply_rotary_pos_emb
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)                          # repeat_kv
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(HD)).masked_fill(~mask, float("-inf")).softmax(-1)
        z = (att @ v).transpose(1, 2).reshape(Bn, Tn, NH * HD)
        x = x + z @ p[q_ + "attn.w_o"].T
        h = rms(x, p[q_ + "ln2.weight"], eps)
        x = x + (F.silu(h @ p[q_ + "mlp.w_gate"].T) * (h @ p[q_ + "mlp.w_up"].T)) @ p[q_ + "mlp.w_out"].T
    x = rms(x, p["ln_f.weight"], eps)
    logits = x @ p["w_u"].T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def lr_at(step):
    a = ADAM
    peak, lo = a["lr"], a["lr"] * a["min_lr_fraction"]
    if step <= a["warmup"]:
        return peak * step / max(1, a["warmup"])
    progress = (step - a["warmup"]) / max(1, STEPS - a["warmup"])
    return lo + 0.5 * (peak - lo) * (1 + math.cos(math.pi * min(1.0, progress)))


CASES = {
    "gpt2": (dict(architecture="Gpt2", vocab_size=13, d_model=16, n_layers=2, n_heads=4, seq_len=T, d_mlp=24,
                  norm_eps=1e-5, tied_embeddings=True), gpt2_params, gpt2_loss),
    "llama_gqa": (dict(architecture="Llama", vocab_size=13, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_head=4,
                       seq_len=T, d_mlp=24, norm_eps=1e-5, rope_theta=10000.0, tied_embeddings=False), llama_params, llama_loss),
}


def make(out, name, seed):
    cfg, make_params, loss_fn = CASES[name]
    g = torch.Generator().manual_seed(seed)
    params = make_params(cfg, g)
    d = os.path.join(out, "train", name)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "weights.safetensors"), params)
    p = {k: v.clone().requires_grad_(True) for k, v in read_safetensors(os.path.join(d, "weights.safetensors")).items()}
    batches = [torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g) for _ in range(STEPS)]
    decay = [t for t in p.values() if t.dim() >= 2]
    no_decay = [t for t in p.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAM["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"])
    steps = []
    for s, batch in enumerate(batches, start=1):
        idx, tgt = batch[:, :-1], batch[:, 1:]
        opt.zero_grad()
        loss = loss_fn(cfg, p, idx, tgt)
        loss.backward()
        if s == 1:
            write_safetensors(os.path.join(d, "grads.safetensors"), {k: v.grad for k, v in p.items()})
            first_loss = loss.item()
        norm = torch.nn.utils.clip_grad_norm_(list(p.values()), ADAM["clip"]).item()
        lr = lr_at(s)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        steps.append(dict(tokens=idx.reshape(-1).tolist(), targets=tgt.reshape(-1).tolist(), lr=lr, loss=loss.item(), grad_norm=norm))
    golden = dict(config=cfg, batch=B, seq_len=T, adam=ADAM, loss=first_loss, steps=steps, seed=seed,
                  note="written by dev/reference/make_train_goldens.py; torch " + torch.__version__)
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: loss {first_loss:.6f} → {steps[-1]['loss']:.6f} after {STEPS} steps")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/goldens")
    args = ap.parse_args()
    make(args.out, "gpt2", 1)
    make(args.out, "llama_gqa", 2)
