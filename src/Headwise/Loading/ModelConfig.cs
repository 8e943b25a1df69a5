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
    /// <summary>DeepSeek-V3 (dense layers): multi-head latent attention (<see cref="MlaDims"/>), RMSNorm, RoPE on a shared key, SwiGLU.</summary>
    DeepseekV3,
    /// <summary>Vision Transformer (HF ViTModel / ViTForImageClassification): patch embedding, CLS token, learned positions,
    /// pre-LayerNorm blocks, bidirectional attention, classifier on the CLS.</summary>
    Vit,
}

/// <summary>
/// Multi-head latent attention (DeepSeek-V2/V3, HF <c>DeepseekV3Attention</c>): keys and values of every head are read from one
/// normalised latent of <see cref="KvLoraRank"/> floats per token plus one rotary key of <see cref="QkRopeHeadDim"/> floats shared
/// by all heads. Query and key heads are <see cref="QkHeadDim"/> wide ([nope | rope]); value heads (and hook_z) are
/// <see cref="ModelConfig.DHead"/> = v_head_dim wide.
/// </summary>
/// <param name="QLoraRank">q_lora_rank: the query's low-rank width (q_a_proj → q_a_layernorm → q_b_proj), or 0 for one q_proj.</param>
/// <param name="KvLoraRank">kv_lora_rank: the latent's width.</param>
/// <param name="QkNopeHeadDim">qk_nope_head_dim: the non-rotary part of each query and key head.</param>
/// <param name="QkRopeHeadDim">qk_rope_head_dim: the rotary part (= <see cref="ModelConfig.RotaryDims"/>).</param>
public sealed record MlaDims(int QLoraRank, int KvLoraRank, int QkNopeHeadDim, int QkRopeHeadDim)
{
    /// <summary>qk_head_dim = qk_nope_head_dim + qk_rope_head_dim: the width of hook_q / hook_k heads.</summary>
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

    /// <summary>Headwise's own MLA layout (config.json's <c>headwise_mla</c> block, written by <c>convert mla</c>): what a
    /// converted model needs beyond stock DeepSeek-V3 to be exact; null for a stock checkpoint.</summary>
    public HeadwiseMla? Headwise { get; init; }
}

/// <summary>
/// What <c>headwise convert mla --format headwise</c> adds to a deepseek_v3 config so the conversion of a grouped-query model is
/// exact (docs/restructure.md): the source's score scale, no kv_a_layernorm, a bias on q_proj, and the source's RoPE frequency
/// for each rotary pair of the shared key.
/// </summary>
/// <param name="AttentionScale">The score scale (the source's 1/√d_head), instead of DeepSeek's qk_head_dim^-½.</param>
/// <param name="LatentNorm">false: the latent goes to kv_b_proj as it is (no kv_a_layernorm tensor).</param>
/// <param name="QueryBias">q_proj has a bias (Qwen2's, or Llama's attention_bias).</param>
/// <param name="RopeFrequencies">Per rotary pair i (dims 2i, 2i + 1 of the rotary part; interleaved layout), the index f of its
/// frequency θ^(−2f/<paramref name="RopeSourceDims"/>) in the source model's table.</param>
/// <param name="RopeSourceDims">The source model's rotary dims per head.</param>
public sealed record HeadwiseMla(float AttentionScale, bool LatentNorm, bool QueryBias, int[] RopeFrequencies, int RopeSourceDims);

/// <summary>
/// Cross-layer attention sharing [EchoAtt] (config.json's <c>headwise_shared_attention</c> block, written by <c>convert
/// share-attention</c>; docs/restructure.md): in each group of consecutive-or-not ascending layers, the first layer computes its
/// attention pattern as usual and every later layer of the group reuses that pattern with its own values and output projection.
/// A later ("shared") layer has no query or key projection and caches no keys.
/// </summary>
/// <param name="Groups">The groups, each ascending layer indices, the first being the layer whose pattern the others read.</param>
public sealed record SharedAttention(int[][] Groups)
{
    /// <summary>The layer whose pattern <paramref name="layer"/> reads: itself unless it is a later layer of a group.</summary>
    public int SourceOf(int layer)
    {
        foreach (var g in Groups)
        {
            if (Array.IndexOf(g, layer) > 0)
            {
                return g[0];
            }
        }
        return layer;
    }

    /// <summary>The layers that reuse another layer's pattern (every group's later layers).</summary>
    public IEnumerable<int> SharedLayers => Groups.SelectMany(g => g.Skip(1));

    /// <summary>Why <paramref name="groups"/> cannot be a model of <paramref name="layers"/> layers' groups, in one line naming the
    /// group; null when they can (each group non-empty, ascending, inside 0 .. layers − 1; no layer in two groups).</summary>
    public static string? Problem(IReadOnlyList<int[]> groups, int layers)
    {
        var seen = new HashSet<int>();
        foreach (var g in groups)
        {
            // a range as --groups spells it ("4-5"), else the list
            string name = g.Length == 1 ? $"{g[0]}" : g[^1] - g[0] == g.Length - 1 && g.Order().SequenceEqual(g) ? $"{g[0]}-{g[^1]}" : $"[{string.Join(", ", g)}]";
            if (g.Length == 0)
            {
                return "a group has no layers";
            }
            if (g.Any(l => l < 0 || l >= layers))
            {
                return $"group {name}: layers must be 0 to {layers - 1} (the model has {layers})";
            }
            for (int i = 1; i < g.Length; i++)
            {
                if (g[i] <= g[i - 1])
                {
                    return $"group {name}: layers must ascend (the first one's pattern is reused by the later ones)";
                }
            }
            foreach (int l in g)
            {
                if (!seen.Add(l))
                {
                    return $"group {name}: layer {l} is already in another group";
                }
            }
        }
        return null;
    }
}

/// <summary>
/// Per-layer head counts (config.json's <c>headwise_heads</c> block, written by <c>convert prune --format headwise</c>;
/// docs/restructure.md): layer L has <c>QueryHeads[L]</c> query heads and <c>KvHeads[L]</c> key/value heads, numbered from 0
/// in each layer, every kv head serving the same <see cref="ModelConfig.KvGroupSize"/> query heads as in the source. Its
/// q/k/v and output projections, its hooks and its KV cache have that many heads: fewer parameters, FLOPs and cache bytes.
/// </summary>
/// <param name="QueryHeads">Per layer: query heads (1 .. the config's NHeads).</param>
/// <param name="KvHeads">Per layer: key/value heads (QueryHeads / KvGroupSize).</param>
/// <param name="Kept">Per layer: the source model's query heads this layer's heads are, ascending (what was not pruned).</param>
public sealed record LayerHeads(int[] QueryHeads, int[] KvHeads, int[][] Kept)
{
    /// <summary>Why these counts cannot be a model of <paramref name="c"/>'s layers and heads, in one line; null when they can.</summary>
    public string? Problem(ModelConfig c)
    {
        if (QueryHeads.Length != c.NLayers || KvHeads.Length != c.NLayers || Kept.Length != c.NLayers)
        {
            return $"query_heads, kv_heads and kept need one entry per layer ({c.NLayers})";
        }
        for (int l = 0; l < c.NLayers; l++)
        {
            int q = QueryHeads[l], kv = KvHeads[l];
            if (q < 1 || q > c.NHeads || kv < 1 || q != kv * c.KvGroupSize)
            {
                return $"layer {l}: {q} query heads and {kv} kv heads; a layer has 1 to {c.NHeads} query heads, {c.KvGroupSize} per kv head";
            }
            // whole groups, ascending: the i-th kept head is member i mod G of its group, right after member i − 1
            int G = c.KvGroupSize;
            var k = Kept[l];
            if (k.Length != q || k.Any(h => h < 0 || h >= c.NHeads) || k.Zip(k.Skip(1)).Any(p => p.Second <= p.First)
                || Enumerable.Range(0, q).Any(i => k[i] % G != i % G || (i % G != 0 && k[i] != k[i - 1] + 1)))
            {
                return $"layer {l}: kept must list its {q} source heads ascending, each 0 to {c.NHeads - 1}, in whole groups of {G}";
            }
        }
        return null;
    }
}

/// <summary>How a block normalises the residual stream before reading it.</summary>
public enum NormKind
{
    /// <summary>(x − mean) / √(var + ε) · w + b (GPT-2, GPT-NeoX).</summary>
    LayerNorm,
    /// <summary>x / √(mean(x²) + ε) · w (Llama).</summary>
    RmsNorm,
}

/// <summary>The MLP non-linearity.</summary>
public enum ActivationFunction
{
    /// <summary>GELU, tanh approximation (HF "gelu_new").</summary>
    GeluTanh,
    /// <summary>GELU, exact erf form (HF "gelu").</summary>
    GeluErf,
    /// <summary>SiLU x·σ(x) (HF "silu"); with a gated MLP, SwiGLU.</summary>
    Silu,
}

/// <summary>How token positions enter the model.</summary>
public enum PositionKind
{
    /// <summary>A learned position embedding added to the token embedding (GPT-2).</summary>
    Learned,
    /// <summary>RoPE on the first <see cref="ModelConfig.RotaryDims"/> of every query and key head.</summary>
    Rotary,
    /// <summary>No position information (causal masking alone).</summary>
    None,
}

public static class ActivationFunctionNames
{
    /// <summary>The Hugging Face config name: "gelu_new", "gelu" or "silu".</summary>
    public static string HfName(this ActivationFunction f) => f switch
    {
        ActivationFunction.GeluTanh => "gelu_new",
        ActivationFunction.GeluErf => "gelu",
        _ => "silu",
    };
}

/// <summary>
/// Everything the forward pass needs to know about a model, normalised from a Hugging Face <c>config.json</c> or a llama2.c header.
/// Names follow TransformerLens' <c>HookedTransformerConfig</c> where one exists.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The <c>model_type</c> as written in config.json ("gpt2", "llama", "mistral", "qwen2", "gpt_neox"), or "llama2c".</summary>
    public required string ModelType { get; init; }
    /// <summary>Which file of Models/ implements the forward and names the tensors; behaviour outside Models/ and Loading/ reads
    /// the traits below instead.</summary>
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
    public required NormKind Norm { get; init; }
    public required ActivationFunction Activation { get; init; }
    /// <summary>act(x·W_gate) ⊙ (x·W_in) (SwiGLU) instead of act(x·W_in).</summary>
    public required bool GatedMlp { get; init; }
    public required PositionKind Positions { get; init; }
    /// <summary>The activation's Hugging Face name ("gelu_new", "gelu", "silu"), as config.json and <c>info</c> write it.</summary>
    public string ActivationName => Activation.HfName();
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
    /// <summary>Multi-head latent attention's widths (<see cref="ArchitectureFamily.DeepseekV3"/>), else null. DHead is then
    /// v_head_dim and RotaryDims qk_rope_head_dim.</summary>
    public MlaDims? Mla { get; init; }
    /// <summary>Layers that reuse an earlier layer's attention pattern (<c>headwise_shared_attention</c>), else null.</summary>
    public SharedAttention? SharedAttention { get; init; }
    /// <summary>Per-layer head counts of a pruned model (<c>headwise_heads</c>), else null: every layer has
    /// <see cref="NHeads"/> and <see cref="NKvHeads"/> (which are then the most a layer has).</summary>
    public LayerHeads? LayerHeads { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    /// <summary>Every position attends to every other (ViT); false = causal masking (language models).</summary>
    public bool Bidirectional { get; init; }
    /// <summary>The image side of a vision model (patch size, channels, labels); null for a model that reads token ids.</summary>
    public VisionConfig? Vision { get; init; }
    /// <summary>The dtype the checkpoint stores (computation is always float32).</summary>
    public TensorDType StoredDType { get; init; } = TensorDType.F32;

    public int KvGroupSize => NHeads / NKvHeads;

    /// <summary>Query heads of layer <paramref name="layer"/>: <see cref="NHeads"/> unless the model is pruned per layer.</summary>
    public int HeadsIn(int layer) => LayerHeads?.QueryHeads[layer] ?? NHeads;

    /// <summary>Key/value heads of layer <paramref name="layer"/>: <see cref="NKvHeads"/> unless the model is pruned per layer.</summary>
    public int KvHeadsIn(int layer) => LayerHeads?.KvHeads[layer] ?? NKvHeads;

    /// <summary>Refuses, in one line naming <paramref name="what"/>, a model whose layers have different head counts: for the
    /// analyses that index every layer's heads 0 .. NH − 1 alike.</summary>
    public void RequireUniformHeads(string what)
    {
        if (LayerHeads is { } h)
        {
            throw new InvalidInputException($"{what} needs the same heads in every layer; this model was pruned per layer "
                + $"({string.Join(", ", h.QueryHeads)} heads): run it on the model before pruning, or on `convert prune --format hf`'s zeroed heads");
        }
    }

    /// <summary>Parameter count implied by the shapes (embeddings counted once when tied).</summary>
    public long ParameterCount
    {
        get
        {
            long C = DModel, L = NLayers, V = VocabSize, qd = (long)NHeads * DHead, kvd = (long)NKvHeads * DHead;
            long attn = Mla is { } m ? MlaAttentionParameters(m) : C * qd + 2 * C * kvd + qd * C + (QkvBias ? qd + 2 * kvd : 0) + (OutputBias ? C : 0);
            // a layer pruned per layer lacks (NH − NH_L) query heads' q and o projections and (NKV − NKV_L) kv heads' k and v
            long pruned = 0;
            for (int l = 0; l < L && LayerHeads is not null; l++)
            {
                long q = (long)(NHeads - HeadsIn(l)) * DHead, kv = (long)(NKvHeads - KvHeadsIn(l)) * DHead;
                pruned += 2 * C * q + 2 * C * kv + (QkvBias ? q + 2 * kv : 0);
            }
            long mlp = (GatedMlp ? 3 : 2) * C * DMlp + (MlpBias ? (GatedMlp ? 2 : 1) * DMlp + C : 0);
            long norm = Norm == NormKind.LayerNorm ? 2 * C : C; // weight, and a bias for LayerNorm
            long embed = V * C + (Positions == PositionKind.Learned ? (long)MaxPositions * C : 0);
            long head = TiedEmbeddings ? 0 : V * C;
            if (Vision is { } v)
            {
                // patch embedding: a conv (C, channels, P, P) with a bias; the CLS token; a position per patch and the CLS;
                // the classifier (labels, C) with a bias, when the checkpoint has one
                embed = C * v.Channels * v.PatchSize * v.PatchSize + C + C + (long)MaxPositions * C;
                head = v.HasClassifier ? V * C + V : 0;
            }
            // a shared layer has no query or key projection
            long sharedQk = (SharedAttention?.SharedLayers.Count() ?? 0) * (C * (qd + kvd) + (QkvBias ? qd + kvd : 0));
            return embed + L * (attn + mlp + 2 * norm) - sharedQk - pruned + norm + head;
        }
    }

    // q_proj, or q_a_proj (+ bias) → q_a_layernorm → q_b_proj; kv_a_proj_with_mqa (+ bias), kv_a_layernorm, kv_b_proj; o_proj (+ bias)
    private long MlaAttentionParameters(MlaDims m)
    {
        long C = DModel, NH = NHeads, QR = m.QLoraRank, R = m.KvLoraRank, ROPE = m.QkRopeHeadDim;
        long q = QR > 0 ? C * QR + (QkvBias ? QR : 0) + QR + QR * NH * m.QkHeadDim : C * NH * m.QkHeadDim + (m.Headwise?.QueryBias == true ? NH * m.QkHeadDim : 0);
        long latentNorm = m.Headwise?.LatentNorm == false ? 0 : R;
        long kv = C * (R + ROPE) + (QkvBias ? R + ROPE : 0) + latentNorm + R * NH * (m.QkNopeHeadDim + DHead);
        return q + kv + NH * DHead * C + (OutputBias ? C : 0);
    }

    /// <summary>
    /// Checks the invariants every forward relies on; throws <see cref="ModelFormatException"/> naming <paramref name="source"/>
    /// and the offending field as the source spells it (<paramref name="fields"/>; the engine's own names when null).
    /// </summary>
    public void Validate(string source, ConfigFieldNames? fields = null)
    {
        var f = fields ?? ConfigFieldNames.Engine;
        void Need(bool ok, string what)
        {
            if (!ok)
            {
                throw new ModelFormatException($"{source}: {what}");
            }
        }
        void Positive(int value, string field) => Need(value > 0, $"{field} must be positive (got {value})");
        Positive(VocabSize, f.VocabSize);
        Positive(DModel, f.DModel);
        Positive(NLayers, f.NLayers);
        Positive(NHeads, f.NHeads);
        Positive(NKvHeads, f.NKvHeads);
        Positive(DMlp, f.DMlp);
        Positive(MaxPositions, f.MaxPositions);
        if (f.DHeadFromWidth)
        {
            // d_head = d_model / heads: a remainder would leave part of the residual stream unread
            Need(DModel % NHeads == 0, $"{f.DModel} ({DModel}) must be a multiple of {f.NHeads} ({NHeads})");
        }
        Positive(DHead, f.DHead);
        Need(NHeads % NKvHeads == 0, $"{f.NHeads} ({NHeads}) must be a multiple of {f.NKvHeads} ({NKvHeads})");
        int rotatedHead = Mla?.QkHeadDim ?? DHead; // MLA rotates the query/key heads, which are wider or narrower than the value heads
        Need(RotaryDims >= 0 && RotaryDims % 2 == 0 && RotaryDims <= rotatedHead,
            $"{f.RotaryDims} gives {RotaryDims} rotary dims; they must be even, 0 or more, and at most the head size ({rotatedHead})");
        if (Mla is { } m)
        {
            Need(m.QLoraRank >= 0, $"q_lora_rank must be null or positive (got {m.QLoraRank})");
            Positive(m.KvLoraRank, "kv_lora_rank");
            Need(m.QkNopeHeadDim >= 0, $"qk_nope_head_dim must be 0 or more (got {m.QkNopeHeadDim})");
            Need(m.QkRopeHeadDim == RotaryDims, $"qk_rope_head_dim ({m.QkRopeHeadDim}) must equal the rotary dims ({RotaryDims})");
            Need(NKvHeads == NHeads, $"{f.NKvHeads} ({NKvHeads}) must equal {f.NHeads} ({NHeads}): every MLA head reads its own key and value from the latent");
            if (m.Headwise is { } hw)
            {
                Need(hw.AttentionScale > 0 && float.IsFinite(hw.AttentionScale), $"headwise_mla.attention_scale must be a positive number (got {hw.AttentionScale})");
                Need(hw.RopeFrequencies.Length * 2 == RotaryDims, $"headwise_mla.rope_frequencies has {hw.RopeFrequencies.Length} pairs; qk_rope_head_dim {RotaryDims} needs {RotaryDims / 2}");
                Need(hw.RopeFrequencies.All(i => i >= 0 && 2 * i < hw.RopeSourceDims),
                    $"headwise_mla.rope_frequencies must index the source's {hw.RopeSourceDims / 2} frequencies (rope_source_dims {hw.RopeSourceDims})");
            }
        }
        if (SharedAttention is { } shared)
        {
            Need(Mla is null && Vision is null, "headwise_shared_attention: only GPT-2, the Llama family and GPT-NeoX can share attention between layers");
            string? problem = SharedAttention.Problem(shared.Groups, NLayers);
            Need(problem is null, $"headwise_shared_attention.groups: {problem}");
        }
        if (LayerHeads is { } lh)
        {
            Need(Family is ArchitectureFamily.Gpt2 or ArchitectureFamily.Llama or ArchitectureFamily.GptNeoX && SharedAttention is null,
                "headwise_heads: only GPT-2, the Llama family and GPT-NeoX models without shared attention can have per-layer head counts");
            string? problem = lh.Problem(this);
            Need(problem is null, $"headwise_heads: {problem}");
        }
        Need((Positions == PositionKind.Rotary) == (RotaryDims > 0), $"{f.RotaryDims} gives {RotaryDims} rotary dims, but positions are {Positions}");
        Need(SlidingWindow >= 0, $"{f.SlidingWindow} must be 0 or more (got {SlidingWindow})");
        Need(NormEps > 0 && float.IsFinite(NormEps), $"{f.NormEps} must be a positive number (got {NormEps})");
    }

    /// <summary>A GPT-2-small-shaped config (124M parameters): the shape most interpretability results are stated for.</summary>
    public static ModelConfig Gpt2Small => new()
    {
        ModelType = "gpt2",
        Family = ArchitectureFamily.Gpt2,
        VocabSize = 50257,
        DModel = 768,
        NLayers = 12,
        NHeads = 12,
        NKvHeads = 12,
        DHead = 64,
        DMlp = 3072,
        MaxPositions = 1024,
        NormEps = 1e-5f,
        Norm = NormKind.LayerNorm,
        Activation = ActivationFunction.GeluTanh,
        GatedMlp = false,
        Positions = PositionKind.Learned,
        TiedEmbeddings = true,
        QkvBias = true,
        OutputBias = true,
        MlpBias = true,
        BosTokenId = 50256,
        EosTokenId = 50256,
    };
}

/// <summary>
/// What a vision model reads: square patches of <see cref="PatchSize"/> pixels from <see cref="Channels"/>-channel images
/// of <see cref="ImageSize"/>² pixels (its position table's size; other sizes interpolate the positions), and the class
/// names of its classifier (<c>id2label</c> in id order; empty when the checkpoint has no classifier).
/// </summary>
public sealed record VisionConfig(int ImageSize, int PatchSize, int Channels, IReadOnlyList<string> Labels)
{
    /// <summary>Patches per side of an image of the model's own size.</summary>
    public int GridSize => ImageSize / PatchSize;

    /// <summary>Positions of an image of the model's own size: one per patch, plus the CLS.</summary>
    public int SequenceLength => GridSize * GridSize + 1;

    /// <summary>True when the checkpoint has a classification head (logits over <see cref="Labels"/>).</summary>
    public bool HasClassifier => Labels.Count > 0;
}

/// <summary>
/// What a config source calls the fields <see cref="ModelConfig.Validate"/> checks, so that its messages name the field to fix
/// (config.json's <c>n_head</c> for GPT-2, <c>num_attention_heads</c> for Llama, the llama2.c header's <c>n_heads</c>).
/// </summary>
/// <param name="DHeadFromWidth">True when the source derives d_head = d_model / heads (then heads must divide the width).</param>
public sealed record ConfigFieldNames(string VocabSize, string DModel, string NLayers, string NHeads, string NKvHeads, string DHead,
    string DMlp, string MaxPositions, string NormEps, string RotaryDims, string SlidingWindow, bool DHeadFromWidth)
{
    /// <summary>The engine's own names, for configs built in code.</summary>
    public static readonly ConfigFieldNames Engine = new("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_head",
        "d_mlp", "n_ctx", "norm_eps", "rotary_dims", "sliding_window", DHeadFromWidth: false);
}
