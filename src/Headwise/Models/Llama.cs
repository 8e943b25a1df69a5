using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;
using static Headwise.Models.CanonicalLayout;

namespace Headwise.Models;

/// <summary>
/// Llama (HF <c>LlamaForCausalLM</c>), and the models that share its forward: Mistral (sliding window), Qwen2 (q/k/v biases),
/// and llama2.c checkpoints (interleaved RoPE). RMSNorm, RoPE, grouped-query attention, SwiGLU MLP; nn.Linear weights (out, in).
/// </summary>
public sealed class Llama : TransformerModel
{
    private readonly Weight _embed;  // (V, C)
    private readonly BlockWeights[] _blocks;
    private readonly Weight _norm;   // (C)
    private readonly Weight _lmHead; // (V, C): embed_tokens when tied

    private sealed record BlockWeights(
        Weight AttnNorm,                         // input_layernorm: (C)
        Weight? Wq, Weight? Bq,                  // (NH·HD, C), (NH·HD); null in a layer that shares attention
        Weight? Wk, Weight? Bk,                  // (NKV·HD, C), (NKV·HD); likewise
        Weight Wv, Weight? Bv,                   // (NKV·HD, C), (NKV·HD)
        Weight Wo, Weight? Bo,                   // (C, NH·HD), (C)
        Weight MlpNorm,                          // post_attention_layernorm: (C)
        Weight Gate, Weight Up, Weight Down,     // (F, C), (F, C), (C, F)
        Weight? GateB, Weight? UpB, Weight? DownB);

    public Llama(ModelConfig config, WeightSet w) : base(config, w)
    {
        int C = config.DModel, V = config.VocabSize, F = config.DMlp;
        _embed = w.Get("model.embed_tokens.weight", V, C);
        _blocks = new BlockWeights[config.NLayers];
        for (int l = 0; l < config.NLayers; l++)
        {
            string b = $"model.layers.{l}.";
            int qd = config.HeadsIn(l) * config.DHead, kvd = config.KvHeadsIn(l) * config.DHead; // the layer's own heads when pruned
            Weight? Bias(string name, int n, bool present) => present ? w.Get(b + name, n) : null;
            bool qk = !SharesAttention(l); // a layer that reuses an earlier layer's pattern has no q_proj, k_proj
            _blocks[l] = new BlockWeights(
                w.Get(b + "input_layernorm.weight", C),
                qk ? w.Get(b + "self_attn.q_proj.weight", qd, C) : null, Bias("self_attn.q_proj.bias", qd, config.QkvBias && qk),
                qk ? w.Get(b + "self_attn.k_proj.weight", kvd, C) : null, Bias("self_attn.k_proj.bias", kvd, config.QkvBias && qk),
                w.Get(b + "self_attn.v_proj.weight", kvd, C), Bias("self_attn.v_proj.bias", kvd, config.QkvBias),
                w.Get(b + "self_attn.o_proj.weight", C, qd), Bias("self_attn.o_proj.bias", C, config.OutputBias),
                w.Get(b + "post_attention_layernorm.weight", C),
                w.Get(b + "mlp.gate_proj.weight", F, C), w.Get(b + "mlp.up_proj.weight", F, C), w.Get(b + "mlp.down_proj.weight", C, F),
                Bias("mlp.gate_proj.bias", F, config.MlpBias), Bias("mlp.up_proj.bias", F, config.MlpBias), Bias("mlp.down_proj.bias", C, config.MlpBias));
        }
        _norm = w.Get("model.norm.weight", C);
        _lmHead = config.TiedEmbeddings ? _embed : w.Get("lm_head.weight", V, C);
    }

    // inputs_embeds = self.embed_tokens(input_ids)
    protected override void Embed() => EmbedTokens(_embed);

    protected override (Weight W, WeightLayout Layout) OutputProjection(int layer) => (_blocks[layer].Wo, WeightLayout.OutIn);

    protected override void Block(int l)
    {
        int C = Config.DModel;
        int qd = Config.HeadsIn(l) * Config.DHead, kvd = Config.KvHeadsIn(l) * Config.DHead;
        var blk = _blocks[l];
        HookResid(l, HookKind.ResidPre, S.X);

        // attention rmsnorm: hidden_states = self.input_layernorm(hidden_states)
        Norm(l, HookKind.Ln1Scale, S.X, blk.AttnNorm, null, S.XNorm);

        // query_states = self.q_proj(hidden_states), likewise k and v (kv heads: num_key_value_heads)
        if (blk.Wq is not null && blk.Wk is not null)
        {
            Linear(S.XNorm, C, blk.Wq, blk.Bq, S.Q, qd, WeightLayout.OutIn);
            Linear(S.XNorm, C, blk.Wk, blk.Bk, S.K, kvd, WeightLayout.OutIn);
        }
        Linear(S.XNorm, C, blk.Wv, blk.Bv, S.V, kvd, WeightLayout.OutIn);

        // RoPE (apply_rotary_pos_emb), softmax(q·kᵀ/√d + mask)·v with repeat_kv for grouped heads, then self.o_proj;
        // hidden_states = residual + hidden_states (in o_proj's store unless hook_attn_out is attached)
        Attention(l, blk.Wo, blk.Bo, WeightLayout.OutIn, S.Tmp, S.X);
        HookResid(l, HookKind.ResidMid, S.X);
        MlpSublayer(l);
    }

    protected override void MlpSublayer(int l)
    {
        int C = Config.DModel, F = Config.DMlp;
        var blk = _blocks[l];

        // ffn rmsnorm: hidden_states = self.post_attention_layernorm(hidden_states)
        Norm(l, HookKind.Ln2Scale, S.X, blk.MlpNorm, null, S.XNorm);

        // SwiGLU: down_proj(act_fn(gate_proj(x)) * up_proj(x)) (the product in gate_proj's store unless an MLP hook is attached)
        GatedLinear(l, S.XNorm, C, blk.Gate, blk.GateB, blk.Up, blk.UpB, S.Hidden, S.Hidden2, WeightLayout.OutIn);

        // hidden_states = residual + down_proj(...) (in down_proj's store unless hook_mlp_out is attached)
        OutputLinear(l, HookKind.MlpOut, S.Hidden, F, blk.Down, blk.DownB, S.Tmp, WeightLayout.OutIn, S.X);
        HookResid(l, HookKind.ResidPost, S.X);
    }

    protected override void FinalNorm()
    {
        // final rmsnorm: hidden_states = self.norm(hidden_states)
        Norm(HookPoint.ModelLevel, HookKind.LnFinalScale, S.X, _norm, null, S.XNorm);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The canonical weights: read from, and written as, Llama's tensors (nn.Linear (out, in): transposed to x·W)

    public override Weight TokenEmbedding => _embed;

    public override (Weight W, Weight? Bias) Unembedding => (_lmHead, null);

    protected override (Weight W, Weight? Bias) NormTensors(int layer, HookKind site) => site switch
    {
        HookKind.Ln1Scale => (_blocks[layer].AttnNorm, null),
        HookKind.Ln2Scale => (_blocks[layer].MlpNorm, null),
        _ => (_norm, null),
    };

    public override AttentionWeights GetAttentionWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, NH = Config.HeadsIn(layer), NKV = Config.KvHeadsIn(layer), HD = Config.DHead;
        // q_proj (NH·HD, C): head h is rows h·HD ..; k/v_proj (NKV·HD, C) likewise; the biases are already (heads, HD)
        // a shared layer's absent W_Q, W_K read as zeros (AbsentHeads)
        return new AttentionWeights(NH, NKV, C, HD,
            blk.Wq is null ? AbsentHeads(NH) : ReadHeads(blk.Wq.Span, WeightLayout.OutIn, NH * HD, NH, 0, HD, C, HD),
            blk.Wk is null ? AbsentHeads(NKV) : ReadHeads(blk.Wk.Span, WeightLayout.OutIn, NKV * HD, NKV, 0, HD, C, HD),
            ReadHeads(blk.Wv.Span, WeightLayout.OutIn, NKV * HD, NKV, 0, HD, C, HD),
            OutputWeightsPerHead(layer),
            AbsentBias(blk.Bq, NH), AbsentBias(blk.Bk, NKV), blk.Bv?.ToArray(), blk.Bo?.ToArray());
    }

    // W_in is up_proj and W_gate gate_proj, as TransformerLens names them: act(x·W_gate) ⊙ (x·W_in)
    public override MlpWeights GetMlpWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, F = Config.DMlp;
        return new MlpWeights(Transposed(blk.Up.Span, F, C), blk.UpB?.ToArray(), Transposed(blk.Gate.Span, F, C), blk.GateB?.ToArray(),
            Transposed(blk.Down.Span, C, F), blk.DownB?.ToArray());
    }

    /// <summary>Canonical weights as a <c>LlamaForCausalLM</c> (Mistral, Qwen2) checkpoint's tensors.</summary>
    internal static IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> CheckpointTensors(CanonicalWeights w)
    {
        var c = w.Config;
        int C = c.DModel, V = c.VocabSize, F = c.DMlp, HD = c.DHead;
        if (c.Positions != PositionKind.Rotary || c.Norm != NormKind.RmsNorm || !c.GatedMlp || c.Activation != ActivationFunction.Silu)
        {
            throw new InvalidInputException("a Llama checkpoint holds RMSNorms, RoPE and a SwiGLU MLP");
        }
        static float[] Rows(float[] heads, int n, int outFeatures, int C, int HD)
        {
            var dst = new float[outFeatures * C];
            WriteHeads(heads, dst, WeightLayout.OutIn, outFeatures, n, 0, HD, C, HD);
            return dst;
        }
        var list = new List<(string, int[], ReadOnlyMemory<float>)> { ("model.embed_tokens.weight", [V, C], w.TokenEmbedding) };
        for (int l = 0; l < c.NLayers; l++)
        {
            var (ln1, a, ln2, m) = w.Layers[l];
            string p = $"model.layers.{l}.";
            int NH = a.NHeads, NKV = a.NKvHeads, qd = NH * HD, kvd = NKV * HD; // the layer's own heads (fewer when pruned)
            bool qk = c.SharedAttention?.SourceOf(l) is not { } source || source == l; // a shared layer's q/k are dropped
            list.Add((p + "input_layernorm.weight", [C], ln1.Weight));
            if (qk)
            {
                list.Add((p + "self_attn.q_proj.weight", [qd, C], Rows(a.WQ, NH, qd, C, HD)));
                list.Add((p + "self_attn.k_proj.weight", [kvd, C], Rows(a.WK, NKV, kvd, C, HD)));
            }
            list.Add((p + "self_attn.v_proj.weight", [kvd, C], Rows(a.WV, NKV, kvd, C, HD)));
            if (c.QkvBias && qk)
            {
                list.AddRange([(p + "self_attn.q_proj.bias", [qd], a.BQ!), (p + "self_attn.k_proj.bias", [kvd], a.BK!)]);
            }
            if (c.QkvBias)
            {
                list.Add((p + "self_attn.v_proj.bias", [kvd], a.BV!));
            }
            list.Add((p + "self_attn.o_proj.weight", [C, qd], Transposed(a.WO, qd, C)));
            if (c.OutputBias)
            {
                list.Add((p + "self_attn.o_proj.bias", [C], a.BO!));
            }
            list.Add((p + "post_attention_layernorm.weight", [C], ln2.Weight));
            list.AddRange([
                (p + "mlp.gate_proj.weight", [F, C], Transposed(m.WGate!, C, F)),
                (p + "mlp.up_proj.weight", [F, C], Transposed(m.WIn, C, F)),
                (p + "mlp.down_proj.weight", [C, F], Transposed(m.WOut, F, C)),
            ]);
            if (c.MlpBias)
            {
                list.AddRange([(p + "mlp.gate_proj.bias", [F], m.BGate!), (p + "mlp.up_proj.bias", [F], m.BIn!), (p + "mlp.down_proj.bias", [C], m.BOut!)]);
            }
        }
        list.Add(("model.norm.weight", [C], w.FinalNorm.Weight));
        if (w.Unembedding is { } head)
        {
            list.Add(("lm_head.weight", [V, C], head));
        }
        return list;
    }
}
