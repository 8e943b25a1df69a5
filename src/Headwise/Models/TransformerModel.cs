using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

/// <summary>
/// A loaded decoder-only transformer. Each family (Gpt2, Llama, GptNeoX, DeepseekV3) writes its own forward, top to bottom, in its own file,
/// and alone knows its checkpoint's tensor names; this base owns what they share and reads only the config's traits: the run
/// state (allocated once, reused) and KV cache (TransformerModel.RunState.cs), the attention sublayer with its hook points
/// (TransformerModel.Attention.cs), the canonical weight accessors (TransformerModel.Weights.cs) and, here, the public API and
/// the unembedding. Not thread-safe: one forward at a time per instance.
/// </summary>
public abstract partial class TransformerModel : IDisposable
{
    protected TransformerModel(ModelConfig config, WeightSet weights)
    {
        Config = config;
        Weights = weights;
        _patternReused = new bool[config.NLayers];
        foreach (int l in config.SharedAttention?.SharedLayers ?? [])
        {
            _patternReused[config.SharedAttention!.SourceOf(l)] = true;
        }
        if (config.Positions == PositionKind.Rotary)
        {
            // a converted MLA model's rotary key holds the source's frequencies, in the pairs the conversion chose
            (_ropeCos, _ropeSin) = config.Mla?.Headwise is { } hw
                ? RopeTables(config.MaxPositions, hw.RopeFrequencies, hw.RopeSourceDims, config.RopeTheta)
                : RopeTables(config.MaxPositions, config.RotaryDims, config.RopeTheta);
        }
    }

    public ModelConfig Config { get; }

    /// <summary>The checkpoint's tensors (memory-mapped where possible).</summary>
    public WeightSet Weights { get; }

    /// <summary>Builds the right family for a config, reading the checkpoint tensors by the family's names.</summary>
    public static TransformerModel Create(ModelConfig config, WeightSet weights) => FamilyOf(config, weights.Source).Load(config, weights);

    /// <summary>Builds a model from canonical weights (copied, through the family's own tensor names: exactly the model a
    /// checkpoint written by <see cref="CanonicalWeights.SaveHf"/> loads as).</summary>
    /// <param name="source">What the weights are, for messages (the model's <see cref="WeightSet.Source"/>).</param>
    public static TransformerModel Create(CanonicalWeights weights, string? source = null)
    {
        var set = new WeightSet(source ?? $"canonical {weights.Config.ModelType} weights");
        foreach (var (name, shape, data) in weights.ToCheckpointTensors())
        {
            // the family's tables mostly hand over the canonical arrays themselves: copy each once, into a pinned weight
            var array = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(data, out var segment) && segment.Offset == 0
                && segment.Count == segment.Array!.Length ? segment.Array : data.ToArray();
            set.Add(Weight.FromArray(name, array, shape));
        }
        return Create(weights.Config, set);
    }

    /// <summary>What one family provides: its forward, built from checkpoint tensors, and its table of tensor names for writing
    /// canonical weights as a checkpoint (shapes, and the data laid out as the checkpoint stores it).</summary>
    internal sealed record FamilyEntry(Func<ModelConfig, WeightSet, TransformerModel> Load,
        Func<CanonicalWeights, IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)>> Tensors);

    /// <summary>The families, each registered here once (adding one: docs/adding-a-family.md).</summary>
    internal static FamilyEntry FamilyOf(ModelConfig config, string source = "config") => config.Family switch
    {
        ArchitectureFamily.Gpt2 => new((c, w) => new Gpt2(c, w), Gpt2.CheckpointTensors),
        ArchitectureFamily.Llama => new((c, w) => new Llama(c, w), Llama.CheckpointTensors),
        ArchitectureFamily.GptNeoX => new((c, w) => new GptNeoX(c, w), GptNeoX.CheckpointTensors),
        ArchitectureFamily.DeepseekV3 => new((c, w) => new DeepseekV3(c, w), DeepseekV3.CheckpointTensors),
        ArchitectureFamily.Vit => new((c, w) => new Vit(c, w), Vit.CheckpointTensors),
        _ => throw new ModelFormatException($"{source}: no forward for family {config.Family}"),
    };

    // ---------------------------------------------------------------------------------------------------------------
    // Public API

    /// <summary>Logits [batch, pos, vocab] for the whole input (no state carried over from earlier calls).</summary>
    public float[] Forward(ModelInput input, HookSet? hooks = null) => Forward(input, hooks, logitsBuffer: null);

    /// <summary><see cref="Forward(ModelInput, HookSet?)"/> into <paramref name="logitsBuffer"/> when it holds exactly
    /// batch·pos·vocab floats (it is written and returned), else into a new array. Loops over many inputs of one shape pass the
    /// last result back: a fresh logits array per forward is a large-object allocation, and on a small model the garbage
    /// collections they trigger cost as much as the forward's blocks.</summary>
    public float[] Forward(ModelInput input, HookSet? hooks, float[]? logitsBuffer)
    {
        input.Validate(Config.VocabSize);
        RequireInputKind(input);
        ResetCache(input.Batch, input.SeqLen);
        return ForwardChunk(input.Tokens, input.AttentionMask, input.SeqLen, hooks, lastOnly: false, logitsBuffer);
    }

    /// <summary>Runs the input and records activations at every hook point whose name passes <paramref name="filter"/>.
    /// With no filter, every point except <c>attn.hook_result</c> (costly: [batch, pos, head, d_model]; ask for it by name).
    /// Pass the cache of an earlier run as <paramref name="reuse"/> to refill its arrays instead of allocating new ones (its
    /// old values are overwritten): a loop over many inputs of one shape then allocates nothing per run.
    /// <paramref name="baseHooks"/> adds hooks that fire before the cache's (e.g. an intervention recipe's,
    /// <c>hooks => applied.AddHooks(hooks)</c>): the cache then sees each activation after they changed it. (With
    /// <paramref name="expandKvHeads"/> they too see grouped-query k/v as per-query-head copies, which they cannot write.)</summary>
    public (float[] Logits, ActivationCache Cache) RunWithCache(ModelInput input, Func<string, bool>? filter = null, bool expandKvHeads = false,
        ActivationCache? reuse = null, Action<HookSet>? baseHooks = null)
    {
        var cache = reuse ?? new ActivationCache();
        var hooks = new HookSet(Config.NLayers) { ExpandKvHeads = expandKvHeads };
        baseHooks?.Invoke(hooks);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var point in HookPoints)
        {
            bool wanted = filter?.Invoke(point.Name) ?? point.Kind != HookKind.Result;
            if (wanted)
            {
                hooks.Add(point, cache.StoreCopy, observeOnly: true);
                names.Add(point.Name);
            }
        }
        if (reuse is not null)
        {
            reuse.RemoveAllBut(names);
        }
        var logits = Forward(input, hooks);
        return (logits, cache);
    }

    /// <summary>Runs the input with hook functions attached by TransformerLens name; a hook may read or overwrite its activation.</summary>
    public float[] RunWithHooks(ModelInput input, params (string Name, HookFunction Hook)[] hooks)
    {
        var set = new HookSet(Config.NLayers);
        foreach (var (name, fn) in hooks)
        {
            set.Add(name, fn);
        }
        return Forward(input, set);
    }

    /// <summary>Every hook point this model fires, in forward order.</summary>
    public IReadOnlyList<HookPoint> HookPoints
    {
        get
        {
            var list = new List<HookPoint> { new(HookPoint.ModelLevel, HookKind.Embed) };
            if (Config.Positions == PositionKind.Learned)
            {
                list.Add(new(HookPoint.ModelLevel, HookKind.PosEmbed));
            }
            for (int l = 0; l < Config.NLayers; l++)
            {
                foreach (var kind in Enum.GetValues<HookKind>())
                {
                    if (kind <= HookKind.LnFinalNormalized
                        || (kind is HookKind.RotQ or HookKind.RotK && Config.Positions != PositionKind.Rotary)
                        || (kind is HookKind.Q or HookKind.K or HookKind.RotQ or HookKind.RotK or HookKind.AttnScores && SharesAttention(l))
                        || (kind == HookKind.ResidMid && Config.ParallelResidual)
                        || (kind == HookKind.MlpPreLinear && !Config.GatedMlp)
                        || (kind == HookKind.KvLatent && Config.Mla is null)
                        || (kind == HookKind.QLatent && (Config.Mla?.QLoraRank ?? 0) == 0))
                    {
                        continue;
                    }
                    list.Add(new(l, kind));
                }
            }
            list.Add(new(HookPoint.ModelLevel, HookKind.LnFinalScale));
            list.Add(new(HookPoint.ModelLevel, HookKind.LnFinalNormalized));
            return list;
        }
    }


    /// <summary>
    /// Resumes a forward at block <paramref name="startLayer"/> from a given residual stream <c>blocks.{startLayer}.hook_resid_pre</c>
    /// [batch, pos, d_model] — e.g. one cached from a clean run — so analyses that change only layer ≥ L (ablating a head in L)
    /// need not recompute the layers below. Returns logits [batch, pos, vocab]. The input is the same as the run the residual came from.
    /// A <paramref name="logitsBuffer"/> of exactly batch·pos·vocab floats is written into and returned (no allocation).
    /// </summary>
    public float[] ForwardFrom(int startLayer, ReadOnlySpan<float> residPre, ModelInput input, HookSet? hooks = null, float[]? logitsBuffer = null)
    {
        if ((uint)startLayer > (uint)Config.NLayers)
        {
            throw new InvalidInputException($"start layer {startLayer} is outside 0..{Config.NLayers}");
        }
        RequireSharedPatterns(startLayer, startLayer);
        BeginResumed(residPre, input, hooks);
        ForwardCore(startLayer);
        return EndResumed(input, logitsBuffer);
    }

    /// <summary><see cref="Forward(ModelInput, HookSet?, float[]?)"/> computing the logits of the positions <paramref name="rows"/>
    /// names only, packed as (Σ count, vocab) at the start of <paramref name="logitsBuffer"/> when it is large enough (a few
    /// rows need room for 9), else of a new array. A row's logits do not depend on which other rows are asked for.</summary>
    public float[] Forward(ModelInput input, HookSet? hooks, LogitRows rows, float[]? logitsBuffer)
    {
        input.Validate(Config.VocabSize);
        RequireInputKind(input);
        ResetCache(input.Batch, input.SeqLen);
        PrepareStep(input.Tokens, input.AttentionMask, input.Batch, input.SeqLen, hooks);
        ForwardCore(0);
        PastLength += input.SeqLen;
        return UnembedRows(input.Batch, input.SeqLen, rows, logitsBuffer);
    }

    /// <summary><see cref="ForwardFrom(int, ReadOnlySpan{float}, ModelInput, HookSet?, float[]?)"/> computing the logits of the
    /// positions <paramref name="rows"/> names only, as <see cref="Forward(ModelInput, HookSet?, LogitRows, float[]?)"/>.</summary>
    public float[] ForwardFrom(int startLayer, ReadOnlySpan<float> residPre, ModelInput input, HookSet? hooks, LogitRows rows, float[]? logitsBuffer)
    {
        if ((uint)startLayer > (uint)Config.NLayers)
        {
            throw new InvalidInputException($"start layer {startLayer} is outside 0..{Config.NLayers}");
        }
        RequireSharedPatterns(startLayer, startLayer);
        BeginResumed(residPre, input, hooks);
        ForwardCore(startLayer);
        PastLength += input.SeqLen;
        return UnembedRows(input.Batch, input.SeqLen, rows, logitsBuffer);
    }

    // a resumed forward skips the attention of the layers below `skippedBelow`: none of them may be a layer whose pattern a
    // layer at or above `runsFrom` reuses (its pattern of this input was never computed)
    private void RequireSharedPatterns(int skippedBelow, int runsFrom)
    {
        if (Config.SharedAttention is not { } shared)
        {
            return;
        }
        foreach (int l in shared.SharedLayers)
        {
            int source = shared.SourceOf(l);
            if (l >= runsFrom && source < skippedBelow)
            {
                throw new InvalidInputException($"layer {l} reuses layer {source}'s attention pattern (shared attention): a forward resumed above "
                    + $"layer {source} cannot compute it; resume at layer {source} or below");
            }
        }
    }

    // images for a vision model, token ids for the others: said in one line, naming what the model reads
    private void RequireInputKind(ModelInput input)
    {
        if (Config.Vision is not null && input.Pixels is null)
        {
            throw new InvalidInputException($"{Weights.Source}: a {Config.ModelType} model reads images, not token ids (give it --image; from C#, ModelInput.Image)");
        }
        if (Config.Vision is null && input.Pixels is not null)
        {
            throw new InvalidInputException($"{Weights.Source}: a {Config.ModelType} model reads token ids, not images");
        }
        Step.Pixels = input.Pixels;
    }

    // a resumed forward: a fresh KV cache for the input, and the given residual [batch, pos, d_model] as the stream
    private void BeginResumed(ReadOnlySpan<float> resid, ModelInput input, HookSet? hooks)
    {
        input.Validate(Config.VocabSize);
        RequireInputKind(input);
        int B = input.Batch, T = input.SeqLen, C = Config.DModel;
        if (resid.Length != B * T * C)
        {
            throw new InvalidInputException($"residual of {resid.Length} values does not fill [batch {B}, pos {T}, d_model {C}]");
        }
        ResetCache(B, T);
        PrepareStep(input.Tokens, input.AttentionMask, B, T, hooks);
        resid.CopyTo(S.X.AsSpan(0, B * T * C));
    }

    private float[] EndResumed(ModelInput input, float[]? logitsBuffer)
    {
        PastLength += input.SeqLen;
        return Unembed(input.Batch, input.SeqLen, lastOnly: false, logitsBuffer);
    }

    /// <summary>
    /// Resumes a forward halfway through block <paramref name="layer"/>: from <c>blocks.{layer}.hook_resid_mid</c> [batch, pos,
    /// d_model], running that block's MLP and every block above. An intervention that only changes the attention output of
    /// <paramref name="layer"/> adds its change to the cached clean resid_mid and skips the layer's attention. Parallel-residual
    /// models have no resid_mid (their MLP reads resid_pre): resume those from <c>hook_resid_post</c> with
    /// <see cref="ForwardFrom"/>(layer + 1, …) instead. <paramref name="logitsBuffer"/> as in <see cref="ForwardFrom"/>.
    /// </summary>
    public float[] ForwardFromMid(int layer, ReadOnlySpan<float> residMid, ModelInput input, HookSet? hooks = null, float[]? logitsBuffer = null)
    {
        RequireLayer(layer);
        if (Config.ParallelResidual)
        {
            throw new InvalidInputException("this model uses a parallel residual (no hook_resid_mid): resume from resid_post with ForwardFrom(layer + 1)");
        }
        RequireSharedPatterns(layer, layer + 1);
        BeginResumed(residMid, input, hooks);
        MlpSublayer(layer);
        ForwardCore(layer + 1);
        return EndResumed(input, logitsBuffer);
    }

    /// <summary>
    /// Each head's slice of the attention output projection of <paramref name="layer"/>, as (NH, HD, C): result_h = z_h · W_O[h].
    /// Built once per layer and kept (the same arrays the forward uses for hook_result).
    /// </summary>
    public ReadOnlySpan<float> PerHeadOutputWeights(int layer)
    {
        RequireLayer(layer);
        return PerHeadWo(layer);
    }

    // logits into `into` when it has exactly the right length (a loop of resumed forwards reuses one array), else a new one
    private float[] Unembed(int B, int T, bool lastOnly, float[]? into = null)
    {
        // unembed: logits = ln_final(x) · W_Uᵀ (+ b_U: a ViT's classifier has a bias)
        var (wU, bU) = Unembedding;
        var bias = bU is null ? default : bU.Span;
        int C = Config.DModel, V = Config.VocabSize;
        if (lastOnly)
        {
            for (int b = 0; b < B; b++)
            {
                S.XNorm.AsSpan(((b * T) + T - 1) * C, C).CopyTo(S.LastRows.AsSpan(b * C, C));
            }
            var logits = into?.Length == B * V ? into : new float[B * V];
            // a decode step's rows: the packed panels where PackedFor serves them (the GEMM's sums, and a half-precision
            // W_U is not converted), else the GEMV over W_U as stored
            var packedLast = PackedFor(wU, B, C, V, WeightLayout.OutIn);
            MatMul(S.LastRows.AsSpan(0, B * C), UnpackedFor(wU, packedLast, B), packedLast, bias, logits, B, C, V, WeightLayout.OutIn);
            return logits;
        }
        else
        {
            var logits = into?.LongLength == (long)B * T * V ? into : new float[(long)B * T * V];
            var packed = PackedFor(wU, B * T, C, V, WeightLayout.OutIn);
            MatMul(S.XNorm.AsSpan(0, B * T * C), UnpackedFor(wU, packed, B * T), packed, bias, logits, B * T, C, V, WeightLayout.OutIn);
            return logits;
        }
    }

    private float[] _gatheredRows = []; // (R, C) the final-norm rows UnembedRows multiplies; grown, never shrunk

    // logits of the chosen rows only: gather them from ln_final's output (R, C), then one GEMM (R, C) · W_Uᵀ → (R, V)
    private float[] UnembedRows(int B, int T, LogitRows rows, float[]? into)
    {
        rows.Check(B, T);
        var (wU, bU) = Unembedding;
        var bias = bU is null ? default : bU.Span;
        int C = Config.DModel, V = Config.VocabSize, R = rows.Total;
        // a few rows would take the GEMV, whose sums run in another order: padded to GEMM size (zero rows, their logits
        // dropped), a row's logits are the same bits whichever batch it is gathered with (influence's shards rely on it)
        int M = R is > 0 and <= Kernels.GemvMaxRows ? Kernels.GemvMaxRows + 1 : R;
        if (_gatheredRows.Length < M * C)
        {
            _gatheredRows = new float[M * C];
        }
        _gatheredRows.AsSpan(R * C, (M - R) * C).Clear();
        int r = 0;
        for (int b = 0; b < B; b++)
        {
            S.XNorm.AsSpan(((b * T) + rows.Start[b]) * C, rows.Count[b] * C).CopyTo(_gatheredRows.AsSpan(r * C));
            r += rows.Count[b];
        }
        var logits = into is not null && into.LongLength >= (long)M * V ? into : new float[(long)M * V];
        if (R > 0)
        {
            var packed = PackedFor(wU, M, C, V, WeightLayout.OutIn);
            MatMul(_gatheredRows.AsSpan(0, M * C), UnpackedFor(wU, packed, M), packed, bias, logits.AsSpan(0, M * V), M, C, V, WeightLayout.OutIn);
        }
        return logits;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // What each family provides

    /// <summary>Token (and position) embeddings of <see cref="Step"/> into the residual stream <see cref="RunState.X"/>.</summary>
    protected abstract void Embed();

    /// <summary>Block <paramref name="layer"/>: reads and updates the residual stream <see cref="RunState.X"/> in place.</summary>
    protected abstract void Block(int layer);

    /// <summary>The second half of a sequential block, from resid_mid in <see cref="RunState.X"/>: the MLP norm, the MLP, the
    /// residual add and hook_resid_post. Parallel-residual blocks have none (they throw).</summary>
    protected abstract void MlpSublayer(int layer);

    /// <summary>The attention output projection of <paramref name="layer"/> (NH·HD → C) and how it is stored.</summary>
    protected abstract (Weight W, WeightLayout Layout) OutputProjection(int layer);

    /// <summary>The tensors of the norm <paramref name="site"/> names (<see cref="HookKind.Ln1Scale"/>, <see cref="HookKind.Ln2Scale"/>
    /// of <paramref name="layer"/>, or <see cref="HookKind.LnFinalScale"/>): weight (C) and, for LayerNorm, bias (C).</summary>
    protected abstract (Weight W, Weight? Bias) NormTensors(int layer, HookKind site);

    /// <summary>The final norm of the residual stream into <see cref="RunState.XNorm"/>.</summary>
    protected abstract void FinalNorm();

    private void ForwardCore(int startLayer)
    {
        if (startLayer == 0)
        {
            Embed();
        }
        for (int l = startLayer; l < Config.NLayers; l++)
        {
            Block(l);
            AfterBlock(l);
        }
        FinalNorm();
    }

    /// <summary>Called after each block with the residual in S.X: a family that changes the sequence between blocks (a ViT
    /// dropping patches, <see cref="Vit.ForwardPruned"/>) does it here by compacting rows and shrinking Step.T/N.</summary>
    protected virtual void AfterBlock(int layer)
    {
    }


    public void Dispose()
    {
        Weights.Dispose();
        GC.SuppressFinalize(this);
    }
}
