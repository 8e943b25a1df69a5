#!/usr/bin/env python3
"""Independent reference for Headwise: tiny random Hugging Face checkpoints + golden logits.

Writes, for each case under <out>/<case>/:
  config.json                      HF-style config
  model.safetensors                weights (or model-0000k-of-00002.safetensors + model.safetensors.index.json)
  expected.safetensors             F32 logits_{nopad,leftpad,rightpad} [2,10,V] and I32 ids/masks/positions
  golden.json                      inputs, scenarios, greedy continuation, tolerance, notes

The forward passes below are our own short re-implementations of the Hugging Face
modeling code (gpt2, llama, mistral, qwen2, gpt_neox). Comments quote the HF lines each
step matches. No transformers/safetensors packages are needed: only torch + numpy.

Usage:
  /usr/bin/python3 dev/reference/make_goldens.py --out tests/goldens          # (re)generate
  /usr/bin/python3 dev/reference/make_goldens.py --out tests/goldens --check  # recompute + compare
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # single-threaded CPU math: reproducible bytes run to run

SEQ_LEN = 10
BATCH = 2
GREEDY_PROMPT_LEN = 6
GREEDY_STEPS = 20
TOLERANCE = 1e-4
MIN_GREEDY_MARGIN = 2e-3
PAD_ID = 0  # token id written into padded slots (its logits there are undefined anyway)
F32_MIN = torch.finfo(torch.float32).min

# --------------------------------------------------------------------------------------
# safetensors I/O (hand written; format: u64 LE header length N, N bytes JSON header padded
# with spaces to a multiple of 8, then the packed little-endian tensor bytes)
# --------------------------------------------------------------------------------------

def _tensor_bytes(t, dtype):
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == "I32":
        return t.to(torch.int32).numpy().astype("<i4").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: dict name -> (torch tensor, dtype string). Tensors are packed in name order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t, dt = tensors[name]
        b = _tensor_bytes(t, dt)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off  # total data bytes


def read_safetensors(path):
    """Returns dict name -> float32 (or int64 for I32) torch tensor, as stored."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = info["data_offsets"]
        raw = data[base + b0: base + b1]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "F32":
            arr = torch.from_numpy(np.frombuffer(raw, "<f4").copy())
        elif dt == "F16":
            arr = torch.from_numpy(np.frombuffer(raw, "<f2").copy()).to(torch.float32)
        elif dt == "BF16":
            arr = torch.from_numpy(np.frombuffer(raw, "<i2").copy()).view(torch.bfloat16).to(torch.float32)
        elif dt == "I32":
            arr = torch.from_numpy(np.frombuffer(raw, "<i4").copy()).to(torch.int64)
        else:
            raise ValueError(dt)
        out[name] = arr.reshape(shape)
    return out


# --------------------------------------------------------------------------------------
# shared building blocks
# --------------------------------------------------------------------------------------

def allowed_mask(attn_mask, sliding_window=None):
    """Boolean [B,1,T,T]: True where query slot q may attend key slot k.

    masking_utils.py: causal_mask_function -> `kv_idx <= q_idx`;
    sliding_window_overlay -> `kv_idx > q_idx - sliding_window`;
    padding_mask_function -> `attention_mask[batch_idx, kv_idx]` (key padding only).
    Indices are *slot* indices (cache positions), not position_ids.
    """
    B, T = attn_mask.shape
    q = torch.arange(T)[:, None]
    k = torch.arange(T)[None, :]
    allowed = k <= q
    if sliding_window is not None:
        allowed = allowed & (k > q - sliding_window)
    return allowed[None, None, :, :] & attn_mask.bool()[:, None, None, :]


def attend(q, k, v, allowed, scale):
    """Eager attention as in HF `eager_attention_forward`:
        attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
        attn_weights = attn_weights + causal_mask          # 0 where allowed, finfo.min elsewhere
        attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32)
        attn_output = torch.matmul(attn_weights, value_states)
    (GPT-NeoX uses baddbmm(..., alpha=norm_factor) = same product times head_size**-0.5.)
    Rows with no allowed key (padded queries under left padding) come out uniform: undefined.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, F32_MIN)
    p = F.softmax(scores, dim=-1, dtype=torch.float32)
    ATTN_STATS.append(p.detach())
    return torch.matmul(p, v)


ATTN_STATS = []


def rms_norm(x, w, eps):
    """LlamaRMSNorm.forward:
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)
    """
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def layer_norm(x, w, b, eps):
    # nn.LayerNorm: (x - mean) / sqrt(biased_var + eps) * weight + bias
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu_new(x):
    # activations.NewGELUActivation:
    #   0.5 * input * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (input + 0.044715 * torch.pow(input, 3.0))))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_exact(x):
    # activations.GELUActivation -> nn.functional.gelu (erf form): 0.5 * x * (1 + erf(x / sqrt(2)))
    return F.gelu(x)


def rope_cos_sin(position_ids, dim, base):
    """LlamaRotaryEmbedding (default rope type), all in float32:
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * attention_scaling   (attention_scaling == 1.0 for default rope)
    Returns cos, sin of shape [B, T, dim].
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    freqs = position_ids.float()[:, :, None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    # x1 = x[..., : x.shape[-1] // 2]; x2 = x[..., x.shape[-1] // 2 :]; return torch.cat((-x2, x1), dim=-1)
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):
    # apply_rotary_pos_emb: cos = cos.unsqueeze(1); q_embed = (q * cos) + (rotate_half(q) * sin)
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


# --------------------------------------------------------------------------------------
# model forwards (vectorized). W: dict name -> float32 tensor. ids/mask/pos: [B,T] int64
# --------------------------------------------------------------------------------------

def gpt2_forward(W, cfg, ids, mask, pos):
    E, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hd = E // H
    eps = cfg["layer_norm_epsilon"]
    B, T = ids.shape
    allowed = allowed_mask(mask)
    # GPT2Model.forward: inputs_embeds = self.wte(input_ids); position_embeds = self.wpe(position_ids)
    #                    hidden_states = inputs_embeds + position_embeds
    x = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][pos]
    for i in range(L):
        p = f"transformer.h.{i}."
        h = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        # Conv1D.forward: x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)  (weight is [in, out])
        qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        # query_states, key_states, value_states = self.c_attn(hidden_states).split(self.split_size, dim=2)
        q, k, v = qkv.split(E, dim=-1)
        # shape_q = (*query_states.shape[:-1], -1, self.head_dim); .view(shape_q).transpose(1, 2)
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        # scale_attn_weights=True: attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5)
        a = attend(q, k, v, allowed, hd ** -0.5)
        a = a.transpose(1, 2).reshape(B, T, E)
        a = a @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        x = a + x  # hidden_states = attn_output + residual
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        # GPT2MLP: c_fc -> act (gelu_new) -> c_proj
        m = gelu_new(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        m = m @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
        x = x + m  # hidden_states = residual + feed_forward_hidden_states
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    # lm_head = nn.Linear(n_embd, vocab_size, bias=False), tied to wte when tie_word_embeddings
    head = W.get("lm_head.weight", W["transformer.wte.weight"])
    return x @ head.t()


def llama_forward(W, cfg, ids, mask, pos):
    """LlamaForCausalLM; also Mistral (sliding_window) and Qwen2 (q/k/v biases)."""
    E = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or E // H
    L = cfg["num_hidden_layers"]
    eps = cfg["rms_norm_eps"]
    B, T = ids.shape
    sw = None
    if cfg["model_type"] == "mistral":
        sw = cfg.get("sliding_window")
    elif cfg["model_type"] == "qwen2" and cfg.get("use_sliding_window"):
        raise NotImplementedError("qwen2 sliding window not covered")
    allowed = allowed_mask(mask, sw)
    cos, sin = rope_cos_sin(pos, hd, cfg["rope_theta"])
    x = W["model.embed_tokens.weight"][ids]

    def lin(h, name):
        y = h @ W[name + ".weight"].t()  # nn.Linear weight is [out, in]
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        return y

    for i in range(L):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        # query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2), hidden_shape = (*input_shape, -1, head_dim)
        q = lin(h, p + "self_attn.q_proj").view(B, T, H, hd).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj").view(B, T, KV, hd).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj").view(B, T, KV, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # repeat_kv: hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
        #            .reshape(batch, num_key_value_heads * n_rep, slen, head_dim)  -> q head h uses kv head h // n_rep
        n_rep = H // KV
        k = k[:, :, None].expand(B, KV, n_rep, T, hd).reshape(B, H, T, hd)
        v = v[:, :, None].expand(B, KV, n_rep, T, hd).reshape(B, H, T, hd)
        a = attend(q, k, v, allowed, hd ** -0.5)  # self.scaling = self.head_dim**-0.5
        a = a.transpose(1, 2).reshape(B, T, H * hd)
        x = x + lin(a, p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        # LlamaMLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)), act_fn = silu
        m = lin(F.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = x + m
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.t()


def neox_forward(W, cfg, ids, mask, pos):
    E, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd = E // H
    eps = cfg["layer_norm_eps"]
    rot = int(hd * cfg["rotary_pct"])  # self.rotary_ndims = int(self.head_size * config.rotary_pct)
    B, T = ids.shape
    allowed = allowed_mask(mask)
    cos, sin = rope_cos_sin(pos, rot, cfg["rotary_emb_base"])  # rotary dim = rotary_ndims
    x = W["gpt_neox.embed_in.weight"][ids]

    def lin(h, name):
        return h @ W[name + ".weight"].t() + W[name + ".bias"]

    for i in range(L):
        p = f"gpt_neox.layers.{i}."
        h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
        qkv = lin(h, p + "attention.query_key_value")
        # new_qkv_shape = qkv.size()[:-1] + (self.num_attention_heads, 3 * self.head_size); qkv = qkv.view(*new_qkv_shape)
        # query = qkv[..., : self.head_size]; key = qkv[..., self.head_size : 2 * self.head_size]; value = qkv[..., 2 * self.head_size :]
        qkv = qkv.view(B, T, H, 3 * hd)
        q = qkv[..., :hd].permute(0, 2, 1, 3)
        k = qkv[..., hd:2 * hd].permute(0, 2, 1, 3)
        v = qkv[..., 2 * hd:].permute(0, 2, 1, 3)
        # query_rot = query[..., : self.rotary_ndims]; query_pass = query[..., self.rotary_ndims :]
        # query = torch.cat((query, query_pass), dim=-1) after apply_rotary_pos_emb on the rot part
        q = torch.cat((apply_rope(q[..., :rot], cos, sin), q[..., rot:]), dim=-1)
        k = torch.cat((apply_rope(k[..., :rot], cos, sin), k[..., rot:]), dim=-1)
        a = attend(q, k, v, allowed, hd ** -0.5)  # norm_factor = self.head_size**-0.5
        a = a.permute(0, 2, 1, 3).reshape(B, T, E)
        a = lin(a, p + "attention.dense")

        def mlp(z):
            # GPTNeoXMLP: dense_h_to_4h -> act (gelu) -> dense_4h_to_h
            return lin(gelu_exact(lin(z, p + "mlp.dense_h_to_4h")), p + "mlp.dense_4h_to_h")

        if cfg["use_parallel_residual"]:
            # x = x + attn(ln1(x)) + mlp(ln2(x)):  hidden_states = mlp_output + attn_output + hidden_states
            m = mlp(layer_norm(x, W[p + "post_attention_layernorm.weight"], W[p + "post_attention_layernorm.bias"], eps))
            x = m + a + x
        else:
            # attn_output = attn_output + hidden_states; mlp_output = self.mlp(self.post_attention_layernorm(attn_output))
            a = a + x
            m = mlp(layer_norm(a, W[p + "post_attention_layernorm.weight"], W[p + "post_attention_layernorm.bias"], eps))
            x = m + a
    x = layer_norm(x, W["gpt_neox.final_layer_norm.weight"], W["gpt_neox.final_layer_norm.bias"], eps)
    return x @ W["embed_out.weight"].t()  # embed_out = nn.Linear(hidden_size, vocab_size, bias=False)


FORWARD = {"gpt2": gpt2_forward, "llama": llama_forward, "mistral": llama_forward,
           "qwen2": llama_forward, "gpt_neox": neox_forward}


# --------------------------------------------------------------------------------------
# naive second formulation (float64, explicit per-head / per-query loops) for self-check
# --------------------------------------------------------------------------------------

def _naive_attn_row(qv, keys, vals, scale):
    """qv: [hd]; keys/vals: list of [hd] for allowed key slots."""
    s = [float((qv * kk).sum()) * scale for kk in keys]
    mx = max(s)
    e = [math.exp(z - mx) for z in s]
    tot = sum(e)
    out = torch.zeros_like(qv)
    for wgt, vv in zip(e, vals):
        out = out + (wgt / tot) * vv
    return out


def naive_forward(W, cfg, ids, mask, pos):
    """Single-sequence float64 reference with explicit loops. Only valid rows (mask==1) are compared."""
    Wd = {k: v.double() for k, v in W.items()}
    mt = cfg["model_type"]
    B, T = ids.shape
    out = torch.zeros(B, T, cfg["vocab_size"], dtype=torch.float64)
    for b in range(B):
        valid = [t for t in range(T) if mask[b, t] == 1]
        if mt == "gpt2":
            E, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
            hd = E // H
            eps = cfg["layer_norm_epsilon"]

            def ln(z, w, bb):
                mu = z.mean()
                var = ((z - mu) ** 2).mean()
                return (z - mu) / math.sqrt(float(var) + eps) * w + bb

            xs = {t: Wd["transformer.wte.weight"][ids[b, t]] + Wd["transformer.wpe.weight"][pos[b, t]] for t in valid}
            for i in range(L):
                p = f"transformer.h.{i}."
                qs, ks, vs = {}, {}, {}
                for t in valid:
                    h = ln(xs[t], Wd[p + "ln_1.weight"], Wd[p + "ln_1.bias"])
                    # Conv1D column j of output = sum_i x_i * weight[i, j]
                    qkv = torch.stack([(h * Wd[p + "attn.c_attn.weight"][:, j]).sum() for j in range(3 * E)])
                    qkv = qkv + Wd[p + "attn.c_attn.bias"]
                    qs[t], ks[t], vs[t] = qkv[:E], qkv[E:2 * E], qkv[2 * E:]
                new = {}
                for t in valid:
                    heads = []
                    for hh in range(H):
                        sl = slice(hh * hd, (hh + 1) * hd)
                        keys = [ks[u][sl] for u in valid if u <= t]
                        vals = [vs[u][sl] for u in valid if u <= t]
                        heads.append(_naive_attn_row(qs[t][sl], keys, vals, 1.0 / math.sqrt(hd)))
                    a = torch.cat(heads) @ Wd[p + "attn.c_proj.weight"] + Wd[p + "attn.c_proj.bias"]
                    x = xs[t] + a
                    h = ln(x, Wd[p + "ln_2.weight"], Wd[p + "ln_2.bias"])
                    f = h @ Wd[p + "mlp.c_fc.weight"] + Wd[p + "mlp.c_fc.bias"]
                    f = torch.tensor([0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
                                      for z in f.tolist()], dtype=torch.float64)
                    new[t] = x + f @ Wd[p + "mlp.c_proj.weight"] + Wd[p + "mlp.c_proj.bias"]
                xs = new
            head = Wd.get("lm_head.weight", Wd["transformer.wte.weight"])
            for t in valid:
                out[b, t] = head @ ln(xs[t], Wd["transformer.ln_f.weight"], Wd["transformer.ln_f.bias"])
        elif mt in ("llama", "mistral", "qwen2"):
            E, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
            hd = E // H
            L = cfg["num_hidden_layers"]
            eps = cfg["rms_norm_eps"]
            sw = cfg.get("sliding_window") if mt == "mistral" else None

            def rms(z, w):
                return w * z / math.sqrt(float((z * z).mean()) + eps)

            def rope(vec, position):
                # pairs (j, j + hd/2) rotated by angle position * theta^(-2j/hd)
                o = vec.clone()
                half = hd // 2
                for j in range(half):
                    ang = position * cfg["rope_theta"] ** (-(2.0 * j) / hd)
                    c, s = math.cos(ang), math.sin(ang)
                    o[j] = vec[j] * c - vec[j + half] * s
                    o[j + half] = vec[j + half] * c + vec[j] * s
                return o

            def lin(z, name):
                y = Wd[name + ".weight"] @ z
                return y + Wd[name + ".bias"] if name + ".bias" in Wd else y

            xs = {t: Wd["model.embed_tokens.weight"][ids[b, t]] for t in valid}
            for i in range(L):
                p = f"model.layers.{i}."
                qs, ks, vs = {}, {}, {}
                for t in valid:
                    h = rms(xs[t], Wd[p + "input_layernorm.weight"])
                    q, k, v = lin(h, p + "self_attn.q_proj"), lin(h, p + "self_attn.k_proj"), lin(h, p + "self_attn.v_proj")
                    position = int(pos[b, t])
                    qs[t] = [rope(q[hh * hd:(hh + 1) * hd], position) for hh in range(H)]
                    ks[t] = [rope(k[g * hd:(g + 1) * hd], position) for g in range(KV)]
                    vs[t] = [v[g * hd:(g + 1) * hd] for g in range(KV)]
                new = {}
                for t in valid:
                    heads = []
                    for hh in range(H):
                        g = hh // (H // KV)
                        us = [u for u in valid if u <= t and (sw is None or t - u < sw)]
                        heads.append(_naive_attn_row(qs[t][hh], [ks[u][g] for u in us], [vs[u][g] for u in us],
                                                     1.0 / math.sqrt(hd)))
                    x = xs[t] + lin(torch.cat(heads), p + "self_attn.o_proj")
                    h = rms(x, Wd[p + "post_attention_layernorm.weight"])
                    gt = lin(h, p + "mlp.gate_proj")
                    gt = gt / (1 + torch.exp(-gt))
                    new[t] = x + lin(gt * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
                xs = new
            head = Wd.get("lm_head.weight", Wd["model.embed_tokens.weight"])
            for t in valid:
                out[b, t] = head @ rms(xs[t], Wd["model.norm.weight"])
        elif mt == "gpt_neox":
            E, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
            hd = E // H
            rot = int(hd * cfg["rotary_pct"])
            eps = cfg["layer_norm_eps"]

            def ln(z, w, bb):
                mu = z.mean()
                return (z - mu) / math.sqrt(float(((z - mu) ** 2).mean()) + eps) * w + bb

            def rope(vec, position):
                o = vec.clone()
                half = rot // 2
                for j in range(half):
                    ang = position * cfg["rotary_emb_base"] ** (-(2.0 * j) / rot)
                    c, s = math.cos(ang), math.sin(ang)
                    o[j] = vec[j] * c - vec[j + half] * s
                    o[j + half] = vec[j + half] * c + vec[j] * s
                return o

            def gelu(z):
                return torch.tensor([0.5 * u * (1 + math.erf(u / math.sqrt(2))) for u in z.tolist()],
                                    dtype=torch.float64)

            xs = {t: Wd["gpt_neox.embed_in.weight"][ids[b, t]] for t in valid}
            for i in range(L):
                p = f"gpt_neox.layers.{i}."
                # fused weight rows, per head h: [q_h (hd rows), k_h (hd rows), v_h (hd rows)]
                Wqkv = Wd[p + "attention.query_key_value.weight"].view(H, 3, hd, E)
                bqkv = Wd[p + "attention.query_key_value.bias"].view(H, 3, hd)
                qs, ks, vs = {}, {}, {}
                for t in valid:
                    h = ln(xs[t], Wd[p + "input_layernorm.weight"], Wd[p + "input_layernorm.bias"])
                    position = int(pos[b, t])
                    qs[t] = [rope(Wqkv[hh, 0] @ h + bqkv[hh, 0], position) for hh in range(H)]
                    ks[t] = [rope(Wqkv[hh, 1] @ h + bqkv[hh, 1], position) for hh in range(H)]
                    vs[t] = [Wqkv[hh, 2] @ h + bqkv[hh, 2] for hh in range(H)]
                new = {}
                for t in valid:
                    us = [u for u in valid if u <= t]
                    heads = [_naive_attn_row(qs[t][hh], [ks[u][hh] for u in us], [vs[u][hh] for u in us],
                                             1.0 / math.sqrt(hd)) for hh in range(H)]
                    a = Wd[p + "attention.dense.weight"] @ torch.cat(heads) + Wd[p + "attention.dense.bias"]
                    base = xs[t] if cfg["use_parallel_residual"] else xs[t] + a
                    h2 = ln(base, Wd[p + "post_attention_layernorm.weight"], Wd[p + "post_attention_layernorm.bias"])
                    m = Wd[p + "mlp.dense_h_to_4h.weight"] @ h2 + Wd[p + "mlp.dense_h_to_4h.bias"]
                    m = Wd[p + "mlp.dense_4h_to_h.weight"] @ gelu(m) + Wd[p + "mlp.dense_4h_to_h.bias"]
                    new[t] = xs[t] + a + m
                xs = new
            for t in valid:
                out[b, t] = Wd["embed_out.weight"] @ ln(xs[t], Wd["gpt_neox.final_layer_norm.weight"],
                                                        Wd["gpt_neox.final_layer_norm.bias"])
        else:
            raise NotImplementedError(mt)
    return out


# --------------------------------------------------------------------------------------
# case definitions
# --------------------------------------------------------------------------------------

def gpt2_config(E=32, H=4, L=2, V=96, n_inner=None, tied=True, dtype="float32"):
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": V - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": V - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_embd": E,
        "n_head": H,
        "n_inner": n_inner,
        "n_layer": L,
        "n_positions": 64,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.53.0",
        "use_cache": True,
        "vocab_size": V,
    }


def llama_like_config(model_type, E, H, KV, L, V, I, theta, eps, tied, dtype="float32", **extra):
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[model_type]
    cfg = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": E // H,
        "hidden_act": "silu",
        "hidden_size": E,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "max_position_embeddings": 64,
        "model_type": model_type,
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "num_key_value_heads": KV,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.53.0",
        "use_cache": True,
        "vocab_size": V,
    }
    if model_type == "llama":
        cfg.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1})
    cfg.update(extra)
    return dict(sorted(cfg.items()))


def neox_config(E, H, L, V, I, rotary_pct, parallel):
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "classifier_dropout": 0.1,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_dropout": 0.0,
        "hidden_size": E,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 64,
        "model_type": "gpt_neox",
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "rope_scaling": None,
        "rotary_emb_base": 10000,
        "rotary_pct": rotary_pct,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.53.0",
        "use_cache": True,
        "use_parallel_residual": parallel,
        "vocab_size": V,
    }


CASES = [
    dict(name="gpt2_tied", seed=101, cfg=gpt2_config(E=32, H=4, L=2, V=96, tied=True), wdtype="F32",
         notes="GPT2LMHeadModel, tied lm_head (no lm_head.weight in file), n_inner null -> 4*n_embd, gelu_new."),
    dict(name="gpt2_untied", seed=102, cfg=gpt2_config(E=32, H=4, L=3, V=112, n_inner=80, tied=False), wdtype="F32",
         notes="GPT2LMHeadModel with its own lm_head.weight, tie_word_embeddings false, n_inner 80, 3 layers."),
    dict(name="llama_mha", seed=103,
         cfg=llama_like_config("llama", E=64, H=4, KV=4, L=2, V=128, I=96, theta=10000.0, eps=1e-5, tied=False),
         wdtype="F32", notes="LlamaForCausalLM, MHA (kv heads == heads), head_dim 16, untied lm_head."),
    dict(name="llama_gqa", seed=104,
         cfg=llama_like_config("llama", E=32, H=4, KV=2, L=2, V=96, I=88, theta=500000.0, eps=1e-6, tied=True),
         wdtype="F32", notes="LlamaForCausalLM, GQA 4q/2kv, rope_theta 500000, tied embeddings, rms_norm_eps 1e-6."),
    dict(name="mistral", seed=105,
         cfg=llama_like_config("mistral", E=32, H=4, KV=2, L=2, V=96, I=72, theta=10000.0, eps=1e-5, tied=False,
                               sliding_window=4),
         wdtype="F32", notes="MistralForCausalLM, GQA, sliding_window 4 < sequence length 10: key slot k visible to "
                             "query slot q iff q-4 < k <= q (and key not padded)."),
    dict(name="qwen2", seed=106,
         cfg=llama_like_config("qwen2", E=32, H=4, KV=2, L=2, V=96, I=80, theta=1000000.0, eps=1e-6, tied=True,
                               use_sliding_window=False, sliding_window=32, max_window_layers=2),
         wdtype="F32", notes="Qwen2ForCausalLM, q/k/v biases (o_proj has none), GQA, tied, use_sliding_window false."),
    dict(name="neox_parallel", seed=107, cfg=neox_config(E=64, H=4, L=2, V=96, I=128, rotary_pct=0.25, parallel=True),
         wdtype="F32", notes="GPTNeoXForCausalLM, parallel residual, rotary_pct 0.25 (4 of 16 head dims rotated)."),
    dict(name="neox_sequential", seed=108,
         cfg=neox_config(E=64, H=4, L=2, V=96, I=128, rotary_pct=0.5, parallel=False),
         wdtype="F32", notes="GPTNeoXForCausalLM, sequential residual, rotary_pct 0.5 (8 of 16 head dims rotated)."),
    dict(name="llama_f16", seed=109,
         cfg=llama_like_config("llama", E=32, H=4, KV=2, L=2, V=96, I=88, theta=500000.0, eps=1e-6, tied=True,
                               dtype="float16"),
         wdtype="F16", notes="Like llama_gqa but all weights stored F16; reference computed in float32 on the "
                             "F16-rounded values."),
    dict(name="gpt2_bf16", seed=110, cfg=gpt2_config(E=32, H=4, L=2, V=96, tied=True, dtype="bfloat16"),
         wdtype="BF16", notes="GPT-2 with BF16 weights; reference computed in float32 on the BF16-rounded values."),
    dict(name="llama_sharded", seed=111,
         cfg=llama_like_config("llama", E=32, H=4, KV=2, L=3, V=96, I=64, theta=10000.0, eps=1e-5, tied=False),
         wdtype="F32", shards=2,
         notes="LlamaForCausalLM (GQA, 3 layers, untied) split across model-00001-of-00002.safetensors and "
               "model-00002-of-00002.safetensors with model.safetensors.index.json."),
]


def make_weights(case):
    """Deterministic random weights (numpy legacy RandomState: stable across numpy versions)."""
    cfg = case["cfg"]
    rs = np.random.RandomState(case["seed"])

    def n(shape, std):
        return torch.from_numpy((rs.standard_normal(shape) * std).astype(np.float32))

    def norm_w(d):
        return torch.from_numpy((1.0 + 0.1 * rs.standard_normal(d)).astype(np.float32))

    W = {}
    mt = cfg["model_type"]
    tied = cfg["tie_word_embeddings"]
    # Tied heads read logits straight off the embedding matrix, so a large embedding makes the model echo its
    # last token forever; a smaller embedding and larger block outputs give non-degenerate greedy runs.
    emb_std = 0.15 if tied else 0.5
    og = 1.5 if tied else 0.8  # gain of the projections writing into the residual stream
    if mt == "gpt2":
        E, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
        I = cfg["n_inner"] or 4 * E
        W["transformer.wte.weight"] = n((V, E), emb_std)
        W["transformer.wpe.weight"] = n((cfg["n_positions"], E), 0.3)
        for i in range(L):
            p = f"transformer.h.{i}."
            W[p + "ln_1.weight"], W[p + "ln_1.bias"] = norm_w(E), n((E,), 0.05)
            W[p + "attn.c_attn.weight"] = n((E, 3 * E), 1.2 / math.sqrt(E))  # Conv1D: [in, out]
            W[p + "attn.c_attn.bias"] = n((3 * E,), 0.05)
            W[p + "attn.c_proj.weight"], W[p + "attn.c_proj.bias"] = n((E, E), og / math.sqrt(E)), n((E,), 0.05)
            W[p + "ln_2.weight"], W[p + "ln_2.bias"] = norm_w(E), n((E,), 0.05)
            W[p + "mlp.c_fc.weight"], W[p + "mlp.c_fc.bias"] = n((E, I), 1.0 / math.sqrt(E)), n((I,), 0.05)
            W[p + "mlp.c_proj.weight"], W[p + "mlp.c_proj.bias"] = n((I, E), og / math.sqrt(I)), n((E,), 0.05)
        W["transformer.ln_f.weight"], W["transformer.ln_f.bias"] = norm_w(E), n((E,), 0.05)
        if not cfg["tie_word_embeddings"]:
            W["lm_head.weight"] = n((V, E), 0.2)
    elif mt in ("llama", "mistral", "qwen2"):
        E, H, KV, L, V, I = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                             cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"])
        hd = E // H
        W["model.embed_tokens.weight"] = n((V, E), emb_std)
        for i in range(L):
            p = f"model.layers.{i}."
            W[p + "input_layernorm.weight"] = norm_w(E)
            W[p + "self_attn.q_proj.weight"] = n((H * hd, E), 1.2 / math.sqrt(E))  # nn.Linear: [out, in]
            W[p + "self_attn.k_proj.weight"] = n((KV * hd, E), 1.2 / math.sqrt(E))
            W[p + "self_attn.v_proj.weight"] = n((KV * hd, E), 1.0 / math.sqrt(E))
            if mt == "qwen2":
                W[p + "self_attn.q_proj.bias"] = n((H * hd,), 0.1)
                W[p + "self_attn.k_proj.bias"] = n((KV * hd,), 0.1)
                W[p + "self_attn.v_proj.bias"] = n((KV * hd,), 0.1)
            W[p + "self_attn.o_proj.weight"] = n((E, H * hd), og / math.sqrt(E))
            W[p + "post_attention_layernorm.weight"] = norm_w(E)
            W[p + "mlp.gate_proj.weight"] = n((I, E), 1.0 / math.sqrt(E))
            W[p + "mlp.up_proj.weight"] = n((I, E), 1.0 / math.sqrt(E))
            W[p + "mlp.down_proj.weight"] = n((E, I), og / math.sqrt(I))
        W["model.norm.weight"] = norm_w(E)
        if not cfg["tie_word_embeddings"]:
            W["lm_head.weight"] = n((V, E), 0.2)
    elif mt == "gpt_neox":
        E, L, V, I = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
        W["gpt_neox.embed_in.weight"] = n((V, E), 0.5)
        for i in range(L):
            p = f"gpt_neox.layers.{i}."
            W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"] = norm_w(E), n((E,), 0.05)
            W[p + "post_attention_layernorm.weight"] = norm_w(E)
            W[p + "post_attention_layernorm.bias"] = n((E,), 0.05)
            W[p + "attention.query_key_value.weight"] = n((3 * E, E), 1.2 / math.sqrt(E))
            W[p + "attention.query_key_value.bias"] = n((3 * E,), 0.05)
            W[p + "attention.dense.weight"], W[p + "attention.dense.bias"] = n((E, E), og / math.sqrt(E)), n((E,), 0.05)
            W[p + "mlp.dense_h_to_4h.weight"] = n((I, E), 1.0 / math.sqrt(E))
            W[p + "mlp.dense_h_to_4h.bias"] = n((I,), 0.05)
            W[p + "mlp.dense_4h_to_h.weight"] = n((E, I), og / math.sqrt(I))
            W[p + "mlp.dense_4h_to_h.bias"] = n((E,), 0.05)
        W["gpt_neox.final_layer_norm.weight"] = norm_w(E)
        W["gpt_neox.final_layer_norm.bias"] = n((E,), 0.05)
        W["embed_out.weight"] = n((V, E), 0.2)
    else:
        raise NotImplementedError(mt)
    return W, rs


def make_inputs(rs, V):
    ids = torch.from_numpy(rs.randint(1, V, size=(BATCH, SEQ_LEN)).astype(np.int64))
    prompt = rs.randint(1, V, size=(GREEDY_PROMPT_LEN,)).astype(np.int64).tolist()
    masks = {}
    masks["nopad"] = torch.ones(BATCH, SEQ_LEN, dtype=torch.int64)
    m = torch.ones(BATCH, SEQ_LEN, dtype=torch.int64)
    m[0, :3] = 0  # sequence 0: first 3 slots are left padding
    masks["leftpad"] = m
    m = torch.ones(BATCH, SEQ_LEN, dtype=torch.int64)
    m[1, -2:] = 0  # sequence 1: last 2 slots are right padding
    masks["rightpad"] = m
    scen = []
    for name in ("nopad", "leftpad", "rightpad"):
        mask = masks[name]
        sids = ids.clone()
        sids[mask == 0] = PAD_ID
        # position_ids = attention_mask.long().cumsum(-1) - 1, clamped at 0 (HF generate then masked_fill_(mask==0, 1);
        # the value at padded slots never reaches a valid output)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        scen.append((name, sids, mask, pos))
    return scen, prompt


def save_weights(case_dir, case, W):
    dt = case["wdtype"]
    shards = case.get("shards", 1)
    if shards == 1:
        write_safetensors(os.path.join(case_dir, "model.safetensors"), {k: (v, dt) for k, v in W.items()})
        return ["model.safetensors"]
    names = sorted(W)
    # split at a layer boundary-ish point: first half of the sorted names in shard 1
    cut = len(names) // 2
    parts = [names[:cut], names[cut:]]
    files, weight_map, total = [], {}, 0
    for si, part in enumerate(parts):
        fn = f"model-{si + 1:05d}-of-{shards:05d}.safetensors"
        total += write_safetensors(os.path.join(case_dir, fn), {k: (W[k], dt) for k in part})
        for k in part:
            weight_map[k] = fn
        files.append(fn)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(case_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return files + ["model.safetensors.index.json"]


def load_weights(case_dir, files):
    W = {}
    for fn in files:
        if fn.endswith(".safetensors"):
            W.update(read_safetensors(os.path.join(case_dir, fn)))
    return W


def unpadded_forward(fwd, W, cfg, ids_row, mask_row):
    """Forward of only the valid tokens of one row, batch 1, positions 0..n-1."""
    keep = [t for t in range(len(mask_row)) if mask_row[t] == 1]
    ids = ids_row[keep][None]
    m = torch.ones_like(ids)
    pos = torch.arange(len(keep))[None]
    return keep, fwd(W, cfg, ids, m, pos)[0]


def greedy(fwd, W, cfg, prompt):
    seq = list(prompt)
    toks, margins = [], []
    for _ in range(GREEDY_STEPS):
        ids = torch.tensor([seq])
        m = torch.ones_like(ids)
        pos = torch.arange(len(seq))[None]
        last = fwd(W, cfg, ids, m, pos)[0, -1]
        top2 = torch.topk(last, 2)
        nxt = int(torch.argmax(last))
        toks.append(nxt)
        margins.append(round(float(top2.values[0] - top2.values[1]), 6))
        seq.append(nxt)
    return toks, margins


def _compact_json(obj):
    """Indented JSON, but lists of numbers (ids, masks, rows of a matrix) kept on one line."""
    import re
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([-0-9.e,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def build_case(case, out_dir, verbose=True):
    cfg = case["cfg"]
    case_dir = os.path.join(out_dir, case["name"])
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    W0, rs = make_weights(case)
    scen, prompt = make_inputs(rs, cfg["vocab_size"])
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    files = save_weights(case_dir, case, W0)
    # compute from the weights *as read back from the file* (F16/BF16 rounding included)
    W = load_weights(case_dir, files)
    assert set(W) == set(W0)
    fwd = FORWARD[cfg["model_type"]]
    expected = {}
    scen_json = []
    ATTN_STATS.clear()
    for name, ids, mask, pos in scen:
        logits = fwd(W, cfg, ids, mask, pos)
        assert torch.isfinite(logits).all()
        expected[f"logits_{name}"] = (logits, "F32")
        expected[f"input_ids_{name}"] = (ids, "I32")
        expected[f"attention_mask_{name}"] = (mask, "I32")
        expected[f"position_ids_{name}"] = (pos, "I32")
        scen_json.append({"name": name, "input_ids": ids.tolist(), "attention_mask": mask.tolist(),
                          "position_ids": pos.tolist(), "logits_tensor": f"logits_{name}"})
        # self-check 1: valid logits of a padded batch == logits of the bare valid tokens alone
        for b in range(BATCH):
            keep, ref = unpadded_forward(fwd, W, cfg, ids[b], mask[b])
            d = (logits[b, keep] - ref).abs().max().item()
            assert d < 1e-5, f"{case['name']}/{name} row {b}: padding changes valid logits by {d}"
        # self-check 2 (gpt2 / llama family): naive float64 per-head loop formulation
        if cfg["model_type"] in ("gpt2", "llama", "mistral", "qwen2", "gpt_neox"):
            nv = naive_forward(W, cfg, ids, mask, pos)
            valid = mask.bool()
            d = (logits.double() - nv)[valid].abs().max().item()
            assert d < TOLERANCE / 10, f"{case['name']}/{name}: naive formulation differs by {d}"
            if verbose:
                print(f"  {case['name']}/{name}: vectorized fp32 vs naive fp64 max|d| = {d:.2e}")
    if cfg.get("sliding_window") and cfg["model_type"] == "mistral":
        # the window must actually change the result, else the case tests nothing
        nowin = dict(cfg, model_type="llama")
        name, ids, mask, pos = scen[0]
        d = (fwd(W, nowin, ids, mask, pos) - expected["logits_nopad"][0]).abs().max().item()
        assert d > 1e-2, f"sliding window has no effect ({d})"
        if verbose:
            print(f"  {case['name']}: dropping the sliding window changes logits by up to {d:.3f}")
    # attention sharpness diagnostic over nopad-scenario rows with >= 4 keys
    if verbose:
        maxp = []
        for p in ATTN_STATS:
            maxp.append(p[..., 4:, :].max(-1).values.mean().item())
        print(f"  {case['name']}: mean max attention prob (rows q>=4) = {np.mean(maxp):.3f}; "
              f"logit std = {expected['logits_nopad'][0].std().item():.3f}")
    write_safetensors(os.path.join(case_dir, "expected.safetensors"), expected)
    # Pick the first prompt (deterministic candidates) whose greedy run has no near-tie: every step's
    # top1 - top2 logit gap >= MIN_GREEDY_MARGIN, so the C# engine cannot flip a token within tolerance.
    prs = np.random.RandomState(case["seed"] + 7919)
    for attempt in range(200):
        toks, margins = greedy(fwd, W, cfg, prompt)
        if min(margins) >= MIN_GREEDY_MARGIN:
            break
        prompt = prs.randint(1, cfg["vocab_size"], size=(GREEDY_PROMPT_LEN,)).astype(np.int64).tolist()
    else:
        raise RuntimeError(f"{case['name']}: no greedy prompt without near-ties")
    golden = {
        "case": case["name"],
        "model_type": cfg["model_type"],
        "weights_dtype": case["wdtype"],
        "weight_files": files,
        "expected_file": "expected.safetensors",
        "scenarios": scen_json,
        "greedy": {"prompt": prompt, "tokens": toks, "top1_minus_top2_logit": margins,
                   "method": "full recomputation each step, batch 1, no padding, position_ids 0..n-1, no cache"},
        "tolerance": TOLERANCE,
        "compare": "max |logit - expected| over positions with attention_mask == 1 only; padded positions are "
                   "stored but undefined",
        "notes": case["notes"],
    }
    with open(os.path.join(case_dir, "golden.json"), "w") as f:
        f.write(_compact_json(golden) + "\n")
    if verbose:
        print(f"  {case['name']}: greedy {toks} (min margin {min(margins):.4f})")


# --------------------------------------------------------------------------------------
# --check: recompute into a temp dir, compare with committed files
# --------------------------------------------------------------------------------------

def _cmp_json(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys differ"]
        return [e for k in a for e in _cmp_json(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length differs"]
        return [e for i, (x, y) in enumerate(zip(a, b)) for e in _cmp_json(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        return [] if abs(a - b) <= 1e-4 else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def check(out_dir, cases):
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            build_case(case, tmp, verbose=False)
            new_dir, old_dir = os.path.join(tmp, case["name"]), os.path.join(out_dir, case["name"])
            if not os.path.isdir(old_dir):
                errors.append(f"{case['name']}: missing")
                continue
            new_files, old_files = sorted(os.listdir(new_dir)), sorted(os.listdir(old_dir))
            if new_files != old_files:
                errors.append(f"{case['name']}: file list {old_files} != {new_files}")
                continue
            worst = 0.0
            for fn in new_files:
                a, b = os.path.join(new_dir, fn), os.path.join(old_dir, fn)
                same = open(a, "rb").read() == open(b, "rb").read()
                if same:
                    continue
                if fn == "expected.safetensors":
                    ta, tb = read_safetensors(a), read_safetensors(b)
                    if set(ta) != set(tb):
                        errors.append(f"{case['name']}/{fn}: tensor names differ")
                        continue
                    for k in ta:
                        if k.startswith("logits_"):
                            worst = max(worst, (ta[k] - tb[k]).abs().max().item())
                        elif not torch.equal(ta[k], tb[k]):
                            errors.append(f"{case['name']}/{fn}:{k} differs")
                elif fn == "golden.json":
                    errs = _cmp_json(json.load(open(a)), json.load(open(b)))
                    errors += [f"{case['name']}/{fn}{e}" for e in errs]
                else:
                    errors.append(f"{case['name']}/{fn}: bytes differ")
            if worst > 1e-5:
                errors.append(f"{case['name']}: logits differ by {worst}")
            print(f"check {case['name']}: {'ok' if not any(e.startswith(case['name']) for e in errors) else 'FAIL'}"
                  f" (max logit drift {worst:.1e})")
    for e in errors:
        print("ERROR", e)
    return not errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--check", action="store_true", help="recompute and compare with the files under --out")
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.case or c["name"] in args.case]
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    if args.check:
        ok = check(args.out, cases)
        print("CHECK", "PASSED" if ok else "FAILED")
        sys.exit(0 if ok else 1)
    os.makedirs(args.out, exist_ok=True)
    for case in cases:
        print(f"case {case['name']}")
        build_case(case, args.out)
    total = 0
    for root, _, fs in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in fs)
    print(f"total size under {args.out}: {total} bytes")


if __name__ == "__main__":
    main()
