using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;
using static Headwise.Models.CanonicalLayout;

namespace Headwise.Models;

/// <summary>
/// GPT-2 (HF <c>GPT2LMHeadModel</c>): learned position embeddings, pre-LayerNorm blocks, fused q|k|v,
/// GELU (tanh) MLP. Its <c>Conv1D</c> layers store weights (in, out): x · W + b.
/// </summary>
public sealed class Gpt2 : TransformerModel
{
    private readonly Weight _wte;  // (V, C)
    private readonly Weight _wpe;  // (maxT, C)
    private readonly BlockWeights[] _blocks;
    private readonly Weight _lnFW, _lnFB;  // (C)
    private readonly Weight _lmHead; // (V, C): wte when tied

    private sealed record BlockWeights(
        Weight Ln1W, Weight Ln1B,       // (C)
        Weight AttnW, Weight AttnB,     // c_attn: (C, 3C), (3C); a layer sharing attention: its value third only, (C, C), (C)
        Weight ProjW, Weight ProjB,     // attn.c_proj: (C, C), (C)
        Weight Ln2W, Weight Ln2B,       // (C)
        Weight FcW, Weight FcB,         // mlp.c_fc: (C, 4C), (4C)
        Weight MlpProjW, Weight MlpProjB); // mlp.c_proj: (4C, C), (C)

    public Gpt2(ModelConfig config, WeightSet w) : base(config, w)
    {
        int C = config.DModel, V = config.VocabSize, F = config.DMlp;
        // Checkpoints saved from GPT2Model (no LM head) carry no "transformer." prefix.
        string p = w.Contains("transformer.wte.weight") ? "transformer." : "";
        _wte = w.Get(p + "wte.weight", V, C);
        _wpe = w.Get(p + "wpe.weight", config.MaxPositions, C);
        _blocks = new BlockWeights[config.NLayers];
        for (int l = 0; l < config.NLayers; l++)
        {
            string b = $"{p}h.{l}.";
            int qd = config.HeadsIn(l) * config.DHead; // C, or the layer's own heads' width when pruned
            int qkv = SharesAttention(l) ? qd : 3 * qd;
            _blocks[l] = new BlockWeights(
                w.Get(b + "ln_1.weight", C), w.Get(b + "ln_1.bias", C),
                w.Get(b + "attn.c_attn.weight", C, qkv), w.Get(b + "attn.c_attn.bias", qkv),
                w.Get(b + "attn.c_proj.weight", qd, C), w.Get(b + "attn.c_proj.bias", C),
                w.Get(b + "ln_2.weight", C), w.Get(b + "ln_2.bias", C),
                w.Get(b + "mlp.c_fc.weight", C, F), w.Get(b + "mlp.c_fc.bias", F),
                w.Get(b + "mlp.c_proj.weight", F, C), w.Get(b + "mlp.c_proj.bias", C));
        }
        _lnFW = w.Get(p + "ln_f.weight", C);
        _lnFB = w.Get(p + "ln_f.bias", C);
        _lmHead = config.TiedEmbeddings ? _wte : w.Get("lm_head.weight", V, C);
    }

    protected override void Embed()
    {
        // token and position embeddings: hidden_states = inputs_embeds + position_embeds
        EmbedTokens(_wte);
        EmbedPositions(_wpe);
    }

    protected override (Weight W, WeightLayout Layout) OutputProjection(int layer) => (_blocks[layer].ProjW, WeightLayout.InOut);

    protected override void Block(int l)
    {
        int N = Step.N, C = Config.DModel, qd = Config.HeadsIn(l) * Config.DHead; // qd = C unless pruned per layer
        var blk = _blocks[l];
        HookResid(l, HookKind.ResidPre, S.X);

        // attention layernorm: hidden_states = self.ln_1(hidden_states)
        Norm(l, HookKind.Ln1Scale, S.X, blk.Ln1W, blk.Ln1B, S.XNorm);

        // query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2); a shared layer: the value only
        if (SharesAttention(l))
        {
            Linear(S.XNorm, C, blk.AttnW, blk.AttnB, S.V, qd, WeightLayout.InOut);
        }
        else
        {
            Linear(S.XNorm, C, blk.AttnW, blk.AttnB, S.Qkv, 3 * qd, WeightLayout.InOut);
            SplitQkv(S.Qkv, S.Q, S.K, S.V, N, qd / Config.DHead, qd / Config.DHead, Config.DHead, perHead: false);
        }

        // attn_output = softmax(q·kᵀ / √d_head + causal mask)·v, then self.c_proj(attn_output);
        // hidden_states = attn_output + residual (in c_proj's store unless hook_attn_out is attached)
        Attention(l, blk.ProjW, blk.ProjB, WeightLayout.InOut, S.Tmp, S.X);
        HookResid(l, HookKind.ResidMid, S.X);
        MlpSublayer(l);
    }

    protected override void MlpSublayer(int l)
    {
        int C = Config.DModel, F = Config.DMlp;
        var blk = _blocks[l];

        // MLP: self.c_proj(self.act(self.c_fc(self.ln_2(hidden_states)))), gelu_new in c_fc's store unless hooked
        Norm(l, HookKind.Ln2Scale, S.X, blk.Ln2W, blk.Ln2B, S.XNorm);
        LinearActivated(l, S.XNorm, C, blk.FcW, blk.FcB, S.Hidden, WeightLayout.InOut);

        // hidden_states = residual + feed_forward_hidden_states (in c_proj's store unless hook_mlp_out is attached)
        OutputLinear(l, HookKind.MlpOut, S.Hidden, F, blk.MlpProjW, blk.MlpProjB, S.Tmp, WeightLayout.InOut, S.X);
        HookResid(l, HookKind.ResidPost, S.X);
    }

    protected override void FinalNorm()
    {
        // hidden_states = self.ln_f(hidden_states)
        Norm(HookPoint.ModelLevel, HookKind.LnFinalScale, S.X, _lnFW, _lnFB, S.XNorm);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The canonical weights: read from, and written as, GPT-2's tensors

    public override Weight TokenEmbedding => _wte;

    public override Weight? PositionEmbedding => _wpe;

    public override (Weight W, Weight? Bias) Unembedding => (_lmHead, null);

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
        // c_attn (C, 3·qd) Conv1D = [W_Q | W_K | W_V]: head h is columns h·HD .. h·HD + HD of each third
        var w = blk.AttnW.Span;
        var b = blk.AttnB.Span;
        if (SharesAttention(layer))
        {
            // c_attn (C, C) is the value third alone; the absent W_Q, W_K read as zeros
            return new AttentionWeights(NH, NH, C, HD, AbsentHeads(NH), AbsentHeads(NH), ReadHeads(w, WeightLayout.InOut, qd, NH, 0, HD, C, HD),
                OutputWeightsPerHead(layer), new float[NH * HD], new float[NH * HD], ReadHeadBias(b, NH, 0, HD, HD), blk.ProjB.ToArray());
        }
        return new AttentionWeights(NH, NH, C, HD,
            ReadHeads(w, WeightLayout.InOut, 3 * qd, NH, 0, HD, C, HD),
            ReadHeads(w, WeightLayout.InOut, 3 * qd, NH, qd, HD, C, HD),
            ReadHeads(w, WeightLayout.InOut, 3 * qd, NH, 2 * qd, HD, C, HD),
            OutputWeightsPerHead(layer),
            ReadHeadBias(b, NH, 0, HD, HD), ReadHeadBias(b, NH, qd, HD, HD), ReadHeadBias(b, NH, 2 * qd, HD, HD), blk.ProjB.ToArray());
    }

    // c_fc (C, F) and c_proj (F, C) are Conv1D: already x·W
    public override MlpWeights GetMlpWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        return new MlpWeights(blk.FcW.ToArray(), blk.FcB.ToArray(), null, null, blk.MlpProjW.ToArray(), blk.MlpProjB.ToArray());
    }

    /// <summary>Canonical weights as a <c>GPT2LMHeadModel</c> checkpoint's tensors (with the <c>transformer.</c> prefix).</summary>
    internal static IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> CheckpointTensors(CanonicalWeights w)
    {
        var c = w.Config;
        int C = c.DModel, V = c.VocabSize, F = c.DMlp, NH = c.NHeads, HD = c.DHead;
        if (c.NKvHeads != NH || NH * HD != C || !c.QkvBias || !c.OutputBias || !c.MlpBias || c.Positions != PositionKind.Learned
            || c.Norm != NormKind.LayerNorm || c.GatedMlp)
        {
            throw new InvalidInputException("a GPT-2 checkpoint holds LayerNorms, learned positions, an ungated MLP, biases everywhere and heads × head size = d_model, one key/value head per query head");
        }
        var list = new List<(string, int[], ReadOnlyMemory<float>)>
        {
            ("transformer.wte.weight", [V, C], w.TokenEmbedding),
            ("transformer.wpe.weight", [c.MaxPositions, C], w.PositionEmbedding!),
        };
        for (int l = 0; l < c.NLayers; l++)
        {
            var (ln1, a, ln2, m) = w.Layers[l];
            // a layer that shares attention keeps the value third alone: c_attn (C, C); a pruned layer has its own heads, qd wide
            var parts = c.SharedAttention?.SourceOf(l) is { } source && source != l ? new[] { (a.WV, a.BV!) } : [(a.WQ, a.BQ!), (a.WK, a.BK!), (a.WV, a.BV!)];
            int heads = a.NHeads, qd = heads * HD, width = parts.Length * qd;
            var qkv = new float[C * width];
            var qkvBias = new float[width];
            int third = 0;
            foreach (var (weight, bias) in parts)
            {
                WriteHeads(weight, qkv, WeightLayout.InOut, width, heads, third, HD, C, HD);
                WriteHeadBias(bias, qkvBias, heads, third, HD, HD);
                third += qd;
            }
            string p = $"transformer.h.{l}.";
            list.AddRange([
                (p + "ln_1.weight", [C], ln1.Weight), (p + "ln_1.bias", [C], ln1.Bias!),
                (p + "attn.c_attn.weight", [C, width], qkv), (p + "attn.c_attn.bias", [width], qkvBias),
                (p + "attn.c_proj.weight", [qd, C], a.WO), (p + "attn.c_proj.bias", [C], a.BO!), // W_O (NH, HD, C) is c_proj's (NH·HD, C)
                (p + "ln_2.weight", [C], ln2.Weight), (p + "ln_2.bias", [C], ln2.Bias!),
                (p + "mlp.c_fc.weight", [C, F], m.WIn), (p + "mlp.c_fc.bias", [F], m.BIn!),
                (p + "mlp.c_proj.weight", [F, C], m.WOut), (p + "mlp.c_proj.bias", [C], m.BOut!),
            ]);
        }
        list.Add(("transformer.ln_f.weight", [C], w.FinalNorm.Weight));
        list.Add(("transformer.ln_f.bias", [C], w.FinalNorm.Bias!));
        if (w.Unembedding is { } head)
        {
            list.Add(("lm_head.weight", [V, C], head));
        }
        return list;
    }
}
