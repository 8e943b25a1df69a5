using Headwise.Compute;

namespace Headwise.Loading;

/// <summary>The architecture families the engine implements; each has one file in Models/.</summary>
public enum ArchitectureFamily
{
    /// <summary>GPT-2: learned positions, LayerNorm, fused Conv1D q|k|v, GELU (tanh).</summary>
    Gpt2,
    /// <summary>Llama, Mistral, Qwen2, llama2.c: RoPE, RMSNorm, SwiGLU, grouped-query attention.</summary>
    Llama,
    /// <summary>GPT-NeoX / Pythia: partial RoPE, LayerNorm, fused per-head q|k|v, parallel or sequential residual.</summary>
    GptNeoX,
}

/// <summary>
/// Everything the forward pass needs to know about a model, normalised from a Hugging Face <c>config.json</c> or a llama2.c header.
/// Names follow TransformerLens' <c>HookedTransformerConfig</c> where one exists.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The <c>model_type</c> as written in config.json ("gpt2", "llama", "mistral", "qwen2", "gpt_neox"), or "llama2c".</summary>
    public required string ModelType { get; init; }
    public required ArchitectureFamily Family { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>d_model: residual stream width.</summary>
    public required int DModel { get; init; }
    public required int NLayers { get; init; }
    /// <summary>Query heads.</summary>
    public required int NHeads { get; init; }
    /// <summary>Key/value heads (= NHeads without grouped-query attention).</summary>
    public required int NKvHeads { get; init; }
    public required int DHead { get; init; }
    /// <summary>d_mlp: hidden width of the MLP.</summary>
    public required int DMlp { get; init; }
    /// <summary>n_ctx: the longest sequence the model accepts.</summary>
    public required int MaxPositions { get; init; }
    public required float NormEps { get; init; }
    /// <summary>"gelu_new" (tanh), "gelu" (erf), "silu" (SwiGLU when gated).</summary>
    public required string Activation { get; init; }
    public bool TiedEmbeddings { get; init; }
    public double RopeTheta { get; init; } = 10000;
    /// <summary>How many dims of each head RoPE rotates (GPT-NeoX rotary_pct); 0 = no RoPE.</summary>
    public int RotaryDims { get; init; }
    public RopeLayout RopeLayout { get; init; } = RopeLayout.RotateHalf;
    /// <summary>GPT-NeoX use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)).</summary>
    public bool ParallelResidual { get; init; }
    public bool QkvBias { get; init; }
    public bool OutputBias { get; init; }
    public bool MlpBias { get; init; }
    /// <summary>Keys older than this many positions are not attended (Mistral); 0 = unlimited.</summary>
    public int SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    /// <summary>The dtype the checkpoint stores (computation is always float32).</summary>
    public TensorDType StoredDType { get; init; } = TensorDType.F32;

    public int KvGroupSize => NHeads / NKvHeads;

    /// <summary>Parameter count implied by the shapes (embeddings counted once when tied).</summary>
    public long ParameterCount
    {
        get
        {
            long C = DModel, L = NLayers, V = VocabSize, qd = (long)NHeads * DHead, kvd = (long)NKvHeads * DHead;
            long attn = C * qd + 2 * C * kvd + qd * C + (QkvBias ? qd + 2 * kvd : 0) + (OutputBias ? C : 0);
            bool gated = Family == ArchitectureFamily.Llama;
            long mlp = (gated ? 3 : 2) * C * DMlp + (MlpBias ? DMlp + C : 0);
            long norms = Family == ArchitectureFamily.Llama ? 2 * C : 4 * C;
            long embed = V * C + (Family == ArchitectureFamily.Gpt2 ? (long)MaxPositions * C : 0);
            long head = TiedEmbeddings ? 0 : V * C;
            long finalNorm = Family == ArchitectureFamily.Llama ? C : 2 * C;
            return embed + L * (attn + mlp + norms) + finalNorm + head;
        }
    }

    /// <summary>Checks the invariants every forward relies on; throws naming <paramref name="source"/>.</summary>
    public void Validate(string source)
    {
        void Need(bool ok, string what)
        {
            if (!ok)
            {
                throw new ModelFormatException($"{source}: {what}");
            }
        }
        Need(VocabSize > 0, $"vocab_size must be positive (got {VocabSize})");
        Need(DModel > 0 && NLayers > 0 && NHeads > 0 && DHead > 0 && DMlp > 0, "hidden size, layers, heads, head size and MLP size must be positive");
        Need(NKvHeads > 0 && NHeads % NKvHeads == 0, $"num_attention_heads ({NHeads}) must be a multiple of num_key_value_heads ({NKvHeads})");
        Need(MaxPositions > 0, "the maximum sequence length must be positive");
        Need(RotaryDims % 2 == 0 && RotaryDims <= DHead, $"rotary dims ({RotaryDims}) must be even and at most the head size ({DHead})");
        Need(NormEps > 0 && float.IsFinite(NormEps), "the norm epsilon must be a positive number");
    }
}
