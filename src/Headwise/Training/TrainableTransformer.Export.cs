using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;
using static Headwise.Models.CanonicalLayout;

namespace Headwise.Training;

// Export to a Hugging Face checkpoint (GPT2LMHeadModel or LlamaForCausalLM) through the canonical weights: the family's own
// table names the tensors.
// What HF cannot express is refused with InvalidInputException: a combined W_OV, a model without norms, and for GPT-2
// grouped key/value heads or NH·HD ≠ C, and a Llama without RoPE. An attention-only model is exported exactly, as a model
// whose MLP has width 1 and zero weights (its output is then exactly 0 in both families); a GPT-2 without biases or
// without positions gets zero biases / a zero position table, and fixed one-hot embeddings become a tied identity wte.
public sealed partial class TrainableTransformer
{
    /// <summary>Null when the model's attention variant is an ordinary attention for the inference engine, else why not.</summary>
    public string? VariantExportBlocker =>
        Config.AttentionVariant == AttentionVariants.CollapsedQk && _gpt2 && NH > 1
            ? "training-only: collapsed_qk's query/key head size is d_model, and GPT-2 checkpoints need heads × head size = d_model (export it with --arch llama, or one head)"
            : !AttentionVariants.RunsInEngine(Config.AttentionVariant)
            ? $"training-only: the {Config.AttentionVariant} attention has no equivalent in the inference engine"
            : null;

    /// <summary>Null when the model can be written as a Hugging Face checkpoint, else the reason it cannot.</summary>
    public string? HfExportBlocker
    {
        get
        {
            if (Config.Mla is not null) return "multi-head latent attention has no per-head W_Q/W_K/W_V: it is written as a deepseek_v3 checkpoint (ToMlaCheckpoint)";
            if (VariantExportBlocker is string variant) return variant;
            if (Config.CombinedOV) return "a combined W_OV per head has no Hugging Face equivalent";
            if (!Config.UseNorm) return "a model without LayerNorm/RMSNorm has no Hugging Face equivalent";
            if (_gpt2 && NKV != NH) return "GPT-2 checkpoints cannot hold grouped key/value heads (use --arch llama)";
            if (_gpt2 && NH * HD != C) return "GPT-2 checkpoints need heads × head size = d_model";
            if (!_gpt2 && !Config.UsePositions) return "a Llama checkpoint always applies RoPE (the model was trained without positions)";
            return null;
        }
    }

    /// <summary>The engine's config for the exported checkpoint.</summary>
    public ModelConfig ToModelConfig()
    {
        if (HfExportBlocker is string why) throw new InvalidInputException($"cannot export to Hugging Face format: {why}");
        int f = Config.AttentionOnly ? 1 : F;
        var config = _gpt2
            ? new ModelConfig
            {
                ModelType = "gpt2",
                Family = ArchitectureFamily.Gpt2,
                VocabSize = V,
                DModel = C,
                NLayers = L,
                NHeads = NH,
                NKvHeads = NH,
                DHead = HK,
                DMlp = f,
                MaxPositions = Config.SeqLen,
                NormEps = Config.NormEps,
                Norm = NormKind.LayerNorm,
                Activation = ActivationFunction.GeluTanh,
                GatedMlp = false,
                Positions = PositionKind.Learned,
                TiedEmbeddings = Config.TiedEmbeddings || _oneHot,
                QkvBias = true,
                OutputBias = true,
                MlpBias = true,
            }
            : new ModelConfig
            {
                ModelType = "llama",
                Family = ArchitectureFamily.Llama,
                VocabSize = V,
                DModel = C,
                NLayers = L,
                NHeads = NH,
                NKvHeads = NKV,
                DHead = HK,
                DMlp = f,
                MaxPositions = Config.SeqLen,
                NormEps = Config.NormEps,
                Norm = NormKind.RmsNorm,
                Activation = ActivationFunction.Silu,
                GatedMlp = true,
                Positions = PositionKind.Rotary,
                TiedEmbeddings = Config.TiedEmbeddings || _oneHot,
                RopeTheta = Config.RopeTheta,
                RotaryDims = HK,
            };
        return Config.SharedGroups is { } groups ? config with { SharedAttention = new SharedAttention(groups) } : config;
    }

    /// <summary>The weights in the canonical layout (x·W, per head), ready to build an engine model or write a checkpoint.</summary>
    public CanonicalWeights ToCanonical()
    {
        var c = ToModelConfig();
        // absent parameters of an exactly expressible option: biases 0, positions 0, one-hot embedding = identity
        float[] Get(string name) => _byName.ContainsKey(name) ? Param(name).ToArray() : name switch
        {
            "wte" => (float[])_eye.Clone(),
            "wpe" => new float[Config.SeqLen * C],
            _ when name.EndsWith(".b_qkv", StringComparison.Ordinal) => new float[QKV],
            _ when name.EndsWith(".b_in", StringComparison.Ordinal) => new float[F],
            _ when name.EndsWith(".b_o", StringComparison.Ordinal) || name.EndsWith(".b_out", StringComparison.Ordinal) => new float[C],
            _ => throw new InvalidOperationException($"export: no parameter '{name}'"),
        };
        // LayerNorm (GPT-2) has a bias, RMSNorm (Llama) none; an attention-only block's MLP norm is the identity's γ = 1
        NormWeights Norm(string name) => new(c.Norm, Get(name + ".weight"), _gpt2 ? Get(name + ".bias") : null, c.NormEps);
        NormWeights Identity() => new(c.Norm, CanonicalWeights.Ones(C), _gpt2 ? new float[C] : null, c.NormEps);
        bool symmetric = Config.AttentionVariant == AttentionVariants.SymmetricQk;
        var layers = new LayerWeights[L];
        for (int l = 0; l < L; l++)
        {
            string q = $"blocks.{l}.";
            // w_qkv ((NH + 2·NKV)·HD, C), nn.Linear, rows q | k | v (low_rank: the exact product W_up·W_down); w_o (C, NH·HD)
            ReadOnlySpan<float> w = QkvWeights(_blocks[l]);
            var b = _gpt2 ? Get(q + "attn.b_qkv") : null;
            int qk = QK, qkv = QKV;
            if (_rf)
            {
                // random_features: the frozen W_Q | W_K above the trained v rows, zero q/k biases
                var full = new float[(RF + NKV * HD) * C];
                _frozenQk[l].CopyTo(full, 0);
                w.CopyTo(full.AsSpan(RF * C));
                w = full;
                if (b is not null) b = [.. new float[RF], .. b];
                qk = RF;
                qkv = RF + NKV * HD;
            }
            var attn = Config.AttentionVariant == AttentionVariants.CollapsedQk ? CollapsedAttention(w, b, Param(q + "attn.w_o"), _gpt2 ? Get(q + "attn.b_o") : null) : new AttentionWeights(NH, NKV, C, HD,
                ReadHeads(w, WeightLayout.OutIn, qkv, NH, 0, HD, C, HD),
                // symmetric_qk: W_K = W_Q, the q rows read twice
                ReadHeads(w, WeightLayout.OutIn, qkv, NKV, symmetric ? 0 : NH * HD, HD, C, HD),
                ReadHeads(w, WeightLayout.OutIn, qkv, NKV, qk, HD, C, HD),
                Transposed(Param(q + "attn.w_o"), C, NH * HD),
                b?[..(NH * HD)], symmetric ? b?[..(NH * HD)] : b?[(NH * HD)..qk], b?[qk..qkv], _gpt2 ? Get(q + "attn.b_o") : null);
            if (Config.AttentionOnly)
            {
                layers[l] = new LayerWeights(Norm(q + "ln1"), attn, Identity(), MlpWeights.Zero(c)); // width 1, output exactly 0
                continue;
            }
            // w_in / w_gate / w_up (F, C) and w_out (C, F), nn.Linear
            var mlp = _gpt2
                ? new MlpWeights(Transposed(Param(q + "mlp.w_in"), F, C), Get(q + "mlp.b_in"), null, null,
                    Transposed(Param(q + "mlp.w_out"), C, F), Get(q + "mlp.b_out"))
                : new MlpWeights(Transposed(Param(q + "mlp.w_up"), F, C), null, Transposed(Param(q + "mlp.w_gate"), F, C), null,
                    Transposed(Param(q + "mlp.w_out"), C, F), null);
            layers[l] = new LayerWeights(Norm(q + "ln1"), attn, Norm(q + "ln2"), mlp);
        }
        return new CanonicalWeights(c, Get("wte"), _gpt2 ? Get("wpe") : null, layers, Norm("ln_f"),
            Config.TiedEmbeddings || _oneHot ? null : Get("w_u"));
    }

    // collapsed_qk as ordinary attention of head size C: W_Q,h = W_QK,h, W_K,h = I (b_k = 0), W_V,h and W_O,h zero-padded
    // from HD to C (a padded value dimension carries 0 and W_O ignores it), so scores and outputs are exactly the trainer's.
    private AttentionWeights CollapsedAttention(ReadOnlySpan<float> w, float[]? b, ReadOnlySpan<float> wo, float[]? bo)
    {
        var wq = ReadHeads(w, WeightLayout.OutIn, QKV, NH, 0, C, C, C);
        var wk = new float[NH * C * C];
        var wv = new float[NH * C * C];
        var woPadded = new float[NH * C * C];
        for (int h = 0; h < NH; h++)
        {
            for (int c = 0; c < C; c++)
            {
                wk[(h * C + c) * C + c] = 1f;
                for (int d = 0; d < HD; d++)
                {
                    wv[(h * C + c) * C + d] = w[(QK + h * HD + d) * C + c];
                    // canonical W_O rows are (head, value dim), columns the residual channel; w_o is (C, NH·HD)
                    woPadded[(h * C + d) * C + c] = wo[c * NH * HD + h * HD + d];
                }
            }
        }
        float[]? bv = null;
        if (b is not null)
        {
            bv = new float[NH * C];
            for (int h = 0; h < NH; h++)
                for (int d = 0; d < HD; d++) bv[h * C + d] = b[QK + h * HD + d];
        }
        return new AttentionWeights(NH, NH, C, C, wq, wk, wv, woPadded, b?[..QK], b is null ? null : new float[NH * C], bv, bo);
    }

    /// <summary>The weights under their Hugging Face names, in the order the family writes them.</summary>
    public IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> ToHfTensors() => ToCanonical().ToCheckpointTensors();

    /// <summary>Writes config.json + model.safetensors (float32) into <paramref name="dir"/>, each file atomically.</summary>
    public void SaveHf(string dir) => ToCanonical().SaveHf(dir);
}
