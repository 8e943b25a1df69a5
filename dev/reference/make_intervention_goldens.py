#!/usr/bin/env python3
"""Independent reference for Headwise intervention recipes (issue 11): per-token NLL under every kind.

For each model below, writes under <out>/interventions/<model>/:
  <recipe>.json    one recipe, in the issue's schema: {"name": ..., "interventions": [...]}
  expected.json    {"model", "tokens", "source_tokens", "tolerance", "nll": {"none": [...], "<recipe>": [...]}, "notes"}
                   nll[t] = -log softmax(logits[t])[tokens[t+1]], t = 0..T-2, float64

Models: tests/goldens/llama_gqa (Llama, grouped-query attention 4 query / 2 kv heads), tests/goldens/gpt2_tied (GPT-2)
and ../shared/models/stories260K/stories260K.bin (a real llama2.c model: 8 query / 4 kv heads, interleaved RoPE).

Every kind is applied by hand from its definition in the issue, in our own float64 forward written in
TransformerLens' per-head terms (row-vector convention x·W):
  hook_q  [NH, T, HD]   queries before RoPE          hook_k, hook_v  [NKV, T, HD]  keys / values before RoPE
  hook_pattern [NH, T, T]  softmax probabilities     hook_z  [NH, T, HD]  pattern @ v, per head, before W_O
A query head h reads kv head kv(h) = h // (NH / NKV). Interventions on q/k/v/pattern/z touch query head h only: its
k and v are copied out of kv head kv(h) first, so the other query heads sharing that kv head keep the clean ones.

The plain forward (no recipe) is checked against the committed golden logits (tests/goldens/*/expected.safetensors,
written by make_goldens.py from the Hugging Face semantics) and, for stories260K, against a second formulation that
follows llama2.c's run.c step by step (token by token, KV cache, rotating adjacent pairs).

Usage:
  /usr/bin/python3 dev/reference/make_intervention_goldens.py --out tests/goldens          # (re)generate
  /usr/bin/python3 dev/reference/make_intervention_goldens.py --out tests/goldens --check  # recompute + compare
"""
import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import _compact_json, gelu_new, read_safetensors, rotate_half  # noqa: E402

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

TOLERANCE = 1e-4       # what the C# engine (fp32) must meet against these NLLs
CHECK_DRIFT = 1e-8     # --check: float64 NLLs may drift this much on another CPU / BLAS
MIN_EFFECT = 1e-3      # every recipe must move some token's NLL by more than this (else it tests nothing)
SEQ_LEN = 20
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# --------------------------------------------------------------------------------------
# canonical per-head weights (row-vector convention, checkpoint values, no norm folding)
# --------------------------------------------------------------------------------------


class Model:
    """family 'gpt2' (LayerNorm, learned positions, gelu_new MLP) or 'llama' (RMSNorm, RoPE, SwiGLU).
    Per layer: W_Q [NH, C, HD], W_K/W_V [NKV, C, HD], W_O [NH, HD, C], biases b_Q [NH, HD], b_K/b_V [NKV, HD], b_O [C]."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def kv(self, h):
        return h // (self.NH // self.NKV)


def _heads_in(w, n, hd):
    # x·w with w: [C, n·hd] (columns of head i are i·hd .. i·hd+hd-1)  ->  [n, C, hd]
    return w.reshape(w.shape[0], n, hd).permute(1, 0, 2).contiguous()


def from_hf(W, cfg):
    """Canonical weights from a Hugging Face checkpoint (gpt2 or llama), upcast to float64."""
    W = {k: v.double() for k, v in W.items()}
    layers = []
    if cfg["model_type"] == "gpt2":
        C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
        HD = C // NH
        for i in range(L):
            p = f"transformer.h.{i}."
            w, b = W[p + "attn.c_attn.weight"], W[p + "attn.c_attn.bias"]  # Conv1D (in, out) = [C, 3C]: [q | k | v]
            layers.append(dict(
                ln1=(W[p + "ln_1.weight"], W[p + "ln_1.bias"]), ln2=(W[p + "ln_2.weight"], W[p + "ln_2.bias"]),
                W_Q=_heads_in(w[:, :C], NH, HD), W_K=_heads_in(w[:, C:2 * C], NH, HD), W_V=_heads_in(w[:, 2 * C:], NH, HD),
                b_Q=b[:C].reshape(NH, HD), b_K=b[C:2 * C].reshape(NH, HD), b_V=b[2 * C:].reshape(NH, HD),
                W_O=W[p + "attn.c_proj.weight"].reshape(NH, HD, C), b_O=W[p + "attn.c_proj.bias"],
                mlp=("gelu", W[p + "mlp.c_fc.weight"], W[p + "mlp.c_fc.bias"],
                     W[p + "mlp.c_proj.weight"], W[p + "mlp.c_proj.bias"])))
        return Model(family="gpt2", C=C, NH=NH, NKV=NH, HD=HD, eps=cfg["layer_norm_epsilon"], rope=None,
                     wte=W["transformer.wte.weight"], wpe=W["transformer.wpe.weight"], layers=layers,
                     ln_f=(W["transformer.ln_f.weight"], W["transformer.ln_f.bias"]),
                     unembed=W.get("lm_head.weight", W["transformer.wte.weight"]))
    assert cfg["model_type"] == "llama", cfg["model_type"]
    C, NH, NKV, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    HD = cfg.get("head_dim") or C // NH
    zero = torch.zeros
    for i in range(L):
        p = f"model.layers.{i}."
        # nn.Linear weight is (out, in): x·Wᵀ, so the row-vector matrix is its transpose
        layers.append(dict(
            ln1=(W[p + "input_layernorm.weight"], None), ln2=(W[p + "post_attention_layernorm.weight"], None),
            W_Q=_heads_in(W[p + "self_attn.q_proj.weight"].t(), NH, HD),
            W_K=_heads_in(W[p + "self_attn.k_proj.weight"].t(), NKV, HD),
            W_V=_heads_in(W[p + "self_attn.v_proj.weight"].t(), NKV, HD),
            b_Q=zero(NH, HD), b_K=zero(NKV, HD), b_V=zero(NKV, HD),
            W_O=W[p + "self_attn.o_proj.weight"].t().reshape(NH, HD, C), b_O=zero(C),
            mlp=("swiglu", W[p + "mlp.gate_proj.weight"].t(), W[p + "mlp.up_proj.weight"].t(),
                 W[p + "mlp.down_proj.weight"].t())))
    return Model(family="llama", C=C, NH=NH, NKV=NKV, HD=HD, eps=cfg["rms_norm_eps"],
                 rope=(cfg.get("rope_layout", "rotate_half"), cfg["rope_theta"]),
                 wte=W["model.embed_tokens.weight"], wpe=None, layers=layers, ln_f=(W["model.norm.weight"], None),
                 unembed=W.get("lm_head.weight", W["model.embed_tokens.weight"]))


def read_llama2c(path):
    """llama2.c legacy (version 0) checkpoint -> (HF-named float32 tensors, HF-style config). Format: the model's README."""
    data = open(path, "rb").read()
    dim, hidden, L, NH, NKV, vocab_signed, seq_len = struct.unpack("<7i", data[:28])
    vocab, hd, kv_dim = abs(vocab_signed), dim // NH, dim * NKV // NH
    f = np.frombuffer(data, "<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        a = torch.from_numpy(f[off:off + n].copy()).reshape(shape)
        off += n
        return a

    W = {"model.embed_tokens.weight": take(vocab, dim)}
    order = [("input_layernorm.weight", (dim,)), ("self_attn.q_proj.weight", (dim, dim)),
             ("self_attn.k_proj.weight", (kv_dim, dim)), ("self_attn.v_proj.weight", (kv_dim, dim)),
             ("self_attn.o_proj.weight", (dim, dim)), ("post_attention_layernorm.weight", (dim,)),
             ("mlp.gate_proj.weight", (hidden, dim)), ("mlp.down_proj.weight", (dim, hidden)),
             ("mlp.up_proj.weight", (hidden, dim))]  # w1, w2, w3
    for name, shape in order:  # each array holds all layers
        for i in range(L):
            W[f"model.layers.{i}.{name}"] = take(*shape)
    W["model.norm.weight"] = take(dim)
    off += 2 * seq_len * (hd // 2)  # legacy freq_cis_real / freq_cis_imag tables
    if vocab_signed < 0:
        W["lm_head.weight"] = take(vocab, dim)
    assert off == f.size, f"{path}: {f.size} floats, layout accounts for {off}"
    cfg = dict(model_type="llama", hidden_size=dim, num_attention_heads=NH, num_key_value_heads=NKV, num_hidden_layers=L,
               vocab_size=vocab, rms_norm_eps=1e-5, rope_theta=10000.0, rope_layout="interleaved", head_dim=hd)
    return W, cfg


# --------------------------------------------------------------------------------------
# forward with hooks (float64, one sequence, positions 0..T-1)
# --------------------------------------------------------------------------------------


def norm(M, x, wb):
    w, b = wb
    if M.family == "gpt2":
        return F.layer_norm(x, (x.shape[-1],), w, b, M.eps)
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + M.eps))  # RMSNorm: eps inside the rsqrt


def rope(M, x):
    """x: [n, T, HD] at positions 0..T-1. Angle of pair j: pos·θ^(-2j/HD). HF pairs (j, j+HD/2); llama2.c (2j, 2j+1)."""
    layout, theta = M.rope
    T, HD = x.shape[1], x.shape[2]
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-torch.arange(0, HD, 2, dtype=torch.float64) / HD)
    if layout == "rotate_half":
        cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
        return x * cos + rotate_half(x) * sin
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * ang.cos() - x1 * ang.sin()
    out[..., 1::2] = x1 * ang.cos() + x0 * ang.sin()
    return out


class Hooks:
    """Per layer, functions run at each hook point in recipe order.
    qkv[l]: f(q, k, v) on per-query-head tensors [NH, T, HD] (before RoPE), in place
    pattern[l]: f(p) on [NH, T, T], in place;  z[l]: f(z) on [NH, T, HD], in place
    ov_direct[(l, h)]: W_OV' [C, C] — head h's output computed as pattern·(x·W_OV') + b_V·W_O (checks edit_ov)."""

    def __init__(self, L):
        self.qkv = [[] for _ in range(L)]
        self.pattern = [[] for _ in range(L)]
        self.z = [[] for _ in range(L)]
        self.ov_direct = {}


def forward(M, tokens, hooks=None, cache=None):
    """Logits [T, V]. cache (a dict) receives hook_q/k/v (as computed, [NH or NKV, T, HD]), hook_pattern and hook_z."""
    T = len(tokens)
    ids = torch.tensor(tokens)
    x = M.wte[ids] + (M.wpe[:T] if M.wpe is not None else 0)
    kv_of = torch.tensor([M.kv(h) for h in range(M.NH)])
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l, Ly in enumerate(M.layers):
        hN = norm(M, x, Ly["ln1"])
        q = torch.einsum("tc,nch->nth", hN, Ly["W_Q"]) + Ly["b_Q"][:, None]  # hook_q  [NH, T, HD]
        k = torch.einsum("tc,nch->nth", hN, Ly["W_K"]) + Ly["b_K"][:, None]  # hook_k  [NKV, T, HD]
        v = torch.einsum("tc,nch->nth", hN, Ly["W_V"]) + Ly["b_V"][:, None]  # hook_v  [NKV, T, HD]
        if cache is not None:
            cache[f"{l}.q"], cache[f"{l}.k"], cache[f"{l}.v"] = q.clone(), k.clone(), v.clone()
        # per query head copies (GQA: repeat_kv), so an intervention on one query head's k/v leaves its siblings alone
        q, k, v = q.clone(), k[kv_of].clone(), v[kv_of].clone()
        for f in (hooks.qkv[l] if hooks else []):
            f(q, k, v)
        if M.rope is not None:
            q, k = rope(M, q), rope(M, k)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(M.HD)
        pattern = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)  # hook_pattern [NH, T, T]
        for f in (hooks.pattern[l] if hooks else []):
            f(pattern)
        z = pattern @ v  # hook_z [NH, T, HD]
        for f in (hooks.z[l] if hooks else []):
            f(z)
        if cache is not None:
            cache[f"{l}.pattern"], cache[f"{l}.z"] = pattern.clone(), z.clone()
        per_head = torch.einsum("nth,nhc->ntc", z, Ly["W_O"])  # head h's write into the residual [NH, T, C]
        for (hl, h), w_ov in (hooks.ov_direct.items() if hooks else []):
            if hl == l:  # pattern·(x·W_V + b_V)·W_O' = pattern·(x·W_OV') + b_V·W_O'  (rows of the pattern sum to 1)
                per_head[h] = pattern[h] @ (hN @ w_ov) + Ly["b_V"][M.kv(h)] @ Ly["W_O"][h]
        x = x + per_head.sum(0) + Ly["b_O"]
        hN = norm(M, x, Ly["ln2"])
        if Ly["mlp"][0] == "gelu":
            _, w_in, b_in, w_out, b_out = Ly["mlp"]
            x = x + gelu_new(hN @ w_in + b_in) @ w_out + b_out
        else:
            _, w_gate, w_up, w_down = Ly["mlp"]
            x = x + (F.silu(hN @ w_gate) * (hN @ w_up)) @ w_down
    return norm(M, x, M.ln_f) @ M.unembed.t()


def token_nll(logits, tokens):
    """nll[t] = -log softmax(logits[t])[tokens[t+1]], t = 0..T-2."""
    lp = torch.log_softmax(logits, dim=-1)
    return [-float(lp[t, tokens[t + 1]]) for t in range(len(tokens) - 1)]


# --------------------------------------------------------------------------------------
# the recipe kinds, by hand from the definitions
# --------------------------------------------------------------------------------------


def parse_head(s, M):
    layer, head = (int(p) for p in s.split("."))
    assert 0 <= layer < len(M.layers) and 0 <= head < M.NH, f"head {s} does not exist"
    return layer, head


def edited_singular_values(S, item):
    """remove: zero the listed components (0 = largest); scale: {"i": factor}."""
    S = S.clone()
    for i in item.get("remove", []):
        S[i] = 0.0
    for i, a in item.get("scale", {}).items():
        S[int(i)] *= a
    return S


def full_column_rank(W):
    return int(torch.linalg.matrix_rank(W)) == W.shape[1]


def edit_ov(M, layer, h, item):
    """W_OV = W_V[kv(h)]·W_O[h] [C, C]; edit its singular values; apply through W_O[h] only:
    W_O[h]' = pinv(W_V[kv(h)])·W_OV'. Returns W_OV' (W_V·W_O' equals it: asserted)."""
    Ly = M.layers[layer]
    w_v = Ly["W_V"][M.kv(h)]  # [C, HD]
    U, S, Vh = torch.linalg.svd(w_v @ Ly["W_O"][h])
    w_ov = U @ torch.diag(edited_singular_values(S, item)) @ Vh
    Ly["W_O"] = Ly["W_O"].clone()
    Ly["W_O"][h] = torch.linalg.pinv(w_v) @ w_ov
    assert full_column_rank(w_v)
    d = (w_v @ Ly["W_O"][h] - w_ov).abs().max().item()
    assert d < 1e-10, f"edit_ov {layer}.{h}: W_V·W_O' differs from the edited W_OV by {d}"
    return w_ov


def edit_qk(M, layer, h, item):
    """W_QK = W_Q[h]·W_K[kv(h)]ᵀ [C, C]; edit its singular values; apply through W_Q[h] only:
    W_Q[h]' = W_QK'·pinv(W_K[kv(h)]ᵀ). (W_Q'·W_Kᵀ equals W_QK': asserted.)"""
    Ly = M.layers[layer]
    w_k = Ly["W_K"][M.kv(h)]  # [C, HD]
    U, S, Vh = torch.linalg.svd(Ly["W_Q"][h] @ w_k.t())
    w_qk = U @ torch.diag(edited_singular_values(S, item)) @ Vh
    Ly["W_Q"] = Ly["W_Q"].clone()
    Ly["W_Q"][h] = w_qk @ torch.linalg.pinv(w_k.t())
    assert full_column_rank(w_k)
    d = (Ly["W_Q"][h] @ w_k.t() - w_qk).abs().max().item()
    assert d < 1e-10, f"edit_qk {layer}.{h}: W_Q'·W_Kᵀ differs from the edited W_QK by {d}"


def redistribute_sink(p, h, fraction, sinks):
    """Rows q > max(sinks): the sink mass m is scaled by (1 - f) and f·m goes to the other visible keys (k <= q, not a
    sink) in proportion to their attention. Rows with no other attention are unchanged."""
    T = p.shape[1]
    for q in range(max(sinks) + 1, T):
        row = p[h, q]
        others = [k for k in range(q + 1) if k not in sinks]
        m, o = row[sinks].sum(), row[others].sum()
        if o <= 0:
            continue
        new = row.clone()
        new[sinks] = row[sinks] * (1 - fraction)
        new[others] = row[others] + fraction * m * row[others] / o
        assert abs(new.sum().item() - 1) < 1e-12 and abs(new[sinks].sum().item() - (1 - fraction) * m.item()) < 1e-12
        p[h, q] = new


def apply_recipe(M, recipe, tokens, direct_ov=False):
    """(model with the weight edits, hooks) for a recipe, in the order listed. direct_ov: run edit_ov heads through
    the edited product W_OV' instead of the edited W_O (a check that both give the same result)."""
    M0, M = M, copy.copy(M)
    M.layers = [dict(Ly) for Ly in M.layers]  # weight edits replace a layer's tensor: the original stays intact
    hooks = Hooks(len(M.layers))
    for item in recipe["interventions"]:
        kind = item["kind"]
        if kind in ("edit_ov", "edit_qk"):
            layer, h = parse_head(item["head"], M)
            if kind == "edit_qk":
                edit_qk(M, layer, h, item)
                continue
            w_ov = edit_ov(M, layer, h, item)
            if direct_ov:
                hooks.ov_direct[(layer, h)] = w_ov
            continue
        heads = [parse_head(s, M) for s in item["heads"]]
        if kind == "inject":
            src = item["source"]["tokens"]
            if len(src) != len(tokens):
                raise ValueError(f"inject: source has {len(src)} tokens, the input {len(tokens)}")
            src_cache = {}
            forward(M0, src, cache=src_cache)  # the source run itself is clean
        for layer, h in heads:
            if kind == "scale":
                hooks.z[layer].append(lambda z, h=h, a=item["factor"]: z[h].mul_(a))
            elif kind == "ablate" and item["method"] == "zero":
                hooks.z[layer].append(lambda z, h=h: z[h].zero_())
            elif kind == "ablate" and item["method"] == "mean":
                # the head's mean z over the positions of this run
                hooks.z[layer].append(lambda z, h=h: z[h].copy_(z[h].mean(0, keepdim=True).expand_as(z[h])))
            elif kind == "soften":
                s = item["strength"]
                hooks.pattern[layer].append(
                    lambda p, h=h, s=s: p[h].copy_((1 - s) * p[h] + s * torch.eye(p.shape[1])))
            elif kind == "redistribute_sink":
                hooks.pattern[layer].append(
                    lambda p, h=h, f=item["fraction"], sk=item["sinks"]: redistribute_sink(p, h, f, sk))
            elif kind == "inject":
                comp = item["component"]
                # q: query head h's own query; k/v: the source's kv head kv(h), seen by query head h only
                src = src_cache[f"{layer}.{comp}"][h if comp == "q" else M.kv(h)]
                idx = "qkv".index(comp)
                hooks.qkv[layer].append(lambda q, k, v, h=h, idx=idx, src=src: (q, k, v)[idx][h].copy_(src))
            else:
                raise ValueError(f"unknown kind {kind}")
    return M, hooks


def run_recipe(M, recipe, tokens, direct_ov=False, cache=None):
    Me, hooks = apply_recipe(M, recipe, tokens, direct_ov)
    return token_nll(forward(Me, tokens, hooks, cache), tokens)


# --------------------------------------------------------------------------------------
# the models, their inputs and their recipes
# --------------------------------------------------------------------------------------


def load_golden(case):
    d = os.path.join(REPO, "tests", "goldens", case)
    W = {}
    for fn in json.load(open(os.path.join(d, "golden.json")))["weight_files"]:
        if fn.endswith(".safetensors"):
            W.update(read_safetensors(os.path.join(d, fn)))
    cfg = json.load(open(os.path.join(d, "config.json")))
    return from_hf(W, cfg), cfg, d


def stories_path():
    p = os.path.join(REPO, "..", "shared", "models", "stories260K", "stories260K.bin")
    return p if os.path.isfile(p) else None


# BOS + "Tom had a red kite. One windy day," and BOS + "Lily liked to sing songs with her mom in the big g" as tok512.bin
# encodes them (`headwise tokenize`): text the model reads well but does not know by heart (its own greedy output scores
# ~0.1 nats, which leaves the interventions little to change)
STORIES_TOKENS = [1, 274, 287, 381, 261, 352, 266, 409, 275, 411, 426, 385, 263, 417, 264, 422, 328, 432, 265, 409]
STORIES_SOURCE = [1, 317, 397, 355, 267, 262, 299, 262, 289, 428, 419, 335, 311, 357, 322, 265, 370, 298, 276, 302]


def model_cases():
    """(name, model path relative to the repo, Model, tokens, source tokens, the head for redistribute_sink)."""
    out = []
    for case, seed in (("llama_gqa", 1101), ("gpt2_tied", 1102)):
        M, cfg, _ = load_golden(case)
        rs = np.random.RandomState(seed)
        V = cfg["vocab_size"]
        toks = rs.randint(1, V, size=SEQ_LEN).tolist()
        src = rs.randint(1, V, size=SEQ_LEN).tolist()
        out.append((case, f"tests/goldens/{case}", M, toks, src, "1.3"))
    p = stories_path()
    if p is None:
        print("stories260K: ../shared/models/stories260K/stories260K.bin is absent, skipped")
    else:
        W, cfg = read_llama2c(p)
        # 4.0 puts 0.38 of its attention on BOS (position 0) on these tokens: a real sink
        out.append(("stories260K", "../shared/models/stories260K/stories260K.bin", from_hf(W, cfg), STORIES_TOKENS,
                    STORIES_SOURCE, "4.0"))
    return out


def recipes(src, sink_head):
    """Every kind, on heads every model here has (>= 2 layers, >= 4 query heads; GQA pairs share kv heads 0.0/0.1)."""
    def r(name, *items):
        return {"name": name, "interventions": list(items)}
    return [
        r("scale_2", {"kind": "scale", "heads": ["1.0"], "factor": 2.0}),
        r("scale_0", {"kind": "scale", "heads": ["0.1"], "factor": 0.0}),
        r("ablate_zero", {"kind": "ablate", "heads": ["0.1"], "method": "zero"}),
        r("ablate_mean", {"kind": "ablate", "heads": ["1.2"], "method": "mean"}),
        r("soften", {"kind": "soften", "heads": ["0.2"], "strength": 0.5}),
        r("redistribute_sink", {"kind": "redistribute_sink", "heads": [sink_head], "fraction": 0.5, "sinks": [0]}),
        r("inject_q", {"kind": "inject", "heads": ["1.0"], "component": "q", "source": {"tokens": src}}),
        r("inject_k", {"kind": "inject", "heads": ["1.1"], "component": "k", "source": {"tokens": src}}),
        r("inject_v", {"kind": "inject", "heads": ["0.1"], "component": "v", "source": {"tokens": src}}),
        r("edit_ov", {"kind": "edit_ov", "head": "0.0", "remove": [0]}),
        r("edit_qk", {"kind": "edit_qk", "head": "1.1", "remove": [0]}),
        r("edit_ov_scale", {"kind": "edit_ov", "head": "1.2", "scale": {"0": 0.5, "1": 2.0}}),
        r("combined",
          {"kind": "scale", "heads": ["1.3"], "factor": 3.0},
          {"kind": "soften", "heads": ["0.1"], "strength": 0.5},
          {"kind": "edit_ov", "head": "1.0", "remove": [0]}),
    ]


def recipe_json(r):
    """A recipe file as a person would write it: one line per intervention."""
    items = ",\n    ".join(json.dumps(i) for i in r["interventions"])
    return f'{{\n  "name": {json.dumps(r["name"])},\n  "interventions": [\n    {items}\n  ]\n}}\n'


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def self_checks(name, M, tokens, src, sink_head, nll):
    """The issue's identities, and the GQA rule (an inject on one query head leaves its kv siblings alone)."""
    none = nll["none"]

    def one(*items):
        return run_recipe(M, {"name": "check", "interventions": list(items)}, tokens)

    exact = [
        ("scale 1", {"kind": "scale", "heads": ["1.0"], "factor": 1.0}),
        ("soften 0", {"kind": "soften", "heads": ["0.2"], "strength": 0.0}),
        ("fraction 0", {"kind": "redistribute_sink", "heads": [sink_head], "fraction": 0.0, "sinks": [0]}),
        ("inject own v", {"kind": "inject", "heads": ["0.1"], "component": "v", "source": {"tokens": tokens}}),
        ("inject own k", {"kind": "inject", "heads": ["1.1"], "component": "k", "source": {"tokens": tokens}}),
    ]
    for what, item in exact:
        assert one(item) == none, f"{name}: {what} changes the NLL"
    d = max_diff(one({"kind": "edit_ov", "head": "0.0", "remove": []}), none)
    assert d < 1e-10, f"{name}: removing no component changes the NLL by {d}"
    d = max_diff(one({"kind": "edit_qk", "head": "1.1", "remove": []}), none)
    assert d < 1e-10, f"{name}: removing no QK component changes the NLL by {d}"
    assert nll["scale_0"] == nll["ablate_zero"], f"{name}: scale 0 differs from zero ablation"
    d = max_diff(one({"kind": "edit_ov", "head": "0.1", "remove": list(range(M.C))}), nll["ablate_zero"])
    assert d < 1e-10, f"{name}: removing every OV component differs from zero ablation by {d}"
    # edit_ov through the edited W_O equals running the head on the edited product W_OV' directly
    for rname in ("edit_ov", "edit_ov_scale", "combined"):
        r = next(x for x in recipes(src, sink_head) if x["name"] == rname)
        d = max_diff(run_recipe(M, r, tokens, direct_ov=True), nll[rname])
        assert d < 1e-10, f"{name}/{rname}: W_O' and the direct W_OV' differ by {d}"
    # GQA: inject k / v on query head 1.1 (or 0.1) changes only that query head's pattern / z
    for comp, (layer, h) in (("k", (1, 1)), ("v", (0, 1))):
        clean, hit = {}, {}
        forward(M, tokens, cache=clean)
        run_recipe(M, {"name": "c", "interventions": [
            {"kind": "inject", "heads": [f"{layer}.{h}"], "component": comp, "source": {"tokens": src}}]}, tokens, cache=hit)
        for g in range(M.NH):
            same = torch.equal(clean[f"{layer}.z"][g], hit[f"{layer}.z"][g])
            assert same == (g != h), f"{name}: inject {comp} on {layer}.{h} {'changes' if not same else 'keeps'} head {g}'s z"
    try:
        one({"kind": "inject", "heads": ["0.1"], "component": "v", "source": {"tokens": src[:-1]}})
        raise AssertionError("a source of another length was accepted")
    except ValueError:
        pass
    for rname, values in nll.items():
        if rname != "none":
            assert max_diff(values, none) > MIN_EFFECT, f"{name}/{rname}: changes no token's NLL by more than {MIN_EFFECT}"


def check_plain_forward(name, M, tokens):
    """The plain forward against an independent computation of the same model."""
    if name in ("llama_gqa", "gpt2_tied"):
        # the committed golden logits (make_goldens.py, HF semantics, fp32), no-padding scenario, each row alone
        d = os.path.join(REPO, "tests", "goldens", name)
        exp = read_safetensors(os.path.join(d, "expected.safetensors"))
        worst = 0.0
        for ids, want in zip(exp["input_ids_nopad"].tolist(), exp["logits_nopad"]):
            worst = max(worst, (forward(M, ids) - want.double()).abs().max().item())
        assert worst < TOLERANCE, f"{name}: plain forward differs from the golden logits by {worst}"
        print(f"  {name}: plain forward vs tests/goldens/{name} logits: max|d| = {worst:.2e}")
    else:
        ref = llama2c_run_c(M, tokens)
        worst = (forward(M, tokens) - ref).abs().max().item()
        assert worst < 1e-9, f"{name}: plain forward differs from the run.c formulation by {worst}"
        print(f"  {name}: plain forward vs the run.c-style formulation: max|d| = {worst:.2e}")


def llama2c_run_c(M, tokens):
    """Second formulation, after llama2.c run.c: token by token with a KV cache, RoPE rotating adjacent pairs (i, i+1)
    of the flat q/k vectors with freq = 10000^(-(i % head_size)/head_size), per-head attention loops. float64."""
    C, NH, HD = M.C, M.NH, M.HD
    key_cache = [[] for _ in M.layers]
    val_cache = [[] for _ in M.layers]
    out = []
    for pos, tok in enumerate(tokens):
        x = M.wte[tok].clone()
        for l, Ly in enumerate(M.layers):
            xb = Ly["ln1"][0] * x / math.sqrt(float((x * x).mean()) + M.eps)
            wq = Ly["W_Q"].permute(1, 0, 2).reshape(C, NH * HD)
            wk = Ly["W_K"].permute(1, 0, 2).reshape(C, M.NKV * HD)
            wv = Ly["W_V"].permute(1, 0, 2).reshape(C, M.NKV * HD)
            q, k, v = xb @ wq, xb @ wk, xb @ wv
            for i in range(0, NH * HD, 2):
                freq = 1.0 / 10000.0 ** ((i % HD) / HD)
                c, s = math.cos(pos * freq), math.sin(pos * freq)
                for vec in ((q, k) if i < M.NKV * HD else (q,)):
                    v0, v1 = float(vec[i]), float(vec[i + 1])
                    vec[i], vec[i + 1] = v0 * c - v1 * s, v0 * s + v1 * c
            key_cache[l].append(k)
            val_cache[l].append(v)
            att_out = torch.zeros(NH * HD)
            for h in range(NH):
                kh = M.kv(h) * HD
                qh = q[h * HD:(h + 1) * HD]
                sc = [float(qh @ kk[kh:kh + HD]) / math.sqrt(HD) for kk in key_cache[l]]
                mx = max(sc)
                e = [math.exp(a - mx) for a in sc]
                for wgt, vv in zip(e, val_cache[l]):
                    att_out[h * HD:(h + 1) * HD] += (wgt / sum(e)) * vv[kh:kh + HD]
            x = x + att_out @ Ly["W_O"].reshape(NH * HD, C)
            xb = Ly["ln2"][0] * x / math.sqrt(float((x * x).mean()) + M.eps)
            _, w1, w3, w2 = Ly["mlp"]
            h1, h3 = xb @ w1, xb @ w3
            x = x + (h1 / (1 + torch.exp(-h1)) * h3) @ w2
        x = M.ln_f[0] * x / math.sqrt(float((x * x).mean()) + M.eps)
        out.append(x @ M.unembed.t())
    return torch.stack(out)


def build(verbose=True):
    """{model name: {"files": {file name: text}}} — everything that goes under interventions/<model>/."""
    result = {}
    for name, path, M, tokens, src, sink_head in model_cases():
        if verbose:
            print(f"model {name}: {len(M.layers)} layers, {M.NH} query / {M.NKV} kv heads, d_head {M.HD}, T = {len(tokens)}")
        check_plain_forward(name, M, tokens)
        nll = {"none": token_nll(forward(M, tokens), tokens)}
        files = {}
        for r in recipes(src, sink_head):
            nll[r["name"]] = run_recipe(M, r, tokens)
            files[r["name"] + ".json"] = recipe_json(r)
            if verbose:
                print(f"  {r['name']:18s} mean nll {np.mean(nll[r['name']]):.4f} (none {np.mean(nll['none']):.4f}), "
                      f"max|Δ| {max_diff(nll[r['name']], nll['none']):.4f}")
        self_checks(name, M, tokens, src, sink_head, nll)
        expected = {
            "model": path,
            "tokens": tokens,
            "source_tokens": src,
            "tolerance": TOLERANCE,
            "nll": nll,
            "notes": "nll[t] = -log softmax(logits[t])[tokens[t+1]], t = 0..T-2, positions 0..T-1, batch 1, no padding; "
                     "float64 reference (dev/reference/make_intervention_goldens.py). Each recipe file <name>.json is "
                     "applied alone to tokens; an inject's source run is a clean run on source_tokens.",
        }
        files["expected.json"] = _compact_json(expected) + "\n"
        result[name] = files
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--check", action="store_true", help="recompute and compare with the files under --out")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    root = os.path.join(args.out, "interventions")
    built = build(verbose=not args.check)
    if not args.check:
        for name, files in built.items():
            os.makedirs(os.path.join(root, name), exist_ok=True)
            for fn, text in files.items():
                with open(os.path.join(root, name, fn), "w") as f:
                    f.write(text)
        print(f"wrote {sum(len(f) for f in built.values())} files under {root}")
        return
    errors = []
    for name, files in built.items():
        d = os.path.join(root, name)
        have = sorted(os.listdir(d)) if os.path.isdir(d) else []
        if have != sorted(files):
            errors.append(f"{name}: files {have} != {sorted(files)}")
            continue
        for fn, text in files.items():
            old = open(os.path.join(d, fn)).read()
            if fn != "expected.json":
                if old != text:
                    errors.append(f"{name}/{fn}: differs")
                continue
            a, b = json.loads(old), json.loads(text)
            if {k: v for k, v in a.items() if k != "nll"} != {k: v for k, v in b.items() if k != "nll"} \
                    or set(a["nll"]) != set(b["nll"]):
                errors.append(f"{name}/{fn}: fields differ")
                continue
            drift = max(max_diff(a["nll"][k], b["nll"][k]) for k in a["nll"])
            if drift > CHECK_DRIFT:
                errors.append(f"{name}/{fn}: nll differs by {drift}")
            print(f"check {name}: {'ok' if not any(e.startswith(name) for e in errors) else 'FAIL'} (max nll drift {drift:.1e})")
    for e in errors:
        print("ERROR", e)
    print("CHECK", "FAILED" if errors else "PASSED")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
