#!/usr/bin/env python3
"""Independent reference for Headwise's deepseek_v3 (MLA) family: tiny random DeepseekV3ForCausalLM checkpoints + logits.

Dense layers only (first_k_dense_replace = num_hidden_layers: the experts are configured but never used), as Headwise
supports them. The forward below is our own re-implementation of Hugging Face's modeling_deepseek_v3.py
(DeepseekV3Attention, DeepseekV3DecoderLayer, DeepseekV3MLP); comments quote the HF lines each step matches.
Everything else (safetensors I/O, inputs, padding checks, greedy runs, golden.json, --check) is make_goldens.py's.

Four cases cover: q_proj vs q_a_proj -> q_a_layernorm -> q_b_proj (q_lora_rank), rope_interleave true/false,
attention_bias true/false, tied/untied lm_head, v_head_dim smaller and larger than qk_head_dim, one and two shards.

Self-check: a second formulation, the absorbed one Headwise decodes with (float64; W_UK folded into the query, the
softmax taken over the latent + shared rotary key, W_UV applied after), must agree with the HF-shaped one to 1e-5.

Usage:
  /usr/bin/python3 dev/reference/make_deepseek_goldens.py --out tests/goldens          # (re)generate
  /usr/bin/python3 dev/reference/make_deepseek_goldens.py --out tests/goldens --check  # recompute + compare
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402

# DeepseekV3RMSNorm(self.q_lora_rank) / DeepseekV3RMSNorm(self.kv_lora_rank): built without eps, so the class default
LATENT_NORM_EPS = 1e-6


def dims(cfg):
    return (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["q_lora_rank"],
            cfg["kv_lora_rank"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"])


def lin(W, h, name):
    y = h @ W[name + ".weight"].t()  # nn.Linear weight is [out, in]
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def deinterleave(x):
    # apply_rotary_pos_emb_interleave: q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = x.shape
    return x.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)


def attention_inputs(W, cfg, p, h, pos):
    """The DeepseekV3Attention.forward lines up to the rotary embedding: q_pass, q_rot [B,H,T,*], the normalised latent
    [B,T,r], k_rot [B,1,T,R] (roped), and kv_b_proj's weight."""
    E, H, L, qr, r, nope, R, vd = dims(cfg)
    B, T = h.shape[:2]
    # if self.q_lora_rank is None: q_states = self.q_proj(hidden_states)
    # else: q_states = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
    if qr is None:
        q = lin(W, h, p + "self_attn.q_proj")
    else:
        q = lin(W, mg.rms_norm(lin(W, h, p + "self_attn.q_a_proj"), W[p + "self_attn.q_a_layernorm.weight"], LATENT_NORM_EPS),
                p + "self_attn.q_b_proj")
    # q_states = q_states.view(query_shape).transpose(1, 2), query_shape = (batch, seq, -1, self.qk_head_dim)
    q = q.view(B, T, H, nope + R).transpose(1, 2)
    # q_pass, q_rot = torch.split(q_states, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
    q_pass, q_rot = q.split([nope, R], dim=-1)
    # compressed_kv = self.kv_a_proj_with_mqa(hidden_states)
    # k_pass, k_rot = torch.split(compressed_kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
    ckv = lin(W, h, p + "self_attn.kv_a_proj_with_mqa")
    c, k_rot = ckv.split([r, R], dim=-1)
    c = mg.rms_norm(c, W[p + "self_attn.kv_a_layernorm.weight"], LATENT_NORM_EPS)
    # k_rot = k_rot.view(batch_size, 1, seq_length, self.qk_rope_head_dim)
    k_rot = k_rot.reshape(B, 1, T, R)
    # DeepseekV3RotaryEmbedding: config.head_dim = qk_rope_head_dim, so cos/sin are [B, T, R]
    cos, sin = mg.rope_cos_sin(pos, R, cfg["rope_theta"])
    if cfg["rope_interleave"]:
        q_rot, k_rot = deinterleave(q_rot), deinterleave(k_rot)
    # q_embed = (q * cos) + (rotate_half(q) * sin), likewise k
    q_rot, k_rot = mg.apply_rope(q_rot, cos, sin), mg.apply_rope(k_rot, cos, sin)
    return q_pass, q_rot, c, k_rot


def mlp_and_residual(W, cfg, p, x, attn_out):
    # hidden_states = residual + hidden_states
    x = x + attn_out
    h = mg.rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg["rms_norm_eps"])
    # DeepseekV3MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)), act_fn = silu
    return x + lin(W, F.silu(lin(W, h, p + "mlp.gate_proj")) * lin(W, h, p + "mlp.up_proj"), p + "mlp.down_proj")


def deepseek_forward(W, cfg, ids, mask, pos):
    """DeepseekV3ForCausalLM, dense layers, eager attention."""
    E, H, L, qr, r, nope, R, vd = dims(cfg)
    B, T = ids.shape
    allowed = mg.allowed_mask(mask)
    x = W["model.embed_tokens.weight"][ids]
    for i in range(L):
        p = f"model.layers.{i}."
        h = mg.rms_norm(x, W[p + "input_layernorm.weight"], cfg["rms_norm_eps"])
        q_pass, q_rot, c, k_rot = attention_inputs(W, cfg, p, h, pos)
        # k_pass = self.kv_b_proj(self.kv_a_layernorm(k_pass)).view(key_shape).transpose(1, 2)
        kv = lin(W, c, p + "self_attn.kv_b_proj").view(B, T, H, nope + vd).transpose(1, 2)
        # k_pass, value_states = torch.split(k_pass, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        k_pass, v = kv.split([nope, vd], dim=-1)
        # k_rot = k_rot.expand(*k_pass.shape[:-1], -1): one rotary key shared by every head
        k_rot = k_rot.expand(B, H, T, R)
        q = torch.cat((q_pass, q_rot), dim=-1)
        k = torch.cat((k_pass, k_rot), dim=-1)
        # self.scaling = self.qk_head_dim ** (-0.5)   (no rope_scaling: no mscale)
        a = mg.attend(q, k, v, allowed, (nope + R) ** -0.5)
        # attn_output.reshape(batch_size, seq_length, -1); self.o_proj(attn_output)
        a = a.transpose(1, 2).reshape(B, T, H * vd)
        x = mlp_and_residual(W, cfg, p, x, lin(W, a, p + "self_attn.o_proj"))
    x = mg.rms_norm(x, W["model.norm.weight"], cfg["rms_norm_eps"])
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.t()


def absorbed_forward(W, cfg, ids, mask, pos):
    """The same model in float64, attention in the absorbed form: score_h(t, s) = (q_pass_h(t)·W_UK_h)·c(s) + q_rot_h(t)·k_rot(s),
    z_h(t) = (Σ_s p_h(t, s) c(s))·W_UV_hᵀ, with kv_b_proj's rows per head = [W_UK_h (nope, r) | W_UV_h (v, r)]."""
    Wd = {k: v.double() for k, v in W.items()}
    E, H, L, qr, r, nope, R, vd = dims(cfg)
    B, T = ids.shape
    allowed = mg.allowed_mask(mask)
    x = Wd["model.embed_tokens.weight"][ids]
    for i in range(L):
        p = f"model.layers.{i}."
        h = mg.rms_norm(x, Wd[p + "input_layernorm.weight"], cfg["rms_norm_eps"])
        q_pass, q_rot, c, k_rot = attention_inputs(Wd, cfg, p, h, pos.double())
        wkv = Wd[p + "self_attn.kv_b_proj.weight"].view(H, nope + vd, r)
        w_uk, w_uv = wkv[:, :nope], wkv[:, nope:]
        q_lat = torch.einsum("bhtn,hnr->bhtr", q_pass, w_uk)
        scores = (torch.einsum("bhtr,bsr->bhts", q_lat, c) + torch.einsum("bhtd,bsd->bhts", q_rot, k_rot[:, 0])) * (nope + R) ** -0.5
        scores = scores.masked_fill(~allowed, -math.inf)
        prob = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        z = torch.einsum("bhtr,hvr->bhtv", torch.einsum("bhts,bsr->bhtr", prob, c), w_uv)
        x = mlp_and_residual(Wd, cfg, p, x, lin(Wd, z.transpose(1, 2).reshape(B, T, H * vd), p + "self_attn.o_proj"))
    x = mg.rms_norm(x, Wd["model.norm.weight"], cfg["rms_norm_eps"])
    return x @ Wd.get("lm_head.weight", Wd["model.embed_tokens.weight"]).t()


def deepseek_config(E, H, L, V, I, q_lora_rank, kv_lora_rank, nope, rope, v, interleave, bias, tied):
    return dict(sorted({
        "architectures": ["DeepseekV3ForCausalLM"],
        "attention_bias": bias,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "first_k_dense_replace": L,  # every layer dense: the experts below are configured but never built
        "hidden_act": "silu",
        "hidden_size": E,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "kv_lora_rank": kv_lora_rank,
        "max_position_embeddings": 64,
        "model_type": "deepseek_v3",
        "moe_intermediate_size": 16,
        "n_group": 2,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": H,
        "num_experts_per_tok": 2,
        "num_hidden_layers": L,
        "num_key_value_heads": H,
        "q_lora_rank": q_lora_rank,
        "qk_nope_head_dim": nope,
        "qk_rope_head_dim": rope,
        "rms_norm_eps": 1e-6,
        "rope_interleave": interleave,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "routed_scaling_factor": 2.5,
        "tie_word_embeddings": tied,
        "topk_group": 1,
        "torch_dtype": "float32",
        "transformers_version": "4.53.0",
        "use_cache": True,
        "v_head_dim": v,
        "vocab_size": V,
    }.items()))


CASES = [
    dict(name="deepseek_v3_qlora", seed=201, wdtype="F32",
         cfg=deepseek_config(E=32, H=4, L=2, V=96, I=64, q_lora_rank=16, kv_lora_rank=12, nope=8, rope=4, v=6,
                             interleave=True, bias=False, tied=False),
         notes="DeepseekV3ForCausalLM, q_lora_rank 16 (q_a_proj -> q_a_layernorm -> q_b_proj), kv_lora_rank 12, "
               "qk head 8+4, v_head_dim 6 < qk_head_dim, rope_interleave true, no biases, untied lm_head."),
    dict(name="deepseek_v3_noqlora", seed=202, wdtype="F32",
         cfg=deepseek_config(E=32, H=4, L=2, V=96, I=64, q_lora_rank=None, kv_lora_rank=12, nope=8, rope=4, v=8,
                             interleave=False, bias=True, tied=True),
         notes="DeepseekV3ForCausalLM, q_proj (q_lora_rank null), rope_interleave false (rotate-half), attention_bias "
               "true (kv_a_proj_with_mqa and o_proj biases; q_proj has none in HF), tied embeddings."),
    dict(name="deepseek_v3_bias", seed=203, wdtype="F32",
         cfg=deepseek_config(E=32, H=4, L=2, V=96, I=72, q_lora_rank=12, kv_lora_rank=10, nope=6, rope=6, v=8,
                             interleave=True, bias=True, tied=True),
         notes="DeepseekV3ForCausalLM, q_lora_rank 12 with attention_bias true (q_a_proj, kv_a_proj_with_mqa, o_proj "
               "biases), rope_interleave true, rotary 6 of a 12-wide qk head, tied."),
    dict(name="deepseek_v3_sharded", seed=204, wdtype="F32", shards=2,
         cfg=deepseek_config(E=32, H=4, L=3, V=96, I=64, q_lora_rank=None, kv_lora_rank=8, nope=4, rope=4, v=12,
                             interleave=False, bias=False, tied=False),
         notes="DeepseekV3ForCausalLM, 3 layers, q_proj, v_head_dim 12 > qk_head_dim 8, rope_interleave false, untied, "
               "split across two safetensors shards with model.safetensors.index.json."),
]


def deepseek_weights(case):
    """Deterministic random weights, scaled as make_goldens.py scales the Llama family's."""
    cfg = case["cfg"]
    rs = np.random.RandomState(case["seed"])

    def n(shape, std):
        return torch.from_numpy((rs.standard_normal(shape) * std).astype(np.float32))

    def norm_w(d):
        return torch.from_numpy((1.0 + 0.1 * rs.standard_normal(d)).astype(np.float32))

    E, H, L, qr, r, nope, R, vd = dims(cfg)
    V, I, bias, tied = cfg["vocab_size"], cfg["intermediate_size"], cfg["attention_bias"], cfg["tie_word_embeddings"]
    emb_std, og = (0.15, 1.5) if tied else (0.5, 0.8)
    W = {"model.embed_tokens.weight": n((V, E), emb_std)}
    for i in range(L):
        p = f"model.layers.{i}.self_attn."
        W[f"model.layers.{i}.input_layernorm.weight"] = norm_w(E)
        if qr is None:
            W[p + "q_proj.weight"] = n((H * (nope + R), E), 1.2 / math.sqrt(E))  # bias=False whatever attention_bias says
        else:
            W[p + "q_a_proj.weight"] = n((qr, E), 1.0 / math.sqrt(E))
            if bias:
                W[p + "q_a_proj.bias"] = n((qr,), 0.05)
            W[p + "q_a_layernorm.weight"] = norm_w(qr)
            W[p + "q_b_proj.weight"] = n((H * (nope + R), qr), 1.2 / math.sqrt(qr))
        W[p + "kv_a_proj_with_mqa.weight"] = n((r + R, E), 1.2 / math.sqrt(E))
        if bias:
            W[p + "kv_a_proj_with_mqa.bias"] = n((r + R,), 0.05)
        W[p + "kv_a_layernorm.weight"] = norm_w(r)
        W[p + "kv_b_proj.weight"] = n((H * (nope + vd), r), 1.2 / math.sqrt(r))
        W[p + "o_proj.weight"] = n((E, H * vd), og / math.sqrt(H * vd))
        if bias:
            W[p + "o_proj.bias"] = n((E,), 0.05)
        m = f"model.layers.{i}."
        W[m + "post_attention_layernorm.weight"] = norm_w(E)
        W[m + "mlp.gate_proj.weight"] = n((I, E), 1.0 / math.sqrt(E))
        W[m + "mlp.up_proj.weight"] = n((I, E), 1.0 / math.sqrt(E))
        W[m + "mlp.down_proj.weight"] = n((E, I), og / math.sqrt(I))
    W["model.norm.weight"] = norm_w(E)
    if not tied:
        W["lm_head.weight"] = n((V, E), 0.2)
    return W, rs


def self_check(case, out_dir):
    """The absorbed float64 formulation against the logits just written (valid positions only)."""
    case_dir = os.path.join(out_dir, case["name"])
    files = [f for f in os.listdir(case_dir) if f.startswith("model") and f.endswith(".safetensors")]
    W = mg.load_weights(case_dir, files)
    expected = mg.read_safetensors(os.path.join(case_dir, "expected.safetensors"))
    worst = 0.0
    for name in ("nopad", "leftpad", "rightpad"):
        ids, mask, pos = (expected[f"{t}_{name}"] for t in ("input_ids", "attention_mask", "position_ids"))
        got = absorbed_forward(W, case["cfg"], ids, mask, pos)
        worst = max(worst, (got - expected[f"logits_{name}"].double())[mask.bool()].abs().max().item())
    assert worst < mg.TOLERANCE / 10, f"{case['name']}: absorbed formulation differs by {worst}"
    print(f"  {case['name']}: HF-shaped fp32 vs absorbed fp64 max|d| = {worst:.2e}")


# make_goldens.py's driver, taught this family: build_case looks both up by model type at call time
mg.FORWARD["deepseek_v3"] = deepseek_forward
_other_weights = mg.make_weights
mg.make_weights = lambda case: deepseek_weights(case) if case["cfg"]["model_type"] == "deepseek_v3" else _other_weights(case)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--check", action="store_true", help="recompute and compare with the files under --out")
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.case or c["name"] in args.case]
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    if args.check:
        ok = mg.check(args.out, cases)
        print("CHECK", "PASSED" if ok else "FAILED")
        sys.exit(0 if ok else 1)
    os.makedirs(args.out, exist_ok=True)
    for case in cases:
        print(f"case {case['name']}")
        mg.build_case(case, args.out)
        self_check(case, args.out)


if __name__ == "__main__":
    main()
