using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;
using static Headwise.Models.CanonicalLayout;

namespace Headwise.Training;

// Import from a checkpoint: the inverse of Export (TrainableTransformer.Export.cs), through the canonical weights, so that
// any checkpoint the engine loads as a GPT-2 or a Llama without options the trainer lacks becomes a model that trains
// (healing a converted model by distillation, Restructure/Healing.cs). Import then export gives back the same tensors,
// bit for bit; llama2.c's interleaved RoPE is first rewritten as the equivalent rotate-half weights (the trainer's layout).
public sealed partial class TrainableTransformer
{
    // set while BackwardFromLogits runs Backward on a gradient the caller computed (no cross-entropy of its own)
    private bool _logitGradientGiven;

    /// <summary>Null when a checkpoint of <paramref name="c"/> can be imported into a trainable model, else the first thing
    /// that does not fit (the trainer builds GPT-2 and Llama as <see cref="TrainableArchitecture"/> describes them).</summary>
    public static string? ImportBlocker(ModelConfig c)
    {
        string what = $"{c.ModelType} model";
        if (c.Family is not (ArchitectureFamily.Gpt2 or ArchitectureFamily.Llama))
        {
            return $"the trainer builds GPT-2 and Llama models; a {what} ({c.Family} family) does not fit";
        }
        if (c.Bidirectional || c.Vision is not null || c.Mla is not null || c.ParallelResidual)
        {
            return $"a {what} with bidirectional, vision, latent or parallel-residual attention does not fit";
        }
        if (c.Family == ArchitectureFamily.Gpt2)
        {
            if (c.Norm != NormKind.LayerNorm || c.Activation != ActivationFunction.GeluTanh || c.GatedMlp || c.Positions != PositionKind.Learned)
            {
                return $"the trainer's GPT-2 has LayerNorm, GELU (tanh) and learned positions; this {what} has {c.Norm}, {c.ActivationName}{(c.GatedMlp ? " gated" : "")}, {c.Positions} positions";
            }
            if (!(c.QkvBias && c.OutputBias && c.MlpBias))
            {
                return $"the trainer's GPT-2 has biases on every projection; this {what} lacks {Biases(c, present: false)}";
            }
            if (c.NKvHeads != c.NHeads || c.NHeads * c.DHead != c.DModel)
            {
                return $"the trainer's GPT-2 needs key/value heads = heads and heads × d_head = d_model (got {c.NHeads}/{c.NKvHeads} heads of {c.DHead} in {c.DModel})";
            }
            return null;
        }
        if (c.Norm != NormKind.RmsNorm || c.Activation != ActivationFunction.Silu || !c.GatedMlp || c.Positions != PositionKind.Rotary)
        {
            return $"the trainer's Llama has RMSNorm, SwiGLU and RoPE; this {what} has {c.Norm}, {c.ActivationName}{(c.GatedMlp ? " gated" : "")}, {c.Positions} positions";
        }
        if (c.RotaryDims != c.DHead)
        {
            return $"the trainer's Llama rotates whole heads; this {what} rotates {c.RotaryDims} of {c.DHead} dims";
        }
        if (c.QkvBias || c.OutputBias || c.MlpBias)
        {
            return $"the trainer's Llama has no biases; this {what} has {Biases(c, present: true)}";
        }
        if (c.SlidingWindow > 0 && c.SlidingWindow < c.MaxPositions)
        {
            return $"the trainer's Llama attends to the whole context; this {what} has a sliding window of {c.SlidingWindow}";
        }
        return null;
    }

    // "q/k/v and output biases": the projections whose bias is (present) or is not (!present) in the config
    private static string Biases(ModelConfig c, bool present) =>
        string.Join(" and ", new[] { ("q/k/v", c.QkvBias), ("output", c.OutputBias), ("MLP", c.MlpBias) }.Where(x => x.Item2 == present).Select(x => x.Item1)) + " biases";

    /// <summary>A trainable model holding exactly the weights of <paramref name="model"/>: <see cref="FromMla"/> for latent
    /// attention (deepseek_v3), else <see cref="FromCanonical"/> of its canonical weights.</summary>
    public static TrainableTransformer FromModel(TransformerModel model) =>
        model.Config.Mla is not null ? FromMla(model) : FromCanonical(model.ToCanonical());

    /// <summary>
    /// A trainable model holding exactly <paramref name="weights"/>: its forward gives the engine's logits (within float
    /// rounding) and <see cref="ToCanonical"/> gives the same tensors back (rotate-half RoPE). Throws
    /// <see cref="InvalidInputException"/> naming what does not fit (<see cref="ImportBlocker"/>).
    /// </summary>
    public static TrainableTransformer FromCanonical(CanonicalWeights weights)
    {
        var c = weights.Config;
        if (c.Mla is not null)
        {
            throw new InvalidInputException("cannot import latent attention through canonical weights: use FromMla");
        }
        if (ImportBlocker(c) is string why)
        {
            throw new InvalidInputException($"cannot import into the trainer: {why}");
        }
        weights.Validate();
        weights = weights.WithRotateHalfRope();
        bool gpt2 = c.Family == ArchitectureFamily.Gpt2;
        var config = new TrainableConfig
        {
            Architecture = gpt2 ? TrainableArchitecture.Gpt2 : TrainableArchitecture.Llama,
            VocabSize = c.VocabSize,
            DModel = c.DModel,
            NLayers = c.NLayers,
            NHeads = c.NHeads,
            NKvHeads = c.NKvHeads,
            DHead = c.DHead,
            DMlp = c.DMlp,
            SeqLen = c.MaxPositions,
            NormEps = c.NormEps,
            RopeTheta = c.RopeTheta,
            TiedEmbeddings = c.TiedEmbeddings,
            SharedGroups = c.SharedAttention?.Groups,
        };
        var m = new TrainableTransformer(config);
        int C = m.C, NH = m.NH, NKV = m.NKV, HD = m.HD, F = m.F, QKV = m.QKV, QK = m.QK;
        void Set(string name, ReadOnlySpan<float> value)
        {
            var p = m.Param(name);
            if (value.Length != p.Length)
            {
                throw new InvalidInputException($"import: {name} has {value.Length} values; the trainer expects {p.Length}");
            }
            value.CopyTo(p);
        }
        void Norm(string name, NormWeights n)
        {
            Set(name + ".weight", n.Weight);
            if (gpt2) Set(name + ".bias", n.Bias);
        }
        Set("wte", weights.TokenEmbedding);
        if (gpt2) Set("wpe", weights.PositionEmbedding);
        for (int l = 0; l < c.NLayers; l++)
        {
            string q = $"blocks.{l}.";
            var (ln1, a, ln2, mlp) = weights.Layers[l];
            Norm(q + "ln1", ln1);
            // w_qkv ((NH + 2·NKV)·HD, C), nn.Linear, rows q | k | v; canonical W_Q (NH, C, HD), W_K and W_V (NKV, C, HD)
            var w = m.Param(q + "attn.w_qkv");
            WriteHeads(a.WQ, w, WeightLayout.OutIn, QKV, NH, 0, HD, C, HD);
            WriteHeads(a.WK, w, WeightLayout.OutIn, QKV, NKV, NH * HD, HD, C, HD);
            WriteHeads(a.WV, w, WeightLayout.OutIn, QKV, NKV, QK, HD, C, HD);
            if (c.SharedAttention?.SourceOf(l) is { } source && source != l)
            {
                // a shared layer reads its group's first pattern: its own q|k rows are never used, so they start (and stay) zero
                w[..(QK * C)].Clear();
            }
            if (gpt2) Set(q + "attn.b_qkv", [.. a.BQ!, .. a.BK!, .. a.BV!]);
            // w_o (C, NH·HD) from canonical W_O (NH·HD, C)
            Set(q + "attn.w_o", Transposed(a.WO, NH * HD, C));
            if (gpt2) Set(q + "attn.b_o", a.BO);
            Norm(q + "ln2", ln2);
            // canonical W_in, W_gate (C, F), W_out (F, C) → nn.Linear (F, C) and (C, F)
            if (gpt2)
            {
                Set(q + "mlp.w_in", Transposed(mlp.WIn, C, F));
                Set(q + "mlp.b_in", mlp.BIn);
                Set(q + "mlp.b_out", mlp.BOut);
            }
            else
            {
                Set(q + "mlp.w_gate", Transposed(mlp.WGate!, C, F));
                Set(q + "mlp.w_up", Transposed(mlp.WIn, C, F));
            }
            Set(q + "mlp.w_out", Transposed(mlp.WOut, F, C));
        }
        Norm("ln_f", weights.FinalNorm);
        if (!c.TiedEmbeddings) Set("w_u", weights.Unembedding);
        return m;
    }

    /// <summary>
    /// Adds ∂L/∂θ into <see cref="Grads"/> for a loss of the last forward's logits whose gradient
    /// <paramref name="dlogits"/> (B, T, V) the caller computed — a loss other than the built-in cross-entropy, such as
    /// <see cref="Layers.KlDivergence"/> to a teacher. The forward may have been run without targets.
    /// </summary>
    public void BackwardFromLogits(ReadOnlySpan<float> dlogits)
    {
        if (_B == 0)
        {
            throw new InvalidOperationException("BackwardFromLogits needs a Forward first");
        }
        if (dlogits.Length != _B * _T * V)
        {
            throw new InvalidInputException($"dlogits must hold B·T·V = {_B * _T * V} values (got {dlogits.Length})");
        }
        // the backward reads dlogits where the cross-entropy's backward leaves them
        dlogits.CopyTo(_probs);
        _logitGradientGiven = true;
        try
        {
            Backward();
        }
        finally
        {
            _logitGradientGiven = false;
        }
    }
}
