using System.Text.Json.Nodes;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Restructure;

namespace Headwise.Training;

// Import from and export to a deepseek_v3 checkpoint (multi-head latent attention, dense layers): what `convert mla` writes
// (Headwise's layout: its score scale, no kv_a_layernorm, the source's RoPE frequencies) or a stock DeepSeek-V3. Every
// tensor is an nn.Linear or a norm weight in both, so import and export are copies through one table of names, and
// import then export gives back the same tensors, bit for bit. A conversion of GPT-2 keeps GPT-2's block around the latent
// attention (headwise_mla.norm/mlp/positions): it imports as the trainer's GPT-2 architecture with latent attention.
public sealed partial class TrainableTransformer
{
    /// <summary>Null when a deepseek_v3 checkpoint of <paramref name="c"/> can be imported into the trainer, else why not.</summary>
    public static string? MlaImportBlocker(ModelConfig c)
    {
        if (c.Mla is null)
        {
            return $"a {c.ModelType} model has no latent attention";
        }
        if (IsGpt2Block(c))
        {
            return null;
        }
        if (c.ParallelResidual)
        {
            return $"the trainer's blocks add the attention and the MLP one after the other; this {c.ModelType} model (a GPT-NeoX conversion) has a parallel residual";
        }
        if (c.Norm != NormKind.RmsNorm || c.Activation != ActivationFunction.Silu || !c.GatedMlp || c.Positions != PositionKind.Rotary)
        {
            return $"the trainer's latent-attention model has RMSNorm, SwiGLU and RoPE (DeepSeek-V3's block) or LayerNorm, GELU (tanh) and " +
                $"learned positions (GPT-2's); this {c.ModelType} model has {c.Norm}, {c.ActivationName}{(c.GatedMlp ? " gated" : "")}, {c.Positions} positions";
        }
        if (c.SlidingWindow > 0 && c.SlidingWindow < c.MaxPositions)
        {
            return $"the trainer attends to the whole context; this {c.ModelType} model has a sliding window of {c.SlidingWindow}";
        }
        return null;
    }

    // GPT-2's block around the latent attention (what `convert mla` writes from GPT-2): LayerNorm, a GELU (tanh) MLP without a
    // gate, learned positions and no rotary key, a sequential residual
    private static bool IsGpt2Block(ModelConfig c) =>
        c.Norm == NormKind.LayerNorm && c.Activation == ActivationFunction.GeluTanh && !c.GatedMlp && c.Positions == PositionKind.Learned
        && c.Mla!.QkRopeHeadDim == 0 && !c.ParallelResidual;

    /// <summary>
    /// A trainable model holding exactly the weights of <paramref name="model"/>, a deepseek_v3 (MLA) model: its forward gives
    /// the engine's logits (within float rounding) and <see cref="ToMlaCheckpoint"/> writes the same tensors back.
    /// </summary>
    public static TrainableTransformer FromMla(TransformerModel model)
    {
        var c = model.Config;
        if (MlaImportBlocker(c) is string why)
        {
            throw new InvalidInputException($"cannot import into the trainer: {why}");
        }
        var m = c.Mla!;
        var hw = m.Headwise;
        bool gpt2 = IsGpt2Block(c);
        var config = new TrainableConfig
        {
            Architecture = gpt2 ? TrainableArchitecture.Gpt2 : TrainableArchitecture.Llama,
            // GPT-2's block: the MLP's biases (the attention's are attention_bias and q_bias below)
            UseBias = gpt2 && c.MlpBias,
            VocabSize = c.VocabSize,
            DModel = c.DModel,
            NLayers = c.NLayers,
            NHeads = c.NHeads,
            NKvHeads = c.NHeads,
            DHead = c.DHead,
            DMlp = c.DMlp,
            SeqLen = c.MaxPositions,
            NormEps = c.NormEps,
            RopeTheta = c.RopeTheta,
            TiedEmbeddings = c.TiedEmbeddings,
            Mla = new TrainableMla
            {
                QLoraRank = m.QLoraRank,
                KvLoraRank = m.KvLoraRank,
                NopeDim = m.QkNopeHeadDim,
                RopeDim = m.QkRopeHeadDim,
                AttentionScale = hw?.AttentionScale ?? 0,
                LatentNorm = hw?.LatentNorm ?? true,
                QueryBias = m.QLoraRank == 0 && hw?.QueryBias == true,
                AttentionBias = c.QkvBias,
                RopeInterleave = c.RopeLayout == Compute.RopeLayout.Interleaved,
                RopeFrequencies = hw?.RopeFrequencies,
                RopeSourceDims = hw?.RopeSourceDims ?? 0,
            },
        };
        var t = new TrainableTransformer(config);
        foreach (var p in t.Parameters)
        {
            var w = model.Weights.Get(DeepseekV3.TrainerTensorName(p.Name), p.Shape);
            w.Span.CopyTo(t.Param(p.Name));
        }
        return t;
    }

    /// <summary>The model as a deepseek_v3 checkpoint in the layout it was imported from: Headwise's (a <c>headwise_mla</c>
    /// block) or stock DeepSeek-V3. Throws when the model has no latent attention.</summary>
    public MlaCheckpoint ToMlaCheckpoint(int? bosTokenId = 0, int? eosTokenId = 1)
    {
        var m = Config.Mla ?? throw new InvalidInputException("ToMlaCheckpoint: the model has no latent attention (export it with SaveHf)");
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("DeepseekV3ForCausalLM"),
            ["model_type"] = "deepseek_v3",
            ["vocab_size"] = V,
            ["hidden_size"] = C,
            ["intermediate_size"] = F,
            ["num_hidden_layers"] = L,
            ["num_attention_heads"] = NH,
            ["num_key_value_heads"] = NH,
            // every layer dense: no mixture of experts
            ["first_k_dense_replace"] = L,
            ["n_routed_experts"] = 0,
            ["n_shared_experts"] = 0,
            ["q_lora_rank"] = m.QLoraRank > 0 ? m.QLoraRank : null,
            ["kv_lora_rank"] = m.KvLoraRank,
            ["qk_nope_head_dim"] = m.NopeDim,
            ["qk_rope_head_dim"] = m.RopeDim,
            ["v_head_dim"] = HD,
            ["hidden_act"] = _gpt2 ? "gelu_new" : "silu",
            ["max_position_embeddings"] = Config.SeqLen,
            ["rms_norm_eps"] = Config.NormEps,
            ["rope_theta"] = Config.RopeTheta,
            ["rope_scaling"] = null,
            ["rope_interleave"] = m.RopeInterleave,
            ["attention_bias"] = m.AttentionBias,
            ["attention_dropout"] = 0.0,
            ["tie_word_embeddings"] = Config.TiedEmbeddings,
            ["bos_token_id"] = bosTokenId,
            ["eos_token_id"] = eosTokenId,
            ["use_cache"] = true,
            ["torch_dtype"] = "float32",
        };
        if (m.AttentionScale > 0 || !m.LatentNorm || m.QueryBias || m.RopeFrequencies is not null || _gpt2)
        {
            var block = new JsonObject
            {
                ["attention_scale"] = m.Scale,
                ["latent_norm"] = m.LatentNorm,
                ["q_bias"] = m.QueryBias,
                ["rope_frequencies"] = new JsonArray([.. (m.RopeFrequencies ?? [.. Enumerable.Range(0, m.RopeDim / 2)]).Select(f => (JsonNode)f)]),
                ["rope_source_dims"] = m.RopeSourceDims > 0 ? m.RopeSourceDims : m.RopeDim,
            };
            if (_gpt2)
            {
                // GPT-2's block around the attention, as `convert mla` writes it (docs/restructure.md)
                block["norm"] = "layer_norm";
                block["mlp"] = "gelu_new";
                block["mlp_bias"] = _bias;
                block["positions"] = "learned";
                block["parallel_residual"] = false;
            }
            config["headwise_mla"] = block;
        }
        var tensors = _params.Select(p => (DeepseekV3.TrainerTensorName(p.Name), (int[])p.Shape.Clone(), Param(p.Name).ToArray())).ToList();
        return new MlaCheckpoint(config, tensors);
    }
}
