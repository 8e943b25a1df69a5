using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;
using static Headwise.Models.CanonicalLayout;

namespace Headwise.Models;

/// <summary>
/// GPT-NeoX / Pythia (HF <c>GPTNeoXForCausalLM</c>): LayerNorm, fused query_key_value laid out per head as [q_h | k_h | v_h],
/// partial rotary (the first rotary_pct of each head), exact-erf GELU, and a parallel residual
/// x + attn(ln1(x)) + mlp(ln2(x)) unless use_parallel_residual is false.
/// </summary>
public sealed class GptNeoX : TransformerModel
{
    private readonly Weight _embedIn;  // (V, C)
    private readonly BlockWeights[] _blocks;
    private readonly Weight _lnFW, _lnFB; // (C)
    private readonly Weight _embedOut;  // (V, C)

    private sealed record BlockWeights(
        Weight Ln1W, Weight Ln1B,        // input_layernorm: (C)
        Weight Ln2W, Weight Ln2B,        // post_attention_layernorm: (C)
        Weight QkvW, Weight? QkvB,       // query_key_value: (3C, C), (3C) — rows grouped per head as [q_h, k_h, v_h]; a layer
                                         // sharing attention: the value rows alone, (C, C), (C), per head v_h
        Weight DenseW, Weight? DenseB,   // attention.dense: (C, C), (C)
        Weight UpW, Weight UpB,          // mlp.dense_h_to_4h: (F, C), (F)
        Weight DownW, Weight DownB);     // mlp.dense_4h_to_h: (C, F), (C)

    public GptNeoX(ModelConfig config, WeightSet w) : base(config, w)
    {
        int C = config.DModel, V = config.VocabSize, F = config.DMlp;
        _embedIn = w.Get("gpt_neox.embed_in.weight", V, C);
        _blocks = new BlockWeights[config.NLayers];
        for (int l = 0; l < config.NLayers; l++)
        {
            string b = $"gpt_neox.layers.{l}.";
            int qd = config.HeadsIn(l) * config.DHead; // C, or the layer's own heads' width when pruned
            int qkv = SharesAttention(l) ? qd : 3 * qd;
            _blocks[l] = new BlockWeights(
                w.Get(b + "input_layernorm.weight", C), w.Get(b + "input_layernorm.bias", C),
                w.Get(b + "post_attention_layernorm.weight", C), w.Get(b + "post_attention_layernorm.bias", C),
                w.Get(b + "attention.query_key_value.weight", qkv, C), config.QkvBias ? w.Get(b + "attention.query_key_value.bias", qkv) : null,
                w.Get(b + "attention.dense.weight", C, qd), config.OutputBias ? w.Get(b + "attention.dense.bias", C) : null,
                w.Get(b + "mlp.dense_h_to_4h.weight", F, C), w.Get(b + "mlp.dense_h_to_4h.bias", F),
                w.Get(b + "mlp.dense_4h_to_h.weight", C, F), w.Get(b + "mlp.dense_4h_to_h.bias", C));
        }
        _lnFW = w.Get("gpt_neox.final_layer_norm.weight", C);
        _lnFB = w.Get("gpt_neox.final_layer_norm.bias", C);
        _embedOut = config.TiedEmbeddings ? _embedIn : w.Get("embed_out.weight", V, C);
    }

    // inputs_embeds = self.embed_in(input_ids)
    protected override void Embed() => EmbedTokens(_embedIn);

    protected override (Weight W, WeightLayout Layout) OutputProjection(int layer) => (_blocks[layer].DenseW, WeightLayout.OutIn);

    protected override void Block(int l)
    {
        int N = Step.N, C = Config.DModel, NH = Config.HeadsIn(l), HD = Config.DHead;
        var blk = _blocks[l];
        HookResid(l, HookKind.ResidPre, S.X);

        // attention layernorm: self.input_layernorm(hidden_states)
        Norm(l, HookKind.Ln1Scale, S.X, blk.Ln1W, blk.Ln1B, S.XNorm);

        // qkv = self.query_key_value(hidden_states).view(..., num_heads, 3 * head_size); q, k, v = qkv.chunk(3, dim=-1)
        if (SharesAttention(l))
        {
            Linear(S.XNorm, C, blk.QkvW, blk.QkvB, S.V, NH * HD, WeightLayout.OutIn); // the value rows alone
        }
        else
        {
            Linear(S.XNorm, C, blk.QkvW, blk.QkvB, S.Qkv, 3 * NH * HD, WeightLayout.OutIn);
            SplitQkv(S.Qkv, S.Q, S.K, S.V, N, NH, NH, HD, perHead: true); // per head: [q_h | k_h | v_h]
        }

        // partial RoPE on the first rotary_ndims of each head, attention, then self.dense(attn_output); a sequential block
        // adds it to the residual stream in dense's store (unless hook_attn_out is attached), a parallel one below
        Attention(l, blk.DenseW, blk.DenseB, WeightLayout.OutIn, S.Tmp, Config.ParallelResidual ? null : S.X);

        if (Config.ParallelResidual)
        {
            // x = x + attn(ln1(x)) + mlp(ln2(x)): ln2 reads x before either add
            Norm(l, HookKind.Ln2Scale, S.X, blk.Ln2W, blk.Ln2B, S.XNorm);
            Mlp(l, blk, S.Tmp2, null);
            Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
            Add(S.X.AsSpan(0, N * C), S.Tmp2.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
        }
        else
        {
            // x = x + attn(ln1(x)) (added above); x = x + mlp(ln2(x))
            HookResid(l, HookKind.ResidMid, S.X);
            MlpSublayer(l);
            return;
        }
        HookResid(l, HookKind.ResidPost, S.X);
    }

    protected override void MlpSublayer(int l)
    {
        if (Config.ParallelResidual)
        {
            throw new InvalidOperationException("a parallel-residual block has no point between its attention and its MLP");
        }
        var blk = _blocks[l];
        Norm(l, HookKind.Ln2Scale, S.X, blk.Ln2W, blk.Ln2B, S.XNorm);
        Mlp(l, blk, S.Tmp, S.X);
        HookResid(l, HookKind.ResidPost, S.X);
    }

    protected override void FinalNorm()
    {
        // hidden_states = self.final_layer_norm(hidden_states)
        Norm(HookPoint.ModelLevel, HookKind.LnFinalScale, S.X, _lnFW, _lnFB, S.XNorm);
    }

    // mlp: dense_4h_to_h(act(dense_h_to_4h(ln2(x)))) from S.XNorm into output, added into residual when given; the
    // activation and the add run in the GEMMs' stores unless hooks observe what they skip
    private void Mlp(int l, BlockWeights blk, float[] output, float[]? residual)
    {
        int C = Config.DModel, F = Config.DMlp;
        LinearActivated(l, S.XNorm, C, blk.UpW, blk.UpB, S.Hidden, WeightLayout.OutIn);
        OutputLinear(l, HookKind.MlpOut, S.Hidden, F, blk.DownW, blk.DownB, output, WeightLayout.OutIn, residual);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The canonical weights: read from, and written as, GPT-NeoX's tensors (nn.Linear (out, in): transposed to x·W)

    public override Weight TokenEmbedding => _embedIn;

    public override (Weight W, Weight? Bias) Unembedding => (_embedOut, null);

    protected override (Weight W, Weight? Bias) NormTensors(int layer, HookKind site) => site switch
    {
        HookKind.Ln1Scale => (_blocks[layer].Ln1W, _blocks[layer].Ln1B),
        HookKind.Ln2Scale => (_blocks[layer].Ln2W, _blocks[layer].Ln2B),
        _ => (_lnFW, _lnFB),
    };

    public override AttentionWeights GetAttentionWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, NH = Config.HeadsIn(layer), HD = Config.DHead, qd = NH * HD; // qd = C unless pruned per layer
        // query_key_value (3C, C): head h is rows 3·HD·h .. as [q_h | k_h | v_h], HD rows each; the bias likewise
        var w = blk.QkvW.Span;
        if (SharesAttention(layer))
        {
            // query_key_value (C, C) is the value rows alone; the absent W_Q, W_K read as zeros
            return new AttentionWeights(NH, NH, C, HD, AbsentHeads(NH), AbsentHeads(NH), ReadHeads(w, WeightLayout.OutIn, qd, NH, 0, HD, C, HD),
                OutputWeightsPerHead(layer), blk.QkvB is null ? null : new float[C], blk.QkvB is null ? null : new float[C],
                blk.QkvB?.ToArray(), blk.DenseB?.ToArray());
        }
        float[]? Bias(int first) => blk.QkvB is { } b ? ReadHeadBias(b.Span, NH, first, 3 * HD, HD) : null;
        return new AttentionWeights(NH, NH, C, HD,
            ReadHeads(w, WeightLayout.OutIn, 3 * qd, NH, 0, 3 * HD, C, HD),
            ReadHeads(w, WeightLayout.OutIn, 3 * qd, NH, HD, 3 * HD, C, HD),
            ReadHeads(w, WeightLayout.OutIn, 3 * qd, NH, 2 * HD, 3 * HD, C, HD),
            OutputWeightsPerHead(layer),
            Bias(0), Bias(HD), Bias(2 * HD), blk.DenseB?.ToArray());
    }

    public override MlpWeights GetMlpWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, F = Config.DMlp;
        return new MlpWeights(Transposed(blk.UpW.Span, F, C), blk.UpB.ToArray(), null, null, Transposed(blk.DownW.Span, C, F), blk.DownB.ToArray());
    }

    /// <summary>Canonical weights as a <c>GPTNeoXForCausalLM</c> checkpoint's tensors.</summary>
    internal static IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> CheckpointTensors(CanonicalWeights w)
    {
        var c = w.Config;
        int C = c.DModel, V = c.VocabSize, F = c.DMlp, NH = c.NHeads, HD = c.DHead;
        if (c.NKvHeads != NH || NH * HD != C || c.QkvBias != c.OutputBias || !c.MlpBias || c.Norm != NormKind.LayerNorm || c.GatedMlp
            || c.Positions == PositionKind.Learned)
        {
            throw new InvalidInputException("a GPT-NeoX checkpoint holds LayerNorms, (partial) RoPE, an ungated MLP with biases, one attention_bias flag and heads × head size = d_model, one key/value head per query head");
        }
        var list = new List<(string, int[], ReadOnlyMemory<float>)> { ("gpt_neox.embed_in.weight", [V, C], w.TokenEmbedding) };
        for (int l = 0; l < c.NLayers; l++)
        {
            var (ln1, a, ln2, m) = w.Layers[l];
            string p = $"gpt_neox.layers.{l}.";
            // a layer that shares attention keeps the value rows alone: query_key_value (C, C), per head v_h
            var parts = c.SharedAttention?.SourceOf(l) is { } source && source != l ? new[] { (a.WV, a.BV) } : [(a.WQ, a.BQ), (a.WK, a.BK), (a.WV, a.BV)];
            int heads = a.NHeads, qd = heads * HD, width = parts.Length * qd; // a pruned layer has its own heads, qd wide
            var qkv = new float[width * C];
            var qkvBias = new float[width];
            int first = 0;
            foreach (var (weight, bias) in parts)
            {
                WriteHeads(weight, qkv, WeightLayout.OutIn, width, heads, first, parts.Length * HD, C, HD);
                if (bias is not null)
                {
                    WriteHeadBias(bias, qkvBias, heads, first, parts.Length * HD, HD);
                }
                first += HD;
            }
            list.AddRange([
                (p + "input_layernorm.weight", [C], ln1.Weight), (p + "input_layernorm.bias", [C], ln1.Bias!),
                (p + "post_attention_layernorm.weight", [C], ln2.Weight), (p + "post_attention_layernorm.bias", [C], ln2.Bias!),
                (p + "attention.query_key_value.weight", [width, C], qkv),
            ]);
            if (c.QkvBias)
            {
                list.Add((p + "attention.query_key_value.bias", [width], qkvBias));
            }
            list.Add((p + "attention.dense.weight", [C, qd], Transposed(a.WO, qd, C)));
            if (c.OutputBias)
            {
                list.Add((p + "attention.dense.bias", [C], a.BO!));
            }
            list.AddRange([
                (p + "mlp.dense_h_to_4h.weight", [F, C], Transposed(m.WIn, C, F)), (p + "mlp.dense_h_to_4h.bias", [F], m.BIn!),
                (p + "mlp.dense_4h_to_h.weight", [C, F], Transposed(m.WOut, F, C)), (p + "mlp.dense_4h_to_h.bias", [C], m.BOut!),
            ]);
        }
        list.Add(("gpt_neox.final_layer_norm.weight", [C], w.FinalNorm.Weight));
        list.Add(("gpt_neox.final_layer_norm.bias", [C], w.FinalNorm.Bias!));
        if (w.Unembedding is { } head)
        {
            list.Add(("embed_out.weight", [V, C], head));
        }
        return list;
    }
}
