using System.Numerics.Tensors;
using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

/// <summary>
/// DeepSeek-V3 (HF <c>DeepseekV3ForCausalLM</c>), dense layers: multi-head latent attention (MLA) — every head's key and value
/// are decompressed from one normalised latent per token, plus one rotary key shared by all heads — RMSNorm, SwiGLU MLP.
/// Letters: C = d_model, NH = heads, QR = q_lora_rank, R = kv_lora_rank, NOPE = qk_nope_head_dim, ROPE = qk_rope_head_dim,
/// QK = NOPE + ROPE (query/key head width), HD = v_head_dim (value head width: hook_v, hook_z), F = d_mlp, V = vocabulary.
///
/// The KV cache holds per token and layer only the row [k_rot (ROPE, roped) | latent (R, normalised)]. Prefill runs the
/// decompressed form, as HF does: per head k = [W_UK·latent | k_rot], v = W_UV·latent. Decode runs the absorbed form on the
/// cache itself: W_UK folded into the query, q' = [q_rot | q_nope·W_UK] against the cached rows (one shared "kv head" of
/// ROPE + R), then W_UV applied to the attention-weighted latent — the same numbers, without decompressing the past.
/// Weight-only analyses have no exact W_K/W_V here (the latent passes through kv_a_layernorm): they refuse (<see cref="GetAttentionWeights"/>).
/// </summary>
public sealed class DeepseekV3 : TransformerModel
{
    // DeepseekV3RMSNorm(config.q_lora_rank) and DeepseekV3RMSNorm(self.kv_lora_rank) are built without eps: the class default
    private const float LatentNormEps = 1e-6f;

    private readonly Weight _embed;  // (V, C)
    private readonly BlockWeights[] _blocks;
    private readonly Weight _norm;   // (C)
    private readonly Weight? _normB; // (C) model.norm.bias: LayerNorm, Headwise's layout of a GPT-2/GPT-NeoX source
    private readonly Weight? _positions; // (P, C) model.embed_positions: a GPT-2 source's learned positions (no rotary key)
    private readonly Weight _lmHead; // (V, C): embed_tokens when tied
    private readonly int NH, QR, R, NOPE, ROPE, QK, HD, CacheRow;
    private readonly float _scale; // self.scaling = qk_head_dim^-½, or a converted model's own (headwise_mla.attention_scale)

    private sealed record BlockWeights(
        Weight AttnNorm,                 // input_layernorm: (C)
        Weight? Wq, Weight? Bq,          // q_proj: (NH·QK, C) when q_lora_rank is null; (NH·QK) bias only in Headwise's layout
        Weight? WqA, Weight? BqA,        // q_a_proj: (QR, C), (QR) with attention_bias
        Weight? QNorm,                   // q_a_layernorm: (QR)
        Weight? WqB,                     // q_b_proj: (NH·QK, QR), no bias
        Weight WkvA, Weight? BkvA,       // kv_a_proj_with_mqa: (R + ROPE, C), (R + ROPE) with attention_bias
        Weight? KvNorm,                  // kv_a_layernorm: (R); none in Headwise's layout with headwise_mla.latent_norm false
        Weight WkvB,                     // kv_b_proj: (NH·(NOPE + HD), R), no bias; head h's rows: [W_UK[h] (NOPE, R) | W_UV[h] (HD, R)]
        Weight Wo, Weight? Bo,           // o_proj: (C, NH·HD), (C) with attention_bias
        Weight MlpNorm,                  // post_attention_layernorm: (C)
        Weight? Gate, Weight Up, Weight Down, // (F, C), (F, C), (C, F); no gate in a GPT-2/GPT-NeoX source's MLP
                                              // Headwise's layout of a GPT-2/GPT-NeoX source only: LayerNorm biases (C), MLP biases (F) (F) (C)
        Weight? AttnNormB, Weight? MlpNormB, Weight? GateB, Weight? UpB, Weight? DownB);

    public DeepseekV3(ModelConfig config, WeightSet w) : base(config, w)
    {
        var m = config.Mla ?? throw new ModelFormatException($"{w.Source}: a deepseek_v3 model needs its MLA widths (kv_lora_rank, qk_*_head_dim)");
        int C = config.DModel, V = config.VocabSize, F = config.DMlp;
        (NH, QR, R, NOPE, ROPE, QK, HD) = (config.NHeads, m.QLoraRank, m.KvLoraRank, m.QkNopeHeadDim, m.QkRopeHeadDim, m.QkHeadDim, config.DHead);
        CacheRow = ROPE + R;
        var hw = m.Headwise;
        _scale = hw?.AttentionScale ?? 1f / MathF.Sqrt(QK);
        _embed = w.Get("model.embed_tokens.weight", V, C);
        _blocks = new BlockWeights[config.NLayers];
        for (int l = 0; l < config.NLayers; l++)
        {
            string b = $"model.layers.{l}.", a = b + "self_attn.";
            bool lora = QR > 0, ln = config.Norm == NormKind.LayerNorm, mlpBias = config.MlpBias;
            _blocks[l] = new BlockWeights(
                w.Get(b + "input_layernorm.weight", C),
                lora ? null : w.Get(a + "q_proj.weight", NH * QK, C), !lora && hw?.QueryBias == true ? w.Get(a + "q_proj.bias", NH * QK) : null,
                lora ? w.Get(a + "q_a_proj.weight", QR, C) : null, lora && config.QkvBias ? w.Get(a + "q_a_proj.bias", QR) : null,
                lora ? w.Get(a + "q_a_layernorm.weight", QR) : null,
                lora ? w.Get(a + "q_b_proj.weight", NH * QK, QR) : null,
                w.Get(a + "kv_a_proj_with_mqa.weight", R + ROPE, C), config.QkvBias ? w.Get(a + "kv_a_proj_with_mqa.bias", R + ROPE) : null,
                hw?.LatentNorm == false ? null : w.Get(a + "kv_a_layernorm.weight", R),
                w.Get(a + "kv_b_proj.weight", NH * (NOPE + HD), R),
                w.Get(a + "o_proj.weight", C, NH * HD), config.OutputBias ? w.Get(a + "o_proj.bias", C) : null,
                w.Get(b + "post_attention_layernorm.weight", C),
                config.GatedMlp ? w.Get(b + "mlp.gate_proj.weight", F, C) : null, w.Get(b + "mlp.up_proj.weight", F, C), w.Get(b + "mlp.down_proj.weight", C, F),
                ln ? w.Get(b + "input_layernorm.bias", C) : null, ln ? w.Get(b + "post_attention_layernorm.bias", C) : null,
                config.GatedMlp && mlpBias ? w.Get(b + "mlp.gate_proj.bias", F) : null,
                mlpBias ? w.Get(b + "mlp.up_proj.bias", F) : null, mlpBias ? w.Get(b + "mlp.down_proj.bias", C) : null);
        }
        _absorbedQuery = new FoldedQuery?[config.NLayers];
        _absorbedOutput = new Weight?[config.NLayers];
        _norm = w.Get("model.norm.weight", C);
        _normB = config.Norm == NormKind.LayerNorm ? w.Get("model.norm.bias", C) : null;
        _positions = config.Positions == PositionKind.Learned ? w.Get("model.embed_positions.weight", config.MaxPositions, C) : null;
        _lmHead = config.TiedEmbeddings ? _embed : w.Get("lm_head.weight", V, C);
    }

    // the cache row per token and layer: [k_rot (ROPE) | latent (R)]; no value rows
    protected override int CachedKeyFloats => CacheRow;

    protected override int CachedValueFloats => 0;

    // inputs_embeds = self.embed_tokens(input_ids) (+ a GPT-2 source's position_embeds)
    protected override void Embed()
    {
        EmbedTokens(_embed);
        if (_positions is not null)
        {
            EmbedPositions(_positions);
        }
    }

    protected override (Weight W, WeightLayout Layout) OutputProjection(int layer) => (_blocks[layer].Wo, WeightLayout.OutIn);

    protected override void Block(int l)
    {
        int N = Step.N, C = Config.DModel;
        HookResid(l, HookKind.ResidPre, S.X);

        // residual = hidden_states; hidden_states = self.input_layernorm(hidden_states)
        var blk = _blocks[l];
        Norm(l, HookKind.Ln1Scale, S.X, blk.AttnNorm, blk.AttnNormB, S.XNorm);

        // hidden_states, _ = self.self_attn(hidden_states, ...)
        SelfAttention(l);

        if (Config.ParallelResidual)
        {
            // a GPT-NeoX source's parallel residual: x + attn(ln1(x)) + mlp(ln2(x))
            Norm(l, HookKind.Ln2Scale, S.X, blk.MlpNorm, blk.MlpNormB, S.XNorm);
            Mlp(l, blk, S.Tmp2);
            Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
            Add(S.X.AsSpan(0, N * C), S.Tmp2.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
            HookResid(l, HookKind.ResidPost, S.X);
            return;
        }

        // hidden_states = residual + hidden_states
        Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
        HookResid(l, HookKind.ResidMid, S.X);
        MlpSublayer(l);
    }

    // DeepseekV3Attention.forward, from the normed residual S.XNorm to the sublayer output in S.Tmp
    private void SelfAttention(int l)
    {
        int B = Step.B, T = Step.T, N = Step.N, C = Config.DModel, past = Step.PastLen;
        var blk = _blocks[l];
        EnsureMlaRows(N, past + T);

        // a decode step whose per-head q/k/v nothing watches runs the absorbed form on the latent cache
        bool perHeadKeysWatched = Hooked(l, HookKind.Q) || Hooked(l, HookKind.K) || Hooked(l, HookKind.V)
            || Hooked(l, HookKind.RotQ) || Hooked(l, HookKind.RotK);
        bool absorbed = past > 0 && !perHeadKeysWatched;

        // q_states = self.q_proj(hidden_states)  — or, with q_lora_rank:
        // q_states = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
        float[] qIn = S.XNorm;
        int qInWidth = C;
        if (blk.Wq is null)
        {
            Linear(S.XNorm, C, blk.WqA!, blk.BqA, _qLatent, QR, WeightLayout.OutIn);
            RmsNorm(_qLatent.AsSpan(0, N * QR), blk.QNorm!.Span, _qLatent.AsSpan(0, N * QR), default, N, QR, LatentNormEps);
            Hook(l, HookKind.QLatent, _qLatent, B, T, QR);
            (qIn, qInWidth) = (_qLatent, QR);
        }
        bool foldedQuery = absorbed && FoldsQuery;
        if (foldedQuery)
        {
            // the absorbed query projection (W_UK folded in once): straight to [q_rot | q_nope·W_UK] per head
            FoldedQueryProjection(l, qIn, qInWidth);
        }
        else
        {
            Linear(qIn, qInWidth, blk.Wq ?? blk.WqB!, blk.Bq, _q, NH * QK, WeightLayout.OutIn);
        }
        // q_states.view(batch, seq, -1, self.qk_head_dim): per head [q_pass (NOPE) | q_rot (ROPE)]

        // compressed_kv = self.kv_a_proj_with_mqa(hidden_states)
        // k_pass, k_rot = torch.split(compressed_kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1); self.kv_a_layernorm(k_pass)
        Linear(S.XNorm, C, blk.WkvA, blk.BkvA, _ckv, R + ROPE, WeightLayout.OutIn);
        for (int n = 0; n < N; n++)
        {
            if (blk.KvNorm is null)
            {
                _ckv.AsSpan(n * (R + ROPE), R).CopyTo(_latent.AsSpan(n * R, R)); // a converted model's latent is used as it is
            }
            else
            {
                RmsNorm(_ckv.AsSpan(n * (R + ROPE), R), blk.KvNorm.Span, _latent.AsSpan(n * R, R), default, 1, R, LatentNormEps);
            }
        }
        Hook(l, HookKind.KvLatent, _latent, B, T, R);

        // the cache keeps only [k_rot | latent] per token; k_rot is roped in place there (one rotary "head" of the row)
        var cache = LayerKeyCache(l);
        int cap = CacheCapacity;
        var pos = Step.Positions.AsSpan(0, N);
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < T; t++)
            {
                int n = b * T + t;
                var row = cache.AsSpan(((b * cap) + past + t) * CacheRow, CacheRow);
                _ckv.AsSpan(n * (R + ROPE) + R, ROPE).CopyTo(row);
                _latent.AsSpan(n * R, R).CopyTo(row[ROPE..]);
            }
            RotateHeads(cache.AsSpan(((b * cap) + past) * CacheRow, T * CacheRow), pos.Slice(b * T, T), T, 1, CacheRow);
        }

        // self.scaling = self.qk_head_dim ** (-0.5)
        float scale = _scale;
        if (absorbed && AbsorbedAttention(l, blk, scale, foldedQuery))
        {
            // attn_output = o_proj(z) with W_UV folded into o_proj: the weighted latents (N, NH·R) straight to (N, C)
            Linear(_zAbs, NH * R, AbsorbedOutput(l), blk.Bo, S.Tmp, C, WeightLayout.OutIn);
            HookResid(l, HookKind.AttnOut, S.Tmp);
            return;
        }
        if (!absorbed)
        {
            DecompressedAttention(l, blk, scale);
        }

        // attn_output = self.o_proj(attn_output.reshape(batch_size, seq_length, -1)); z is (N, NH, HD)
        AttentionOutput(l, blk.Wo, blk.Bo, WeightLayout.OutIn, S.Tmp);
    }

    // HF's own form: k = [k_nope | k_rot] and v per head from kv_b_proj(latent); softmax(q·kᵀ·scale + mask)·v; z into S.Z.
    // Keys and values of cached positions are decompressed from the cache rows; the step's own are hooked first (hook_q/k/v
    // and hook_rot_q/k, which may rewrite them). q/k (QK) and v (HD) differ in width: both are zero-padded to P = max(QK, HD)
    // for the shared attention kernels (zeros add nothing to q·k, and z's padding is dropped).
    private void DecompressedAttention(int l, BlockWeights blk, float scale)
    {
        int B = Step.B, T = Step.T, N = Step.N, past = Step.PastLen, S_ = past + T, P = Math.Max(QK, HD), cap = CacheCapacity;
        var cache = LayerKeyCache(l);

        // k_pass = self.kv_b_proj(latent).view(..., -1, self.qk_nope_head_dim + self.v_head_dim)
        // k_pass, value_states = torch.split(k_pass, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        MatMul(_latent.AsSpan(0, N * R), blk.WkvB.Span, default, _kvb.AsSpan(0, N * NH * (NOPE + HD)), N, R, NH * (NOPE + HD), WeightLayout.OutIn);
        for (int n = 0; n < N; n++)
        {
            var kRot = _ckv.AsSpan(n * (R + ROPE) + R, ROPE); // before RoPE, as hook_k shows it
            for (int h = 0; h < NH; h++)
            {
                var kv = _kvb.AsSpan((n * NH + h) * (NOPE + HD), NOPE + HD);
                var k = _k.AsSpan((n * NH + h) * QK, QK);
                kv[..NOPE].CopyTo(k);
                kRot.CopyTo(k[NOPE..]);   // k_rot.expand(*k_pass.shape[:-1], -1): one rotary key for every head
                kv[NOPE..].CopyTo(_v.AsSpan((n * NH + h) * HD, HD));
            }
        }
        Hook(l, HookKind.Q, _q, B, T, NH, QK);   // [batch, pos, head, QK]
        Hook(l, HookKind.K, _k, B, T, NH, QK);   // [batch, pos, head, QK]
        Hook(l, HookKind.V, _v, B, T, NH, HD);   // [batch, pos, head, HD]

        // q_rot, k_rot = apply_rotary_pos_emb(q_rot, k_rot, cos, sin) — or _interleave, whose view/transpose de-interleaves
        // the pairs (2i, 2i+1) before rotating them: the engine rotates them where they stand (RopeLayout.Interleaved), which
        // changes no q·k; hook_rot_q/k keep the checkpoint's order. The rotary part sits after NOPE in each head: a view
        // shifted by NOPE (the buffers have NOPE floats of slack) makes it each "head"'s first ROPE floats.
        var pos = Step.Positions.AsSpan(0, N);
        RotateHeads(_q.AsSpan(NOPE, N * NH * QK), pos, N, NH, QK);
        RotateHeads(_k.AsSpan(NOPE, N * NH * QK), pos, N, NH, QK);
        Hook(l, HookKind.RotQ, _q, B, T, NH, QK);
        Hook(l, HookKind.RotK, _k, B, T, NH, QK);

        // per sequence: padded keys and values (S, NH, P) — cached positions decompressed from their rows, then this step's
        _qp.AsSpan(0, N * NH * P).Clear();
        _kp.AsSpan(0, B * S_ * NH * P).Clear();
        _vp.AsSpan(0, B * S_ * NH * P).Clear();
        for (int b = 0; b < B; b++)
        {
            if (past > 0)
            {
                for (int s = 0; s < past; s++)
                {
                    cache.AsSpan(((b * cap) + s) * CacheRow + ROPE, R).CopyTo(_pastLatent.AsSpan(s * R, R));
                }
                MatMul(_pastLatent.AsSpan(0, past * R), blk.WkvB.Span, default, _pastKvb.AsSpan(0, past * NH * (NOPE + HD)), past, R, NH * (NOPE + HD), WeightLayout.OutIn);
                for (int s = 0; s < past; s++)
                {
                    var kRot = cache.AsSpan(((b * cap) + s) * CacheRow, ROPE);
                    for (int h = 0; h < NH; h++)
                    {
                        var kv = _pastKvb.AsSpan((s * NH + h) * (NOPE + HD), NOPE + HD);
                        var kp = _kp.AsSpan((((b * S_) + s) * NH + h) * P, P);
                        kv[..NOPE].CopyTo(kp);
                        kRot.CopyTo(kp[NOPE..]);
                        kv[NOPE..].CopyTo(_vp.AsSpan((((b * S_) + s) * NH + h) * P, P));
                    }
                }
            }
            for (int t = 0; t < T; t++)
            {
                for (int h = 0; h < NH; h++)
                {
                    int n = b * T + t, dst = (((b * S_) + past + t) * NH + h) * P;
                    _k.AsSpan((n * NH + h) * QK, QK).CopyTo(_kp.AsSpan(dst, P));
                    _v.AsSpan((n * NH + h) * HD, HD).CopyTo(_vp.AsSpan(dst, P));
                    _q.AsSpan((n * NH + h) * QK, QK).CopyTo(_qp.AsSpan((n * NH + h) * P, P));
                }
            }
        }

        // attn_weights = softmax(query·keyᵀ·scaling + causal_mask); attn_output = attn_weights·value_states
        Attend(l, _qp, _kp, _vp, S_ * NH * P, _zp, NH, P, scale);
        for (int r = 0; r < N * NH; r++)
        {
            _zp.AsSpan(r * P, HD).CopyTo(S.Z.AsSpan(r * HD, HD));
        }
    }

    // The absorbed form on the cache rows [k_rot | latent]: q·k_h = q_nope·(W_UK[h]·c) + q_rot·k_rot = [q_rot | q_nope·W_UK[h]]·[k_rot | c],
    // so every head attends over the cached rows directly (one shared kv head of ROPE + R); the same rows serve as values and
    // z_h = (Σ_s p(s)·c(s))·W_UV[h]ᵀ. Unobserved, the latent kernel reads each cached row once for all heads
    // (Kernels.LatentAttention.cs); a step whose scores or pattern a hook observes, under a sparse policy or in a model whose
    // layers share patterns takes the shared attention path with the rows as one kv head (q/k/v hooks take the other form).
    // Returns true when it leaves the weighted latents (N, NH, R) in _zAbs for the o_proj with W_UV folded in (no z to
    // hook; see FoldsOutput), false when it wrote z (N, NH, HD) into S.Z.
    private bool AbsorbedAttention(int l, BlockWeights blk, float scale, bool foldedQuery)
    {
        int B = Step.B, T = Step.T, N = Step.N, past = Step.PastLen, S_ = past + T, W = CacheRow, cap = CacheCapacity;
        if (!foldedQuery)
        {
            // W_UK folded into the query per step: q_nope[h] (N, NOPE) · W_UK[h] (NOPE, R), stored (in, out) in kv_b_proj's rows
            var wkvb = blk.WkvB.Span;
            for (int h = 0; h < NH; h++)
            {
                for (int n = 0; n < N; n++)
                {
                    _q.AsSpan((n * NH + h) * QK, NOPE).CopyTo(_headIn.AsSpan(n * NOPE, NOPE));
                }
                MatMul(_headIn.AsSpan(0, N * NOPE), wkvb.Slice(h * (NOPE + HD) * R, NOPE * R), default, _headOut.AsSpan(0, N * R), N, NOPE, R, WeightLayout.InOut);
                for (int n = 0; n < N; n++)
                {
                    var qa = _qAbs.AsSpan((n * NH + h) * W, W);
                    _q.AsSpan((n * NH + h) * QK + NOPE, ROPE).CopyTo(qa);
                    _headOut.AsSpan(n * R, R).CopyTo(qa[ROPE..]);
                }
            }
        }
        // q_rot rotated where it stands: the first ROPE floats of each absorbed head
        RotateHeads(_qAbs.AsSpan(0, N * NH * W), Step.Positions.AsSpan(0, N), N, NH, W);

        var cache = LayerKeyCache(l);
        bool latentKernel = !Hooked(l, HookKind.AttnScores) && !Hooked(l, HookKind.Pattern) && SparseAttention is not { IsDense: false }
            && Sparsity.IsDense && Config.SharedAttention is null;
        if (latentKernel)
        {
            // z_latent (N, NH, R) = softmax(q_abs·rowsᵀ·scale + mask)·latents, per sequence
            for (int b = 0; b < B; b++)
            {
                LatentAttention(_qAbs.AsSpan(b * T * NH * W, T * NH * W), cache.AsSpan(b * cap * W, S_ * W), _zAbs.AsSpan(b * T * NH * R, T * NH * R),
                    T, S_, NH, W, ROPE, past, scale, KeyMask(b)[..S_], Config.SlidingWindow);
            }
            if (FoldsOutput && !Hooked(l, HookKind.Z) && !Hooked(l, HookKind.Result))
            {
                return true;
            }
            ValueUp(blk, R, 0);
        }
        else
        {
            Attend(l, _qAbs, cache, cache, cap * W, _zAbs, 1, W, scale);
            ValueUp(blk, W, ROPE);
        }
        return false;
    }

    // W_UV after attention: per head the weighted latent (N, R) · W_UV[h]ᵀ into S.Z (N, NH, HD); _zAbs holds the weighted
    // latents in rows of `stride` floats per head, the latent at `offset`. W_UV[h] (HD, R) is stored (out, in) in kv_b_proj.
    private void ValueUp(BlockWeights blk, int stride, int offset)
    {
        int N = Step.N;
        var wkvb = blk.WkvB.Span;
        for (int h = 0; h < NH; h++)
        {
            for (int n = 0; n < N; n++)
            {
                _zAbs.AsSpan((n * NH + h) * stride + offset, R).CopyTo(_headIn.AsSpan(n * R, R));
            }
            MatMul(_headIn.AsSpan(0, N * R), wkvb.Slice((h * (NOPE + HD) + NOPE) * R, HD * R), default, _headOut.AsSpan(0, N * HD), N, R, HD, WeightLayout.OutIn);
            for (int n = 0; n < N; n++)
            {
                _headOut.AsSpan(n * HD, HD).CopyTo(S.Z.AsSpan((n * NH + h) * HD, HD));
            }
        }
    }

    // Whether decode folds W_UK into the query projection once: the folded weight, NH·(ROPE + R) rows of q_proj's input width,
    // against what a step reads without it — q_proj's NH·QK rows and W_UK's NH·NOPE·R. Folding pays when R ≤ NOPE, about (a
    // converted model: NOPE = NKV·HD − ROPE); DeepSeek-V3 itself (R = 512 > NOPE = 128) folds per step instead.
    private bool FoldsQuery
    {
        get
        {
            long cin = QueryInputWidth + (_blocks[0].Bq is null ? 0 : 1);
            return (long)NH * CacheRow * cin <= ((long)NH * QK * cin) + ((long)NH * NOPE * R);
        }
    }

    // the last query projection's input width: C for q_proj, QR for q_b_proj
    private int QueryInputWidth => QR > 0 ? QR : Config.DModel;

    // Whether decode folds W_UV into o_proj: per head W_O[h]·W_UV[h] is (C, R), so the folded o_proj (C, NH·R) replaces o_proj
    // (C, NH·HD) and W_UV (NH·HD·R) — fewer bytes per step when C·R < C·HD + HD·R, i.e. R ≤ HD about (a converted model at a
    // small kv fraction). Taken only by the latent kernel's steps that no hook_z or hook_result watches (they need z_h).
    private bool FoldsOutput => (long)Config.DModel * R < ((long)Config.DModel * HD) + ((long)HD * R);

    /// <summary>Bytes of the absorbed query projections decode keeps beside the checkpoint's (one per layer, made on the first
    /// decode step): at most NH·(ROPE + R) rows of q_proj's (or q_b_proj's) width, W_UK folded in — less when the heads' query
    /// rows have low rank and are kept factored; 0 when decode folds per step (R well above NOPE: folding would enlarge it).</summary>
    public long AbsorbedQueryBytes => FoldsQuery
        ? (long)Config.NLayers * NH * CacheRow * (QueryInputWidth + (_blocks[0].Bq is null ? 0 : 1)) * sizeof(float) : 0;

    /// <summary>Bytes of the o_proj weights with W_UV folded in that decode makes on its first step: layers × C × NH·R × 4
    /// when that reads fewer bytes than o_proj and W_UV (R below about HD), else 0.</summary>
    public long AbsorbedOutputBytes => FoldsOutput ? (long)Config.NLayers * Config.DModel * NH * R * sizeof(float) : 0;

    // One layer's query projection with W_UK folded in (made on the first decode step). Whole: Proj (NH·W, Cin), per head
    // [q_rot | q_nope·W_UK[h]] (W = ROPE + R rows), and Bias (NH·W) likewise. Factored (Mix not null): Proj stacks per head a
    // basis of q_proj's rows (k_h, Cin), (Σ_h k_h, Cin) in all, and Mix holds head h's folded coefficients (W, k_h) at
    // offset W·Σ_{h'<h} k_h': the same folded rows as Mix_h·Basis_h, fewer bytes when k_h is small.
    private sealed record FoldedQuery(Weight Proj, Weight? Bias, float[]? Mix, int[] Ranks);

    private readonly FoldedQuery?[] _absorbedQuery;

    // layer l's per-head ranks of its factored folded query (tests), or null while it is not made or kept whole
    internal int[]? FactoredQueryRanks(int layer) => _absorbedQuery[layer] is { Mix: not null } f ? f.Ranks : null;

    private readonly Weight?[] _absorbedOutput;
    private bool _queryFullRank; // a layer's query rows did not factor: the model's other layers are not tried either

    // q_abs (N, NH, W) from the last query projection's input (N, Cin); factored: the bases first (N, Σk), then per head
    // (N, k_h) · Mix_hᵀ (k_h, W) + the head's bias
    private void FoldedQueryProjection(int l, float[] qIn, int qInWidth)
    {
        var f = AbsorbedQuery(l);
        int N = Step.N, W = CacheRow;
        if (f.Mix is null)
        {
            Linear(qIn, qInWidth, f.Proj, f.Bias, _qAbs, NH * W, WeightLayout.OutIn);
            return;
        }
        int K = f.Proj.Shape[0];
        Linear(qIn, qInWidth, f.Proj, null, _qLow, K, WeightLayout.OutIn);
        var bias = f.Bias is null ? default : f.Bias.Span;
        for (int h = 0, off = 0; h < NH; off += f.Ranks[h], h++)
        {
            int k = f.Ranks[h];
            for (int n = 0; n < N; n++)
            {
                _qLow.AsSpan(n * K + off, k).CopyTo(_headIn.AsSpan(n * k, k));
            }
            MatMul(_headIn.AsSpan(0, N * k), f.Mix.AsSpan(off * W, k * W), bias.IsEmpty ? default : bias.Slice(h * W, W),
                _headOut.AsSpan(0, N * W), N, k, W, WeightLayout.OutIn);
            for (int n = 0; n < N; n++)
            {
                _headOut.AsSpan(n * W, W).CopyTo(_qAbs.AsSpan((n * NH + h) * W, W));
            }
        }
    }

    private FoldedQuery AbsorbedQuery(int l)
    {
        if (_absorbedQuery[l] is { } made)
        {
            return made;
        }
        var blk = _blocks[l];
        var wq = (blk.Wq ?? blk.WqB!).Span;
        var wkvb = blk.WkvB.Span;
        int cin = QueryInputWidth, W = CacheRow;
        // per head W_UK[h]ᵀ (R, NOPE), from kv_b_proj's rows (NOPE, R)
        var ukT = new float[NH * R * NOPE];
        for (int h = 0; h < NH; h++)
        {
            for (int d = 0; d < NOPE; d++)
            {
                for (int r = 0; r < R; r++)
                {
                    ukT[(h * R + r) * NOPE + d] = wkvb[(h * (NOPE + HD) + d) * R + r];
                }
            }
        }
        float[]? bias = blk.Bq is null ? null : new float[NH * W];
        for (int h = 0; bias is not null && h < NH; h++)
        {
            FoldHead(blk.Bq!.Span.Slice(h * QK, QK), 1, ukT.AsSpan(h * R * NOPE, R * NOPE), bias.AsSpan(h * W, W));
        }
        string name = $"model.layers.{l}.self_attn.{(QR > 0 ? "q_b_proj" : "q_proj")}.absorbed";
        var biasWeight = bias is null ? null : Weight.FromArray(name + ".bias", bias, NH * W);
        var factored = _queryFullRank ? null : FactoredQuery(wq, cin, ukT);
        FoldedQuery result;
        if (factored is { } f)
        {
            result = new FoldedQuery(Weight.FromArray(name + ".basis", f.Basis, f.Basis.Length / cin, cin), biasWeight, f.Mix, f.Ranks);
        }
        else
        {
            _queryFullRank = true;
            var folded = new float[NH * W * cin];
            for (int h = 0; h < NH; h++)
            {
                FoldHead(wq.Slice(h * QK * cin, QK * cin), cin, ukT.AsSpan(h * R * NOPE, R * NOPE), folded.AsSpan(h * W * cin, W * cin));
            }
            result = new FoldedQuery(Weight.FromArray(name, folded, NH * W, cin), biasWeight, null, []);
        }
        _absorbedQuery[l] = result;
        return result;
    }

    // One head's query rows (QK, width) [q_nope (NOPE) | q_rot (ROPE)] folded into (W, width) [q_rot | W_UK[h]ᵀ·q_nope]:
    // rows of q_proj (width Cin), of its factor (width k_h) or of its bias (width 1)
    private void FoldHead(ReadOnlySpan<float> rows, int width, ReadOnlySpan<float> ukT, Span<float> folded)
    {
        rows.Slice(NOPE * width, ROPE * width).CopyTo(folded);
        MatMul(ukT, rows[..(NOPE * width)], default, folded.Slice(ROPE * width, R * width), R, NOPE, width, WeightLayout.InOut);
    }

    // Per head, q_proj's rows (QK, Cin) = A_h (QK, k_h) · Basis_h (k_h, Cin), kept as Basis_h and A_h folded to (W, k_h), when
    // every head's rank k_h is low enough that k_h·Cin + W·k_h < W·Cin (fewer bytes than the folded rows). A converted model's
    // heads qualify: each head's QK query rows mix the source head's HD rows (TransMLA's rotation), so k_h ≤ HD. Null when a
    // head's rank is higher.
    private (float[] Basis, float[] Mix, int[] Ranks)? FactoredQuery(ReadOnlySpan<float> wq, int cin, float[] ukT)
    {
        int W = CacheRow, maxRank = (int)((((long)W * cin) - 1) / (cin + W));
        var heads = new (float[] Basis, float[] Mix)[NH];
        var ranks = new int[NH];
        for (int h = 0; h < NH; h++)
        {
            if (LowRankRows(wq.Slice(h * QK * cin, QK * cin), QK, cin, maxRank) is not { } f)
            {
                return null;
            }
            ranks[h] = f.Rank;
            var mix = new float[W * f.Rank];
            FoldHead(f.Coefficients, f.Rank, ukT.AsSpan(h * R * NOPE, R * NOPE), mix);
            heads[h] = (f.Basis, mix);
        }
        return ([.. heads.SelectMany(x => x.Basis)], [.. heads.SelectMany(x => x.Mix)], ranks);
    }

    // A row residual this far below its row's norm is float rounding, not a direction of its own (a converted model's query
    // rows are float32 mixes of the source's: their residuals sit near 1e-7)
    private const double RankTolerance = 1e-5;

    // rows (rows, cols) = Coefficients (rows, k) · Basis (k, cols) with orthonormal basis rows, by modified Gram–Schmidt in
    // double: a row is orthogonalised twice when it adds a direction (one pass loses orthogonality), once when the first pass
    // leaves only rounding (a row in the span); null as soon as the rank exceeds maxRank
    internal static (float[] Basis, float[] Coefficients, int Rank)? LowRankRows(ReadOnlySpan<float> m, int rows, int cols, int maxRank)
    {
        var basis = new double[(maxRank + 1) * cols];
        var coefficients = new double[rows * (maxRank + 1)];
        var v = new double[cols];
        int k = 0;
        for (int i = 0; i < rows; i++)
        {
            for (int c = 0; c < cols; c++)
            {
                v[c] = m[i * cols + c];
            }
            double norm = Math.Sqrt(TensorPrimitives.Dot<double>(v, v)), rest = norm;
            for (int pass = 0; pass < 2 && rest > RankTolerance * norm; pass++)
            {
                for (int j = 0; j < k; j++)
                {
                    var q = basis.AsSpan(j * cols, cols);
                    double dot = TensorPrimitives.Dot<double>(q, v);
                    coefficients[i * (maxRank + 1) + j] += dot;
                    TensorPrimitives.MultiplyAdd(q, -dot, v, v);
                }
                rest = Math.Sqrt(TensorPrimitives.Dot<double>(v, v));
            }
            if (rest <= RankTolerance * norm)
            {
                continue;
            }
            if (k == maxRank)
            {
                return null;
            }
            TensorPrimitives.Multiply(v, 1 / rest, basis.AsSpan(k * cols, cols));
            coefficients[i * (maxRank + 1) + k] = rest;
            k++;
        }
        var b = new float[k * cols];
        var a = new float[rows * k];
        for (int i = 0; i < k * cols; i++)
        {
            b[i] = (float)basis[i];
        }
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < k; j++)
            {
                a[i * k + j] = (float)coefficients[i * (maxRank + 1) + j];
            }
        }
        return (b, a, k);
    }

    // o_proj with W_UV folded in, made once per layer: per head W_O[h] (C, HD) · W_UV[h] (HD, R) into columns h·R of (C, NH·R)
    private Weight AbsorbedOutput(int l)
    {
        if (_absorbedOutput[l] is { } made)
        {
            return made;
        }
        var blk = _blocks[l];
        int C = Config.DModel;
        var wo = blk.Wo.Span;
        var wkvb = blk.WkvB.Span;
        var woHead = new float[C * HD];
        var part = new float[C * R];
        var folded = new float[C * NH * R];
        for (int h = 0; h < NH; h++)
        {
            for (int c = 0; c < C; c++)
            {
                wo.Slice(c * NH * HD + h * HD, HD).CopyTo(woHead.AsSpan(c * HD, HD));
            }
            // W_UV[h] (HD, R) is stored as it is used here, (in, out): kv_b_proj's rows h·(NOPE + HD) + NOPE …
            MatMul(woHead, wkvb.Slice((h * (NOPE + HD) + NOPE) * R, HD * R), default, part, C, HD, R, WeightLayout.InOut);
            for (int c = 0; c < C; c++)
            {
                part.AsSpan(c * R, R).CopyTo(folded.AsSpan(c * NH * R + h * R, R));
            }
        }
        var result = Weight.FromArray($"model.layers.{l}.self_attn.o_proj.absorbed", folded, C, NH * R);
        _absorbedOutput[l] = result;
        return result;
    }

    protected override void MlpSublayer(int l)
    {
        if (Config.ParallelResidual)
        {
            throw new InvalidOperationException("a parallel-residual block has no point between its attention and its MLP");
        }
        int N = Step.N, C = Config.DModel;
        var blk = _blocks[l];

        // residual = hidden_states; hidden_states = self.post_attention_layernorm(hidden_states)
        Norm(l, HookKind.Ln2Scale, S.X, blk.MlpNorm, blk.MlpNormB, S.XNorm);
        Mlp(l, blk, S.Tmp);

        // hidden_states = residual + hidden_states
        Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
        HookResid(l, HookKind.ResidPost, S.X);
    }

    // the MLP from S.XNorm into output
    private void Mlp(int l, BlockWeights blk, float[] output)
    {
        int C = Config.DModel, F = Config.DMlp;
        if (blk.Gate is not null)
        {
            // DeepseekV3MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)) (the product in gate_proj's store unless hooked)
            GatedLinear(l, S.XNorm, C, blk.Gate, blk.GateB, blk.Up, blk.UpB, S.Hidden, S.Hidden2, WeightLayout.OutIn);
        }
        else
        {
            // a GPT-2/GPT-NeoX source's MLP: down_proj(act(up_proj(x)))
            Linear(S.XNorm, C, blk.Up, blk.UpB, S.Hidden, F, WeightLayout.OutIn);
            Hook(l, HookKind.MlpPre, S.Hidden, Step.B, Step.T, F);
            Activate(S.Hidden);
            Hook(l, HookKind.MlpPost, S.Hidden, Step.B, Step.T, F);
        }
        Linear(S.Hidden, F, blk.Down, blk.DownB, output, C, WeightLayout.OutIn);
        HookResid(l, HookKind.MlpOut, output);
    }

    protected override void FinalNorm()
    {
        // hidden_states = self.norm(hidden_states)
        Norm(HookPoint.ModelLevel, HookKind.LnFinalScale, S.X, _norm, _normB, S.XNorm);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // MLA's own run state, grown with the step's rows N and positions S, never shrunk

    private int _rows;
    private float[] _q = [];          // (N, NH, QK) + NOPE floats of slack for the shifted RoPE view
    private float[] _qLatent = [];    // (N, QR)
    private float[] _ckv = [];        // (N, R + ROPE) kv_a_proj_with_mqa's output: [latent before its norm | k_rot before RoPE]
    private float[] _latent = [];     // (N, R) normalised latent
    private float[] _kvb = [];        // (N, NH, NOPE + HD) kv_b_proj's output
    private float[] _k = [];          // (N, NH, QK) + NOPE floats of slack
    private float[] _v = [];          // (N, NH, HD)
    private float[] _qp = [];         // (N, NH, P) zero-padded, P = max(QK, HD)
    private float[] _zp = [];         // (N, NH, P)
    private float[] _kp = [];         // (B, S, NH, P)
    private float[] _vp = [];         // (B, S, NH, P)
    private float[] _pastLatent = []; // (S, R)
    private float[] _pastKvb = [];    // (S, NH, NOPE + HD)
    private float[] _qAbs = [];       // (N, NH, ROPE + R) absorbed queries [q_rot | q_nope·W_UK]
    private float[] _qLow = [];       // (N, Σ_h k_h) a factored folded query's basis projections, ≤ (N, NH, QK)
    private float[] _zAbs = [];       // (N, NH, ROPE + R) attention-weighted cache rows, or (N, NH, R) latents from the latent kernel
    private float[] _headIn = [];     // (N, max(NOPE, R, QK))
    private float[] _headOut = [];    // (N, max(R, HD, ROPE + R))

    private void EnsureMlaRows(int N, int positions)
    {
        int P = Math.Max(QK, HD), B = Step.B;
        if (_rows < N)
        {
            _rows = N;
            _q = new float[(N * NH * QK) + NOPE];
            _qLatent = new float[N * Math.Max(QR, 1)];
            _ckv = new float[N * (R + ROPE)];
            _latent = new float[N * R];
            _kvb = new float[N * NH * (NOPE + HD)];
            _k = new float[(N * NH * QK) + NOPE];
            _v = new float[N * NH * HD];
            _qp = new float[N * NH * P];
            _zp = new float[N * NH * P];
            _qAbs = new float[N * NH * CacheRow];
            _zAbs = new float[N * NH * CacheRow];
            _qLow = new float[N * NH * QK];
            _headIn = new float[N * Math.Max(Math.Max(NOPE, R), QK)];
            _headOut = new float[N * Math.Max(Math.Max(R, HD), CacheRow)];
        }
        if (_kp.Length < B * positions * NH * P)
        {
            _kp = new float[B * positions * NH * P];
            _vp = new float[B * positions * NH * P];
            _pastLatent = new float[positions * R];
            _pastKvb = new float[positions * NH * (NOPE + HD)];
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The canonical weights: the MLP, norms and embeddings read as Llama's; attention has no canonical per-head form

    public override Weight TokenEmbedding => _embed;

    public override Weight? PositionEmbedding => _positions;

    public override (Weight W, Weight? Bias) Unembedding => (_lmHead, null);

    protected override (Weight W, Weight? Bias) NormTensors(int layer, HookKind site) => site switch
    {
        HookKind.Ln1Scale => (_blocks[layer].AttnNorm, _blocks[layer].AttnNormB),
        HookKind.Ln2Scale => (_blocks[layer].MlpNorm, _blocks[layer].MlpNormB),
        _ => (_norm, _normB),
    };

    /// <summary>Refuses: MLA's keys and values are W_UK·RMSNorm(x·W_DKV) and W_UV·RMSNorm(x·W_DKV), not x·W_K and x·W_V — the
    /// latent's norm sits between — so no exact W_Q/W_K/W_V (NH, C, HD) exist for weight-only analyses.</summary>
    public override AttentionWeights GetAttentionWeights(int layer)
    {
        RequireLayer(layer);
        throw new InvalidInputException(NoCanonicalAttention);
    }

    private const string NoCanonicalAttention = "deepseek_v3 (multi-head latent attention) has no exact per-head W_Q/W_K/W_V: keys and "
        + "values pass through kv_a_layernorm, an RMSNorm of the latent, so weight-only analyses (circuits, composition, weight edits, "
        + "canonical export) do not apply; the activation-based ones (heads, patterns, ablate, importance, patch) do";

    // W_in is up_proj and W_gate gate_proj, as TransformerLens names them: act(x·W_gate) ⊙ (x·W_in)
    public override MlpWeights GetMlpWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, F = Config.DMlp;
        return new MlpWeights(CanonicalLayout.Transposed(blk.Up.Span, F, C), blk.UpB?.ToArray(),
            blk.Gate is null ? null : CanonicalLayout.Transposed(blk.Gate.Span, F, C), blk.GateB?.ToArray(),
            CanonicalLayout.Transposed(blk.Down.Span, C, F), blk.DownB?.ToArray());
    }

    /// <summary>One MLA attention layer made by <c>convert mla</c> (Restructure/MlaConversion.cs), as the checkpoint stores it.</summary>
    /// <param name="Wq">q_proj: (NH·(NOPE + ROPE), C).</param>
    /// <param name="Bq">q_proj's bias (NH·(NOPE + ROPE)), Headwise's layout only, or null.</param>
    /// <param name="WkvA">kv_a_proj_with_mqa: (R + ROPE, C).</param>
    /// <param name="BkvA">its bias (R + ROPE) with attention_bias, or null.</param>
    /// <param name="KvNorm">kv_a_layernorm (R), or null in Headwise's layout (latent_norm false).</param>
    /// <param name="WkvB">kv_b_proj: (NH·(NOPE + HD), R).</param>
    /// <param name="Bo">o_proj's bias (C) with attention_bias, or null.</param>
    public sealed record MlaAttentionTensors(float[] Wq, float[]? Bq, float[] WkvA, float[]? BkvA, float[]? KvNorm, float[] WkvB, float[]? Bo);

    /// <summary>A deepseek_v3 checkpoint's tensors: the source model's embeddings, norms, MLPs and W_O under DeepSeek-V3's
    /// names (a Llama-family source's coincide with them), its q/k/v projections replaced by each layer's MLA tensors. A GPT-2
    /// or GPT-NeoX source adds what Headwise's layout holds beyond stock DeepSeek-V3 (headwise_mla: norm, mlp, positions):
    /// LayerNorm biases, MLP biases and no gate_proj, model.embed_positions.</summary>
    internal static List<(string Name, int[] Shape, float[] Data)> MlaCheckpointTensors(CanonicalWeights source, MlaAttentionTensors[] layers, int R, int ROPE, int NOPE)
    {
        var c = source.Config;
        int C = c.DModel, NH = c.NHeads, HD = c.DHead, QK = NOPE + ROPE, F = c.DMlp, V = c.VocabSize;
        var tensors = new List<(string Name, int[] Shape, float[] Data)>();
        void Add(string name, float[]? data, params int[] shape)
        {
            if (data is not null)
            {
                tensors.Add((name, shape, data));
            }
        }
        void Norm(string name, NormWeights n)
        {
            Add(name + ".weight", n.Weight, C);
            Add(name + ".bias", n.Bias, C);
        }
        // canonical (in, out) → nn.Linear (out, in)
        float[]? Linear(float[]? w, int inFeatures, int outFeatures) => w is null ? null : CanonicalLayout.Transposed(w, inFeatures, outFeatures);

        Add("model.embed_tokens.weight", source.TokenEmbedding, V, C);
        Add("model.embed_positions.weight", source.PositionEmbedding, c.MaxPositions, C);
        for (int l = 0; l < layers.Length; l++)
        {
            var (t, src) = (layers[l], source.Layers[l]);
            string b = $"model.layers.{l}.", a = b + "self_attn.";
            Norm(b + "input_layernorm", src.AttentionNorm);
            Add(a + "q_proj.weight", t.Wq, NH * QK, C);
            Add(a + "q_proj.bias", t.Bq, NH * QK);
            Add(a + "kv_a_proj_with_mqa.weight", t.WkvA, R + ROPE, C);
            Add(a + "kv_a_proj_with_mqa.bias", t.BkvA, R + ROPE);
            Add(a + "kv_a_layernorm.weight", t.KvNorm, R);
            Add(a + "kv_b_proj.weight", t.WkvB, NH * (NOPE + HD), R);
            Add(a + "o_proj.weight", Linear(src.Attention.WO, NH * HD, C), C, NH * HD); // W_O (NH, HD, C) = (NH·HD, C)
            Add(a + "o_proj.bias", t.Bo, C);
            Norm(b + "post_attention_layernorm", src.MlpNorm);
            Add(b + "mlp.gate_proj.weight", Linear(src.Mlp.WGate, C, F), F, C);
            Add(b + "mlp.gate_proj.bias", src.Mlp.BGate, F);
            Add(b + "mlp.up_proj.weight", Linear(src.Mlp.WIn, C, F), F, C);
            Add(b + "mlp.up_proj.bias", src.Mlp.BIn, F);
            Add(b + "mlp.down_proj.weight", Linear(src.Mlp.WOut, F, C), C, F);
            Add(b + "mlp.down_proj.bias", src.Mlp.BOut, C);
        }
        Norm("model.norm", source.FinalNorm);
        Add("lm_head.weight", source.Unembedding, V, C);
        return tensors;
    }

    /// <summary>Canonical weights hold per-head W_Q/W_K/W_V, which MLA cannot be written from: refused.</summary>
    internal static IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> CheckpointTensors(CanonicalWeights w) =>
        throw new InvalidInputException(NoCanonicalAttention);

    /// <summary>The tensor of this family that a trainer parameter (Training/Layers/MlaAttention.cs, TrainableTransformer.Mla.cs)
    /// holds: nn.Linear (out, in) in both, so import and export copy without transposes.</summary>
    internal static string TrainerTensorName(string param)
    {
        switch (param)
        {
            case "wte": return "model.embed_tokens.weight";
            case "wpe": return "model.embed_positions.weight";
            case "ln_f.weight": return "model.norm.weight";
            case "ln_f.bias": return "model.norm.bias";
            case "w_u": return "lm_head.weight";
        }
        // blocks.{l}.{part}
        int dot = param.IndexOf('.', "blocks.".Length);
        string layer = param["blocks.".Length..dot], part = param[(dot + 1)..];
        string hf = part switch
        {
            "ln1.weight" => "input_layernorm.weight",
            "ln1.bias" => "input_layernorm.bias",
            "ln2.weight" => "post_attention_layernorm.weight",
            "ln2.bias" => "post_attention_layernorm.bias",
            "attn.w_q" => "self_attn.q_proj.weight",
            "attn.b_q" => "self_attn.q_proj.bias",
            "attn.w_q_a" => "self_attn.q_a_proj.weight",
            "attn.b_q_a" => "self_attn.q_a_proj.bias",
            "attn.q_norm.weight" => "self_attn.q_a_layernorm.weight",
            "attn.w_q_b" => "self_attn.q_b_proj.weight",
            "attn.w_dkv" => "self_attn.kv_a_proj_with_mqa.weight",
            "attn.b_dkv" => "self_attn.kv_a_proj_with_mqa.bias",
            "attn.kv_norm.weight" => "self_attn.kv_a_layernorm.weight",
            "attn.w_ukv" => "self_attn.kv_b_proj.weight",
            "attn.w_o" => "self_attn.o_proj.weight",
            "attn.b_o" => "self_attn.o_proj.bias",
            "mlp.w_gate" => "mlp.gate_proj.weight",
            "mlp.w_up" => "mlp.up_proj.weight",
            "mlp.w_out" => "mlp.down_proj.weight",
            // a GPT-2 source's block (headwise_mla): LayerNorm biases above, learned positions, up_proj → GELU → down_proj with biases
            "mlp.w_in" => "mlp.up_proj.weight",
            "mlp.b_in" => "mlp.up_proj.bias",
            "mlp.b_out" => "mlp.down_proj.bias",
            _ => throw new InvalidOperationException($"no deepseek_v3 tensor for the trainer's '{param}'"),
        };
        return $"model.layers.{layer}.{hf}";
    }
}
