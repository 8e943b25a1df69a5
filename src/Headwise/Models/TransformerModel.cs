using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

/// <summary>
/// A loaded decoder-only transformer. Each family (Gpt2, Llama, GptNeoX) writes its own forward, top to bottom, in its own file;
/// this base owns what they share: the run state (allocated once, reused), the KV cache, position ids from the mask,
/// the attention block with its hook points, and the unembedding. Not thread-safe: one forward at a time per instance.
/// </summary>
public abstract class TransformerModel : IDisposable
{
    protected TransformerModel(ModelConfig config, WeightSet weights)
    {
        Config = config;
        Weights = weights;
        if (config.RotaryDims > 0)
        {
            (_ropeCos, _ropeSin) = RopeTables(config.MaxPositions, config.RotaryDims, config.RopeTheta);
        }
    }

    public ModelConfig Config { get; }

    /// <summary>The checkpoint's tensors (memory-mapped where possible).</summary>
    public WeightSet Weights { get; }

    /// <summary>Builds the right family for a config.</summary>
    public static TransformerModel Create(ModelConfig config, WeightSet weights) => config.Family switch
    {
        ArchitectureFamily.Gpt2 => new Gpt2(config, weights),
        ArchitectureFamily.Llama => new Llama(config, weights),
        ArchitectureFamily.GptNeoX => new GptNeoX(config, weights),
        _ => throw new ModelFormatException($"{weights.Source}: no forward for family {config.Family}"),
    };

    // ---------------------------------------------------------------------------------------------------------------
    // Public API

    /// <summary>Logits [batch, pos, vocab] for the whole input (no state carried over from earlier calls).</summary>
    public float[] Forward(ModelInput input, HookSet? hooks = null)
    {
        input.Validate(Config.VocabSize);
        ResetCache(input.Batch, input.SeqLen);
        return ForwardChunk(input.Tokens, input.AttentionMask, input.SeqLen, hooks, lastOnly: false);
    }

    /// <summary>Runs the input and records activations at every hook point whose name passes <paramref name="filter"/>.
    /// With no filter, every point except <c>attn.hook_result</c> (costly: [batch, pos, head, d_model]; ask for it by name).
    /// Pass the cache of an earlier run as <paramref name="reuse"/> to refill its arrays instead of allocating new ones (its
    /// old values are overwritten): a loop over many inputs of one shape then allocates nothing per run.</summary>
    public (float[] Logits, ActivationCache Cache) RunWithCache(ModelInput input, Func<string, bool>? filter = null, bool expandKvHeads = false,
        ActivationCache? reuse = null)
    {
        var cache = reuse ?? new ActivationCache();
        var hooks = new HookSet(Config.NLayers) { ExpandKvHeads = expandKvHeads };
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
            if (Config.Family == ArchitectureFamily.Gpt2)
            {
                list.Add(new(HookPoint.ModelLevel, HookKind.PosEmbed));
            }
            for (int l = 0; l < Config.NLayers; l++)
            {
                foreach (var kind in Enum.GetValues<HookKind>())
                {
                    if (kind <= HookKind.LnFinalNormalized
                        || (kind is HookKind.RotQ or HookKind.RotK && Config.RotaryDims == 0)
                        || (kind == HookKind.ResidMid && Config.ParallelResidual)
                        || (kind == HookKind.MlpPreLinear && Config.Family != ArchitectureFamily.Llama))
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

    // ---------------------------------------------------------------------------------------------------------------
    // KV cache and incremental forward (generation)

    private float[][] _kCache = [];   // per layer: (B, capacity, NKV, HD)
    private float[][] _vCache = [];
    private byte[] _keyMask = [];     // (B, capacity): 1 where a real token sits
    private int[] _validCount = [];   // (B): real tokens seen so far — the next position id
    private int _capacity;

    /// <summary>Tokens already in the KV cache (per sequence, padding included).</summary>
    public int PastLength { get; private set; }

    /// <summary>Number of sequences the cache holds.</summary>
    public int CacheBatch { get; private set; }

    /// <summary>Empties the KV cache and makes room for <paramref name="capacity"/> positions of <paramref name="batch"/> sequences.
    /// Buffers are reused when large enough.</summary>
    public void ResetCache(int batch, int capacity)
    {
        if (capacity > Config.MaxPositions)
        {
            throw new InvalidInputException($"sequence of {capacity} positions is longer than the model's context of {Config.MaxPositions}");
        }
        int kvRow = Config.NKvHeads * Config.DHead;
        long need = (long)batch * capacity * kvRow;
        if (_kCache.Length != Config.NLayers || _kCache[0].Length < need)
        {
            _kCache = new float[Config.NLayers][];
            _vCache = new float[Config.NLayers][];
            for (int l = 0; l < Config.NLayers; l++)
            {
                _kCache[l] = new float[need];
                _vCache[l] = new float[need];
            }
        }
        if (_keyMask.Length < batch * capacity)
        {
            _keyMask = new byte[batch * capacity];
        }
        _validCount = new int[batch];
        _capacity = capacity;
        CacheBatch = batch;
        PastLength = 0;
    }

    /// <summary>
    /// Appends <paramref name="T"/> positions per sequence to the KV cache and returns their logits:
    /// [batch, T, vocab], or [batch, vocab] for the last position of each sequence when <paramref name="lastOnly"/>.
    /// </summary>
    public float[] ForwardChunk(int[] tokens, byte[]? mask, int T, HookSet? hooks = null, bool lastOnly = false)
    {
        int B = CacheBatch;
        if (B == 0)
        {
            throw new InvalidOperationException("call ResetCache before ForwardChunk");
        }
        if (tokens.Length != B * T || (mask is not null && mask.Length != B * T))
        {
            throw new InvalidInputException($"chunk of {tokens.Length} ids does not fill [batch {B}, pos {T}]");
        }
        if (PastLength + T > _capacity)
        {
            throw new InvalidInputException($"the KV cache holds {_capacity} positions; {PastLength} used, {T} more asked (context {Config.MaxPositions})");
        }
        PrepareStep(tokens, mask, B, T, hooks);
        ForwardCore(0);
        PastLength += T;
        return Unembed(B, T, lastOnly);
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
        BeginResumed(residPre, input, hooks);
        ForwardCore(startLayer);
        return EndResumed(input, logitsBuffer);
    }

    // a resumed forward: a fresh KV cache for the input, and the given residual [batch, pos, d_model] as the stream
    private void BeginResumed(ReadOnlySpan<float> resid, ModelInput input, HookSet? hooks)
    {
        input.Validate(Config.VocabSize);
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
        if ((uint)layer >= (uint)Config.NLayers)
        {
            throw new InvalidInputException($"layer {layer} is outside 0..{Config.NLayers - 1}");
        }
        if (Config.ParallelResidual)
        {
            throw new InvalidInputException("this model uses a parallel residual (no hook_resid_mid): resume from resid_post with ForwardFrom(layer + 1)");
        }
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
        if ((uint)layer >= (uint)Config.NLayers)
        {
            throw new InvalidInputException($"layer {layer} is outside 0..{Config.NLayers - 1}");
        }
        return PerHeadWo(layer);
    }

    // logits into `into` when it has exactly the right length (a loop of resumed forwards reuses one array), else a new one
    private float[] Unembed(int B, int T, bool lastOnly, float[]? into = null)
    {

        // unembed: logits = ln_final(x) · W_Uᵀ
        var (wU, _) = Unembedding;
        int C = Config.DModel, V = Config.VocabSize;
        if (lastOnly)
        {
            for (int b = 0; b < B; b++)
            {
                S.XNorm.AsSpan(((b * T) + T - 1) * C, C).CopyTo(S.LastRows.AsSpan(b * C, C));
            }
            var logits = into?.Length == B * V ? into : new float[B * V];
            MatMul(S.LastRows.AsSpan(0, B * C), wU.Span, default, logits, B, C, V, WeightLayout.OutIn);
            return logits;
        }
        else
        {
            var logits = into?.LongLength == (long)B * T * V ? into : new float[(long)B * T * V];
            MatMul(S.XNorm.AsSpan(0, B * T * C), wU.Span, default, logits, B * T, C, V, WeightLayout.OutIn);
            return logits;
        }
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
        }
        FinalNorm();
    }

    /// <summary>The unembedding, stored (vocab, d_model) like nn.Linear (tied models return the token embedding).</summary>
    protected abstract (Weight W, Weight? Bias) Unembedding { get; }

    // ---------------------------------------------------------------------------------------------------------------
    // The step in progress and the run state (the "wave of activations", as llama2.c calls it)

    /// <summary>The current call: B sequences of T new positions; N = B·T rows.</summary>
    protected StepInfo Step = new();

    protected sealed class StepInfo
    {
        public int B, T, N, PastLen;
        public int[] Tokens = [];      // (N) — padding replaced by id 0 so embedding lookups stay in range
        public int[] Positions = [];   // (N) position ids that skip padding
        public HookSet? Hooks;
    }

    /// <summary>Buffers for one forward, sized for N rows; grown, never shrunk.</summary>
    protected sealed class RunState
    {
        public int Rows;
        public float[] X = [];        // (N, C) residual stream
        public float[] XNorm = [];    // (N, C) normed input of the current sublayer; final-normed at the end
        public float[] Tmp = [];      // (N, C) sublayer output (attn_out, mlp_out, position embedding)
        public float[] Tmp2 = [];     // (N, C) second sublayer output (parallel residual)
        public float[] Qkv = [];      // (N, (NH + 2·NKV)·HD) fused projections
        public float[] Q = [];        // (N, NH, HD)
        public float[] K = [];        // (N, NKV, HD)
        public float[] V = [];        // (N, NKV, HD)
        public float[] Z = [];        // (N, NH, HD)
        public float[] Hidden = [];   // (N, DMlp)
        public float[] Hidden2 = [];  // (N, DMlp) SwiGLU up projection
        public float[] Scale = [];    // (N) norm scales, for hook_scale
        public float[] LastRows = []; // (B, C)
        public float[] Scores = [];   // (B, NH, T, S) only when scores/pattern are hooked
        public float[] Pattern = [];  // (B, NH, T, S)
        public float[] Result = [];    // (N, NH, C) only when hook_result is hooked
        public float[] HeadScratch = [];
    }

    protected readonly RunState S = new();
    private readonly float[]? _ropeCos;
    private readonly float[]? _ropeSin;
    private float[][]? _perHeadWo; // per layer: (NH, HD, C), built on first hook_result

    private void PrepareStep(int[] tokens, byte[]? mask, int B, int T, HookSet? hooks)
    {
        int N = B * T;
        Step.B = B;
        Step.T = T;
        Step.N = N;
        Step.PastLen = PastLength;
        Step.Hooks = hooks is { Any: true } ? hooks : null;
        if (Step.Tokens.Length < N)
        {
            Step.Tokens = new int[N];
            Step.Positions = new int[N];
        }
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < T; t++)
            {
                int i = b * T + t;
                bool real = mask is null || mask[i] != 0;
                int id = tokens[i];
                if (real && (uint)id >= (uint)Config.VocabSize)
                {
                    throw new InvalidInputException($"token id {id} (batch {b}, position {t}) is outside the vocabulary [0, {Config.VocabSize})");
                }
                Step.Tokens[i] = real ? id : 0;
                // position_ids = cumsum(attention_mask) - 1, as HF generate computes them; padding gets 0 (it is never attended).
                Step.Positions[i] = real ? _validCount[b]++ : 0;
                _keyMask[b * _capacity + PastLength + t] = real ? (byte)1 : (byte)0;
            }
        }
        EnsureRows(N);
    }

    private void EnsureRows(int N)
    {
        if (S.Rows >= N)
        {
            return;
        }
        int C = Config.DModel, qd = Config.NHeads * Config.DHead, kvd = Config.NKvHeads * Config.DHead;
        S.Rows = N;
        S.X = new float[N * C];
        S.XNorm = new float[N * C];
        S.Tmp = new float[N * C];
        S.Tmp2 = new float[N * C];
        S.Qkv = new float[N * (qd + 2 * kvd)];
        S.Q = new float[N * qd];
        S.K = new float[N * kvd];
        S.V = new float[N * kvd];
        S.Z = new float[N * qd];
        S.Hidden = new float[(long)N * Config.DMlp];
        S.Hidden2 = Config.Family == ArchitectureFamily.Llama ? new float[(long)N * Config.DMlp] : [];
        S.Scale = new float[N];
        S.LastRows = new float[N * C];
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Shared building blocks, called by the families' forwards

    /// <summary>Fires the hooks at (layer, kind) on the first rows of <paramref name="buffer"/>, shape [d0, d1, d2], if any are
    /// attached. Fixed-arity overloads: with no hook attached nothing is allocated, not even the shape.</summary>
    protected void Hook(int layer, HookKind kind, float[] buffer, int d0, int d1, int d2)
    {
        if (Hooked(layer, kind))
        {
            Fire(layer, kind, buffer, [d0, d1, d2]);
        }
    }

    /// <summary>As above, for shape [d0, d1, d2, d3].</summary>
    protected void Hook(int layer, HookKind kind, float[] buffer, int d0, int d1, int d2, int d3)
    {
        if (Hooked(layer, kind))
        {
            Fire(layer, kind, buffer, [d0, d1, d2, d3]);
        }
    }

    private void Fire(int layer, HookKind kind, float[] buffer, int[] shape)
    {
        var hooks = Step.Hooks!;
        int count = shape.Aggregate(1, (a, b) => a * b);
        if (hooks.ExpandKvHeads && kind is HookKind.K or HookKind.V or HookKind.RotK && Config.NKvHeads != Config.NHeads)
        {
            // [batch, pos, kv_head, d_head] → [batch, pos, head, d_head]: each query head sees its key/value head (a copy).
            int rows = shape[0] * shape[1], NH = Config.NHeads, HD = Config.DHead, group = Config.KvGroupSize;
            var expanded = new float[rows * NH * HD];
            for (int r = 0; r < rows; r++)
            {
                for (int h = 0; h < NH; h++)
                {
                    buffer.AsSpan((r * Config.NKvHeads + h / group) * HD, HD).CopyTo(expanded.AsSpan((r * NH + h) * HD, HD));
                }
            }
            hooks.Fire(layer, kind, expanded, [shape[0], shape[1], NH, HD]);
            return;
        }
        hooks.Fire(layer, kind, buffer.AsMemory(0, count), shape);
    }

    protected bool Hooked(int layer, HookKind kind) => Step.Hooks is { } h && h.IsActive(layer, kind);

    /// <summary>Residual-stream hook shorthand: [batch, pos, d_model].</summary>
    protected void HookResid(int layer, HookKind kind, float[] buffer) => Hook(layer, kind, buffer, Step.B, Step.T, Config.DModel);

    /// <summary>LayerNorm or RMSNorm (by family) of rows of <paramref name="x"/> into <paramref name="output"/>, firing its scale/normalized hooks.</summary>
    protected void Norm(int layer, HookKind scaleKind, float[] x, Weight weight, Weight? bias, float[] output)
    {
        int N = Step.N, C = Config.DModel;
        var scale = Hooked(layer, scaleKind) ? S.Scale.AsSpan(0, N) : Span<float>.Empty;
        if (Config.Family == ArchitectureFamily.Llama)
        {
            RmsNorm(x.AsSpan(0, N * C), weight.Span, output.AsSpan(0, N * C), scale, N, C, Config.NormEps);
        }
        else
        {
            LayerNorm(x.AsSpan(0, N * C), weight.Span, bias is null ? default : bias.Span, output.AsSpan(0, N * C), scale, N, C, Config.NormEps);
        }
        Hook(layer, scaleKind, S.Scale, Step.B, Step.T, 1);
        Hook(layer, scaleKind + 1, output, Step.B, Step.T, C); // the *Normalized kind follows its *Scale kind
    }

    /// <summary>out = x · W (+ b) over the step's N rows.</summary>
    protected void Linear(float[] x, int inFeatures, Weight w, Weight? bias, float[] output, int outFeatures, WeightLayout layout)
    {
        int N = Step.N;
        MatMul(x.AsSpan(0, N * inFeatures), w.Span, bias is null ? default : bias.Span, output.AsSpan(0, N * outFeatures),
            N, inFeatures, outFeatures, layout);
    }

    /// <summary>Token embedding (+ hook_embed) into the residual stream.</summary>
    protected void EmbedTokens(Weight table)
    {
        Embedding(table.Span, Step.Tokens.AsSpan(0, Step.N), S.X.AsSpan(0, Step.N * Config.DModel), Config.DModel);
        HookResid(HookPoint.ModelLevel, HookKind.Embed, S.X);
    }

    /// <summary>
    /// The attention sublayer after the q/k/v projections: hooks q/k/v, RoPE, the KV cache, the attention itself
    /// (fused when nothing looks inside it), hook_z, the output projection (per head when hook_result is asked for)
    /// and hook_attn_out. Reads <see cref="RunState.Q"/>/K/V; writes the sublayer output to <paramref name="output"/>.
    /// </summary>
    protected void Attention(int L, Weight wO, Weight? bO, WeightLayout layout, float[] output)
    {
        int B = Step.B, T = Step.T, N = Step.N, past = Step.PastLen, S_ = past + T;
        int NH = Config.NHeads, NKV = Config.NKvHeads, HD = Config.DHead, C = Config.DModel;
        int kvRow = NKV * HD;

        Hook(L, HookKind.Q, S.Q, B, T, NH, HD);
        Hook(L, HookKind.K, S.K, B, T, NKV, HD);
        Hook(L, HookKind.V, S.V, B, T, NKV, HD);

        // RoPE on the first RotaryDims of every query and key head, at each token's position id
        if (Config.RotaryDims > 0)
        {
            var pos = Step.Positions.AsSpan(0, N);
            Rope(S.Q.AsSpan(0, N * NH * HD), pos, N, NH, HD, Config.RotaryDims, _ropeCos, _ropeSin, Config.RopeLayout);
            Rope(S.K.AsSpan(0, N * kvRow), pos, N, NKV, HD, Config.RotaryDims, _ropeCos, _ropeSin, Config.RopeLayout);
            Hook(L, HookKind.RotQ, S.Q, B, T, NH, HD);
            Hook(L, HookKind.RotK, S.K, B, T, NKV, HD);
        }

        // append this step's keys and values to the cache: (B, capacity, NKV, HD)
        var kc = _kCache[L];
        var vc = _vCache[L];
        for (int b = 0; b < B; b++)
        {
            S.K.AsSpan(b * T * kvRow, T * kvRow).CopyTo(kc.AsSpan((b * _capacity + past) * kvRow));
            S.V.AsSpan(b * T * kvRow, T * kvRow).CopyTo(vc.AsSpan((b * _capacity + past) * kvRow));
        }

        float scale = 1f / MathF.Sqrt(HD);
        int window = Config.SlidingWindow;
        var hooks = Step.Hooks;
        bool observed = Hooked(L, HookKind.AttnScores) || Hooked(L, HookKind.Pattern);
        bool rewritten = observed && (hooks!.IsWritable(L, HookKind.AttnScores) || hooks.IsWritable(L, HookKind.Pattern));
        int per = NH * T * S_;
        if (observed && S.Scores.Length < B * per)
        {
            S.Scores = new float[B * per];
            S.Pattern = new float[B * per];
        }
        if (!rewritten)
        {
            // fast path: softmax(q·kᵀ/√d + mask)·v fused, one sequence at a time; observers get scores/pattern as side outputs
            bool wantScores = Hooked(L, HookKind.AttnScores), wantPattern = Hooked(L, HookKind.Pattern);
            for (int b = 0; b < B; b++)
            {
                Kernels.Attention(S.Q.AsSpan(b * T * NH * HD, T * NH * HD), kc.AsSpan(b * _capacity * kvRow, S_ * kvRow),
                    vc.AsSpan(b * _capacity * kvRow, S_ * kvRow), S.Z.AsSpan(b * T * NH * HD, T * NH * HD),
                    T, S_, NH, NKV, HD, past, scale, _keyMask.AsSpan(b * _capacity, S_), window,
                    wantScores ? S.Scores.AsSpan(b * per, per) : default, wantPattern ? S.Pattern.AsSpan(b * per, per) : default);
            }
            Hook(L, HookKind.AttnScores, S.Scores, B, NH, T, S_);
            Hook(L, HookKind.Pattern, S.Pattern, B, NH, T, S_);
        }
        else
        {
            // hooked path: the three passes materialised so hooks can replace scores and pattern
            for (int b = 0; b < B; b++)
            {
                AttentionScores(S.Q.AsSpan(b * T * NH * HD, T * NH * HD), kc.AsSpan(b * _capacity * kvRow, S_ * kvRow),
                    S.Scores.AsSpan(b * per, per), T, S_, NH, NKV, HD, past, scale, _keyMask.AsSpan(b * _capacity, S_), window);
            }
            Hook(L, HookKind.AttnScores, S.Scores, B, NH, T, S_);
            S.Scores.AsSpan(0, B * per).CopyTo(S.Pattern);
            MaskedSoftmax(S.Pattern.AsSpan(0, B * per), B * NH * T, S_);
            Hook(L, HookKind.Pattern, S.Pattern, B, NH, T, S_);
            for (int b = 0; b < B; b++)
            {
                AttentionApply(S.Pattern.AsSpan(b * per, per), vc.AsSpan(b * _capacity * kvRow, S_ * kvRow),
                    S.Z.AsSpan(b * T * NH * HD, T * NH * HD), T, S_, NH, NKV, HD);
            }
        }
        Hook(L, HookKind.Z, S.Z, B, T, NH, HD);

        // output projection: attn_out = z · W_O + b_O — or, when hooked, Σ_h result_h + b_O with result_h = z_h · W_O[h]
        if (Hooked(L, HookKind.Result))
        {
            PerHeadResult(L);
            Hook(L, HookKind.Result, S.Result, B, T, NH, C);
            var outSpan = output.AsSpan(0, N * C);
            for (int r = 0; r < N; r++)
            {
                var o = outSpan.Slice(r * C, C);
                if (bO is null)
                {
                    o.Clear();
                }
                else
                {
                    bO.Span.CopyTo(o);
                }
                for (int h = 0; h < NH; h++)
                {
                    Add(o, S.Result.AsSpan((r * NH + h) * C, C), o);
                }
            }
        }
        else
        {
            Linear(S.Z, NH * HD, wO, bO, output, C, layout);
        }
        HookResid(L, HookKind.AttnOut, output);
    }

    // W_O per head: (NH, HD, C), W_O[h] = rows h·HD..(h+1)·HD of the (NH·HD, C) projection
    private float[] PerHeadWo(int L)
    {
        _perHeadWo ??= new float[Config.NLayers][];
        if (_perHeadWo[L] is null)
        {
            int NH = Config.NHeads, HD = Config.DHead, C = Config.DModel;
            var (wO, layout) = OutputProjection(L);
            var w = wO.Span;
            var perHead = new float[NH * HD * C];
            for (int h = 0; h < NH; h++)
            {
                for (int d = 0; d < HD; d++)
                {
                    for (int c = 0; c < C; c++)
                    {
                        // OutIn stores (C, NH·HD); InOut stores (NH·HD, C)
                        perHead[(h * HD + d) * C + c] = layout == WeightLayout.OutIn ? w[c * NH * HD + h * HD + d] : w[(h * HD + d) * C + c];
                    }
                }
            }
            _perHeadWo[L] = perHead;
        }
        return _perHeadWo[L];
    }

    // result: (N, NH, C) with result[n, h] = z[n, h] · W_O[h], W_O[h]: (HD, C)
    private void PerHeadResult(int L)
    {
        int N = Step.N, NH = Config.NHeads, HD = Config.DHead, C = Config.DModel;
        var perHeadWo = PerHeadWo(L);
        if (S.Result.Length < N * NH * C)
        {
            S.Result = new float[N * NH * C];
            S.HeadScratch = new float[N * Math.Max(HD, C)];
        }
        var zh = S.HeadScratch.AsSpan(0, N * HD);
        var outH = new float[N * C];
        for (int h = 0; h < NH; h++)
        {
            for (int n = 0; n < N; n++)
            {
                S.Z.AsSpan((n * NH + h) * HD, HD).CopyTo(zh.Slice(n * HD, HD));
            }
            MatMul(zh, perHeadWo.AsSpan(h * HD * C, HD * C), default, outH, N, HD, C, WeightLayout.InOut);
            for (int n = 0; n < N; n++)
            {
                outH.AsSpan(n * C, C).CopyTo(S.Result.AsSpan((n * NH + h) * C, C));
            }
        }
    }

    /// <summary>The MLP activation by name, in place over the step's rows of <paramref name="h"/>.</summary>
    protected void Activate(float[] h)
    {
        var span = h.AsSpan(0, Step.N * Config.DMlp);
        switch (Config.Activation)
        {
            case "gelu_new": GeluTanh(span, span); break;
            case "gelu": GeluErf(span, span); break;
            default: throw new ModelFormatException($"activation '{Config.Activation}' has no kernel");
        }
    }

    public void Dispose()
    {
        Weights.Dispose();
        GC.SuppressFinalize(this);
    }
}
