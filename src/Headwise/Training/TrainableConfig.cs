using System.Text.Json;
using System.Text.Json.Serialization;

namespace Headwise.Training;

/// <summary>The two families a <see cref="TrainableTransformer"/> builds.</summary>
public enum TrainableArchitecture
{
    /// <summary>GPT-2: LayerNorm, learned positions, GELU (tanh) MLP, biases everywhere.</summary>
    Gpt2,
    /// <summary>Llama: RMSNorm, RoPE (rotate-half), SwiGLU MLP, grouped-query attention, no biases.</summary>
    Llama,
}

/// <summary>
/// The shape and options of a trainable model. Zero means "derive": NKvHeads = NHeads, DHead = DModel / NHeads,
/// DMlp = 4·DModel. Options for toy models: <see cref="AttentionOnly"/> (no MLP), <see cref="CombinedOV"/> (one
/// d_model × d_model output-value matrix per head instead of W_O·W_V), <see cref="UseNorm"/> = false (no LayerNorm/RMSNorm),
/// <see cref="UseBias"/> = false (GPT-2 without linear biases), <see cref="UsePositions"/> = false (no learned positions / no
/// RoPE), <see cref="OneHotEmbeddings"/> (fixed identity embedding and unembedding; only the blocks train).
/// </summary>
public sealed record TrainableConfig
{
    [JsonConverter(typeof(JsonStringEnumConverter<TrainableArchitecture>))]
    public TrainableArchitecture Architecture { get; init; } = TrainableArchitecture.Gpt2;
    public required int VocabSize { get; init; }
    public required int DModel { get; init; }
    public required int NLayers { get; init; }
    public required int NHeads { get; init; }
    /// <summary>Context length: learned positions for GPT-2, RoPE table size for Llama.</summary>
    public required int SeqLen { get; init; }
    public int NKvHeads { get; init; }
    public int DHead { get; init; }
    public int DMlp { get; init; }
    public float NormEps { get; init; } = 1e-5f;
    public double RopeTheta { get; init; } = 10000;
    public bool TiedEmbeddings { get; init; } = true;
    public bool AttentionOnly { get; init; }
    /// <summary>Each head has one W_OV (C × C): result_h = A_h · (x W_OVᵀ), instead of W_O (C × NH·HD) and W_V (NKV·HD × C).</summary>
    public bool CombinedOV { get; init; }
    public bool UseNorm { get; init; } = true;
    /// <summary>GPT-2 only: biases on the q/k/v, output and MLP projections (LayerNorm keeps its bias). Llama has none. With
    /// latent attention (<see cref="Mla"/>) the MLP's only: the attention's biases are <see cref="TrainableMla"/>'s.</summary>
    public bool UseBias { get; init; } = true;
    /// <summary>Position information: learned positions (GPT-2) or RoPE (Llama). False: none (attention sees no order but the causal mask).</summary>
    public bool UsePositions { get; init; } = true;
    /// <summary>Fixed, untrained one-hot embedding and unembedding (needs d_model = vocab): x₀ = e_token, logits = x_L.</summary>
    public bool OneHotEmbeddings { get; init; }
    /// <summary>Standard deviation of the initial weights; residual output projections get InitStd / √(2·NLayers) when
    /// <see cref="ScaleResidualInit"/>.</summary>
    public float InitStd { get; init; } = 0.02f;
    /// <summary>GPT-2's scaled init of the residual output projections (attn.w_o, attn.w_ov, mlp.w_out); false: every
    /// matrix N(0, InitStd).</summary>
    public bool ScaleResidualInit { get; init; } = true;
    /// <summary>The attention of every block (docs/variants.md): softmax (standard), symmetric_qk, collapsed_qk, moh, linear,
    /// sinkhorn, affine_scaled, gaussian, low_rank, relative_conv, random_features, dynamic_mask, tensor. Checkpoints written
    /// before variants existed have none, which reads as softmax.</summary>
    public string AttentionVariant { get; init; } = AttentionVariants.Softmax;
    /// <summary>moh: always-on shared heads (heads 0 .. S−1); −1 = derive: NH / 4.</summary>
    public int MohShared { get; init; } = -1;
    /// <summary>moh: routed heads active per token (top-k among the NH − S routed heads); 0 = derive: half the routed heads, rounded up.</summary>
    public int MohActive { get; init; }
    /// <summary>sinkhorn: alternating row/column normalisations before the final row normalisation.</summary>
    public int SinkhornIters { get; init; } = 3;
    /// <summary>low_rank: rank R of the shared factor W_down (R × C) of the q/k/v projections; 0 = derive: max(1, C / 4).</summary>
    public int LowRank { get; init; }
    /// <summary>relative_conv: taps of the causal depth-wise convolution of q, k, v along time.</summary>
    public int ConvKernel { get; init; } = 3;
    /// <summary>random_features: the seed of the frozen random W_Q, W_K (`headwise train` uses its --seed).</summary>
    public int FeatureSeed { get; init; }
    /// <summary>dynamic_mask: keys each query keeps (top-W by the dynamic mask); 0 = derive: half the sequence length, rounded up.</summary>
    public int MaskWindow { get; init; }
    /// <summary>Multi-head latent attention (deepseek_v3, docs/restructure.md) in place of the q/k/v projections, or null.
    /// In a Llama model (DeepSeek-V3's own block), or in a GPT-2 model with no rotary key (what <c>convert mla</c> writes from
    /// GPT-2: its LayerNorm, GELU MLP and learned positions kept); a model gets it by import
    /// (<see cref="TrainableTransformer.FromMla"/>), for healing.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public TrainableMla? Mla { get; init; }
    /// <summary>Cross-layer attention sharing [EchoAtt] (headwise_shared_attention): in each group of ascending layers the later
    /// ones reuse the first one's pattern with their own values and W_O; their q/k rows stay in w_qkv, unused (zero gradient).
    /// Plain softmax attention only; a model gets it by import (<see cref="TrainableTransformer.FromCanonical"/>), for healing.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int[][]? SharedGroups { get; init; }

    [JsonIgnore] public int KvHeads => NKvHeads > 0 ? NKvHeads : NHeads;
    [JsonIgnore] public int HeadSize => DHead > 0 ? DHead : NHeads > 0 ? DModel / NHeads : 0;
    [JsonIgnore] public int MlpWidth => AttentionOnly ? 0 : DMlp > 0 ? DMlp : 4 * DModel;
    [JsonIgnore] public int ValueHeadSize => CombinedOV ? DModel : HeadSize;
    /// <summary>Query/key head size: d_model for collapsed_qk (q_h = x·W_QK,h, k_h = x), else the head size.</summary>
    [JsonIgnore] public int QueryKeySize => AttentionVariant == AttentionVariants.CollapsedQk ? DModel : HeadSize;
    [JsonIgnore] public int SharedHeads => MohShared >= 0 ? MohShared : NHeads / 4;
    /// <summary>dynamic_mask: the keep count W.</summary>
    [JsonIgnore] public int KeptKeys => MaskWindow > 0 ? MaskWindow : (SeqLen + 1) / 2;
    [JsonIgnore] public int ActiveHeads => MohActive > 0 ? MohActive : (NHeads - SharedHeads + 1) / 2;
    [JsonIgnore] public int Rank => LowRank > 0 ? LowRank : Math.Max(1, DModel / 4);

    /// <summary>Throws <see cref="InvalidInputException"/> naming the first impossible setting.</summary>
    public void Validate()
    {
        void Need(bool ok, string what)
        {
            if (!ok) throw new InvalidInputException($"model configuration: {what}");
        }
        Need(VocabSize > 0, $"vocab size must be positive (got {VocabSize})");
        Need(DModel > 0, $"d_model must be positive (got {DModel})");
        Need(NLayers > 0, $"layers must be positive (got {NLayers})");
        Need(NHeads > 0, $"heads must be positive (got {NHeads})");
        Need(SeqLen > 0, $"sequence length must be positive (got {SeqLen})");
        Need(DHead > 0 || DModel % NHeads == 0, $"heads ({NHeads}) do not divide d_model ({DModel}); give --d-head or change --heads");
        Need(NKvHeads >= 0 && NHeads % KvHeads == 0, $"heads ({NHeads}) must be a multiple of key/value heads ({KvHeads})");
        if (SharedGroups is { } groups)
        {
            Need(AttentionVariant == AttentionVariants.Softmax && Mla is null && !CombinedOV, "shared attention needs plain softmax attention");
            Need(Loading.SharedAttention.Problem(groups, NLayers) is null, $"shared attention: {Loading.SharedAttention.Problem(groups, NLayers)}");
        }
        Need(DMlp >= 0 && DHead >= 0, "d_mlp and d_head must not be negative");
        Need(Architecture != TrainableArchitecture.Llama || !UsePositions || Mla is not null || (HeadSize % 2 == 0 && QueryKeySize % 2 == 0), $"RoPE needs an even head size (got {QueryKeySize})");
        Mla?.Validate(this, Need);
        Need(!OneHotEmbeddings || DModel == VocabSize, $"one-hot embeddings need d_model = vocab size (got {DModel} and {VocabSize})");
        Need(NormEps > 0 && float.IsFinite(NormEps), "the norm epsilon must be a positive number");
        Need(InitStd > 0 && float.IsFinite(InitStd), "the init std must be a positive number");
        Need(AttentionVariants.All.Contains(AttentionVariant),
            $"unknown attention variant '{AttentionVariant}' (known: {string.Join(", ", AttentionVariants.All)})");
        Need(AttentionVariant is not (AttentionVariants.SymmetricQk or AttentionVariants.CollapsedQk) || KvHeads == NHeads,
            $"{AttentionVariant} ties keys to queries, so it needs key/value heads = heads (got {KvHeads} and {NHeads})");
        Need(AttentionVariant != AttentionVariants.CollapsedQk || !CombinedOV, "collapsed_qk with a combined W_OV is not supported");
        if (AttentionVariant == AttentionVariants.Moh)
        {
            Need(SharedHeads < NHeads, $"moh shared heads (--moh-shared) {SharedHeads} must be below the head count {NHeads}");
            Need(ActiveHeads >= 1 && ActiveHeads <= NHeads - SharedHeads,
                $"moh active heads (--moh-active) {ActiveHeads} must be between 1 and the {NHeads - SharedHeads} routed heads (heads {NHeads} − shared {SharedHeads})");
        }
        Need(MaskWindow >= 0, $"dynamic mask window (--mask-window) must be at least 1 (got {MaskWindow})");
        Need(AttentionVariant != AttentionVariants.Tensor || SeqLen <= Layers.TensorAttention.MaxSeqLen,
            $"the tensor attention is O(T³): sequence length {SeqLen} is above its limit {Layers.TensorAttention.MaxSeqLen}");
        Need(AttentionVariant != AttentionVariants.Tensor || !CombinedOV, "tensor with a combined W_OV is not supported");
        Need(AttentionVariant != AttentionVariants.RandomFeatures || !CombinedOV, "random_features with a combined W_OV is not supported");
        Need(SinkhornIters >= 0 && SinkhornIters <= 100, $"sinkhorn iterations (--sinkhorn-iters) must be 0–100 (got {SinkhornIters})");
        Need(LowRank >= 0 && (AttentionVariant != AttentionVariants.LowRank || Rank <= DModel),
            $"low_rank rank (--low-rank) {Rank} must be between 1 and d_model {DModel}");
        Need(AttentionVariant != AttentionVariants.RelativeConv || (ConvKernel >= 1 && ConvKernel <= SeqLen),
            $"relative_conv kernel (--conv-kernel) {ConvKernel} must be between 1 and the sequence length {SeqLen}");
    }

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    public static TrainableConfig FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainableConfig>(json, s_json) ?? throw new ModelFormatException($"{source}: empty model configuration");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{source}: not a Headwise training configuration ({e.Message})", e);
        }
    }
}

/// <summary>
/// The widths and options of multi-head latent attention (HF <c>DeepseekV3Attention</c>, and Headwise's own layout that
/// <c>convert mla</c> writes): q = x·W_Qᵀ (+ b_q), or q_b(RMSNorm(q_a(x))) with a query rank; the latent c = x·W_DKVᵀ (R),
/// RMS-normalised when <see cref="LatentNorm"/>; one rotary key k_rot = RoPE(x·W_KRᵀ) (ROPE) shared by all heads; per head
/// k_h = [c·W_UK,hᵀ | k_rot], v_h = c·W_UV,hᵀ; scores (q·k)·scale. The value head size is the config's DHead.
/// </summary>
public sealed record TrainableMla
{
    /// <summary>q_lora_rank QR: 0 for one query projection, else a rank-QR projection → RMSNorm → the query.</summary>
    public int QLoraRank { get; init; }
    /// <summary>kv_lora_rank R: the latent's width.</summary>
    public required int KvLoraRank { get; init; }
    /// <summary>qk_nope_head_dim NOPE: the non-rotary part of each query/key head.</summary>
    public required int NopeDim { get; init; }
    /// <summary>qk_rope_head_dim ROPE: the shared rotary key's width (even).</summary>
    public required int RopeDim { get; init; }
    /// <summary>The score scale; 0 = DeepSeek's (NOPE + ROPE)^-½.</summary>
    public float AttentionScale { get; init; }
    /// <summary>kv_a_layernorm on the latent (stock DeepSeek-V3); false in Headwise's converted layout.</summary>
    public bool LatentNorm { get; init; } = true;
    /// <summary>A bias on the query projection (Headwise's layout: a converted Qwen2's).</summary>
    public bool QueryBias { get; init; }
    /// <summary>attention_bias: biases on the query's rank-QR projection, the latent/rotary-key projection and the output.</summary>
    public bool AttentionBias { get; init; }
    /// <summary>rope_interleave: rotary pairs (2i, 2i + 1); false: (i, i + ROPE/2).</summary>
    public bool RopeInterleave { get; init; } = true;
    /// <summary>Headwise's layout: per rotary pair, its frequency's index in a table of <see cref="RopeSourceDims"/> dims; null = 0, 1, ….</summary>
    public int[]? RopeFrequencies { get; init; }
    /// <summary>The dims of the table <see cref="RopeFrequencies"/> index (0 = ROPE).</summary>
    public int RopeSourceDims { get; init; }

    [JsonIgnore] public int QueryKeySize => NopeDim + RopeDim;
    [JsonIgnore] public float Scale => AttentionScale > 0 ? AttentionScale : 1f / MathF.Sqrt(QueryKeySize);

    internal void Validate(TrainableConfig c, Action<bool, string> need)
    {
        need(c.UsePositions && c.UseNorm && !c.CombinedOV && !c.AttentionOnly && !c.OneHotEmbeddings && c.AttentionVariant == AttentionVariants.Softmax,
            "latent attention (mla) needs a model with positions, norms, an MLP and softmax attention");
        // GPT-2's positions are learned: a converted GPT-2 has no rotary key (qk_rope_head_dim 0)
        need(c.Architecture == TrainableArchitecture.Llama || RopeDim == 0, $"latent attention in a GPT-2 model has learned positions, no rotary key: rope dims must be 0 (got {RopeDim})");
        need(c.KvHeads == c.NHeads, $"latent attention decompresses one key/value head per query head: key/value heads must equal heads (got {c.KvHeads} and {c.NHeads})");
        need(KvLoraRank > 0 && NopeDim >= 0 && RopeDim >= 0 && RopeDim % 2 == 0 && QueryKeySize > 0 && QLoraRank >= 0,
            $"mla widths: kv rank {KvLoraRank} must be positive, nope {NopeDim} and rope {RopeDim} dims not negative (rope even), and their sum positive");
        need(RopeFrequencies is null || (RopeFrequencies.Length == RopeDim / 2 && RopeFrequencies.All(f => f >= 0 && f < Math.Max(RopeSourceDims, RopeDim) / 2)),
            $"mla rope frequencies: {RopeDim / 2} indices below {Math.Max(RopeSourceDims, RopeDim) / 2} expected");
        need(AttentionScale >= 0 && float.IsFinite(AttentionScale), "the mla attention scale must be a positive number (or 0: derive)");
    }
}

/// <summary>The attention variants a <see cref="TrainableTransformer"/> trains (docs/variants.md); each is one file in Training/Layers/.</summary>
public static class AttentionVariants
{
    public const string Softmax = "softmax";
    public const string SymmetricQk = "symmetric_qk";
    public const string CollapsedQk = "collapsed_qk";
    public const string Moh = "moh";
    public const string Linear = "linear";
    public const string Sinkhorn = "sinkhorn";
    public const string AffineScaled = "affine_scaled";
    public const string Gaussian = "gaussian";
    public const string LowRank = "low_rank";
    public const string RelativeConv = "relative_conv";
    public const string RandomFeatures = "random_features";
    public const string DynamicMask = "dynamic_mask";
    public const string Tensor = "tensor";

    /// <summary>Whether a trained model of this variant is an ordinary attention at inference (exports to a checkpoint the
    /// engine loads): softmax, symmetric_qk with W_K = W_Q, collapsed_qk with W_Q = W_QK, W_K = I at head size d_model
    /// (llama, or one GPT-2 head), low_rank with W_qkv = W_up·W_down, random_features with its frozen W_Q, W_K. The others
    /// are training-only.</summary>
    public static bool RunsInEngine(string variant) => variant is Softmax or SymmetricQk or CollapsedQk or LowRank or RandomFeatures;

    /// <summary>In the order the experiment runs them.</summary>
    public static readonly string[] All = [Softmax, SymmetricQk, CollapsedQk, Moh, Linear, Sinkhorn,
        AffineScaled, Gaussian, LowRank, RelativeConv, RandomFeatures, DynamicMask, Tensor];
}
