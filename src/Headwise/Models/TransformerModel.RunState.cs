using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

// The KV cache, the step in progress, the run state and the building blocks the families' forwards call.
public abstract partial class TransformerModel
{
    // ---------------------------------------------------------------------------------------------------------------
    // KV cache and incremental forward (generation)

    private float[][] _kCache = [];   // per layer: (B, capacity, NKV, HD); MLA: (B, capacity, ROPE + R) rotary key and latent
    private float[][] _vCache = [];   // per layer: (B, capacity, NKV, HD); MLA: empty (values are read from the latent)
    private byte[] _keyMask = [];     // (B, capacity): 1 where a real token sits
    private int[] _validCount = [];   // (B): real tokens seen so far — the next position id
    private int _capacity;

    /// <summary>Tokens already in the KV cache (per sequence, padding included).</summary>
    public int PastLength { get; private set; }

    /// <summary>Number of sequences the cache holds.</summary>
    public int CacheBatch { get; private set; }

    /// <summary>Bytes the KV cache holds per token of one sequence: every layer caches its key and value rows, (NKV, HD)
    /// each, in float32 — layers × 2 × NKV × HD × 4; multi-head latent attention caches only its latent and the shared rotary
    /// key — layers × (kv_lora_rank + qk_rope_head_dim) × 4; a layer that reuses an earlier layer's pattern (shared attention)
    /// caches its values only. What a restructured layout (fewer kv heads, a latent, shared patterns) saves shows here.
    /// A model pruned per layer (<see cref="ModelConfig.LayerHeads"/>) caches each layer's own kv heads: Σ_L 2 × NKV_L × HD × 4.</summary>
    public long KvCacheBytesPerToken => Enumerable.Range(0, Config.NLayers).Sum(l => (long)(SharesAttention(l) ? 0 : KeyFloats(l)) + ValueFloats(l)) * sizeof(float);

    // floats layer l caches per token as keys and as values: its own kv heads when the model is pruned per layer
    private int KeyFloats(int l) => Config.LayerHeads is null ? CachedKeyFloats : Config.KvHeadsIn(l) * Config.DHead;

    private int ValueFloats(int l) => Config.LayerHeads is null ? CachedValueFloats : Config.KvHeadsIn(l) * Config.DHead;

    /// <summary>Floats one layer caches per token as its key row and as its value row: (NKV·HD, NKV·HD); a family with another
    /// cache layout (MLA's latent) overrides both, and reads its rows through <see cref="LayerKeyCache"/>.</summary>
    protected virtual int CachedKeyFloats => Config.NKvHeads * Config.DHead;

    /// <inheritdoc cref="CachedKeyFloats"/>
    protected virtual int CachedValueFloats => Config.NKvHeads * Config.DHead;

    /// <summary>Layer <paramref name="layer"/>'s key cache, (B, <see cref="CacheCapacity"/>, <see cref="CachedKeyFloats"/>).</summary>
    protected float[] LayerKeyCache(int layer) => _kCache[layer];

    /// <summary>Positions per sequence the cache has room for since the last <see cref="ResetCache"/>.</summary>
    protected int CacheCapacity => _capacity;

    /// <summary>Bytes the KV cache has allocated now (every layer's key and value buffers): capacity × batch ×
    /// <see cref="KvCacheBytesPerToken"/> after a <see cref="ResetCache"/> that had to grow the buffers.</summary>
    public long KvCacheAllocatedBytes => (_kCache.Sum(a => (long)a.Length) + _vCache.Sum(a => (long)a.Length)) * sizeof(float);

    /// <summary>Sequence <paramref name="b"/>'s key mask, (capacity): 1 where a real token sits, 0 for padding. Valid for the
    /// positions in the cache, and during a forward for the step in progress too (hooks read it: past .. past + T − 1).</summary>
    public ReadOnlySpan<byte> KeyMask(int b) => (uint)b < (uint)CacheBatch ? _keyMask.AsSpan(b * _capacity, _capacity)
        : throw new InvalidInputException($"sequence {b} is outside the {CacheBatch} the KV cache holds");

    /// <summary>Empties the KV cache and makes room for <paramref name="capacity"/> positions of <paramref name="batch"/> sequences.
    /// Buffers are reused when large enough.</summary>
    public void ResetCache(int batch, int capacity)
    {
        // a vision model's length is its image's patches (its positions interpolate to any whole number of them)
        if (capacity > Config.MaxPositions && Config.Vision is null)
        {
            throw new InvalidInputException($"sequence of {capacity} positions is longer than the model's context of {Config.MaxPositions}");
        }
        long positions = (long)batch * capacity;
        if (_kCache.Length != Config.NLayers || _kCache[0].Length < positions * KeyFloats(0) || _vCache[0].Length < positions * ValueFloats(0))
        {
            _kCache = new float[Config.NLayers][];
            _vCache = new float[Config.NLayers][];
            for (int l = 0; l < Config.NLayers; l++)
            {
                _kCache[l] = SharesAttention(l) ? [] : new float[positions * KeyFloats(l)];
                _vCache[l] = new float[positions * ValueFloats(l)];
            }
        }
        if (_keyMask.Length < batch * capacity)
        {
            _keyMask = new byte[batch * capacity];
        }
        _validCount = new int[batch];
        _capacity = capacity;
        _rolling = null;
        CacheBatch = batch;
        PastLength = 0;
    }

    /// <summary>Fills the first <paramref name="positions"/> cache rows of every sequence with small random numbers, as if that
    /// many tokens had been run: decode benchmarks at long contexts start there instead of paying for a prefill (the cost of
    /// a decode step depends on how much cache it reads, not on what the rows hold).</summary>
    internal void FillCacheWithNoise(int positions, int seed)
    {
        if (positions > _capacity)
        {
            throw new InvalidInputException($"the KV cache holds {_capacity} positions; {positions} asked");
        }
        var rng = new Random(seed);
        foreach (var layer in _kCache.Concat(_vCache))
        {
            for (int i = 0; i < layer.Length; i++) layer[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        }
        for (int b = 0; b < CacheBatch; b++)
        {
            _keyMask.AsSpan(b * _capacity, positions).Fill(1);
            _validCount[b] = positions;
        }
        PastLength = positions;
    }

    /// <summary>
    /// Appends <paramref name="T"/> positions per sequence to the KV cache and returns their logits:
    /// [batch, T, vocab], or [batch, vocab] for the last position of each sequence when <paramref name="lastOnly"/>.
    /// </summary>
    public float[] ForwardChunk(int[] tokens, byte[]? mask, int T, HookSet? hooks = null, bool lastOnly = false) =>
        ForwardChunk(tokens, mask, T, hooks, lastOnly, logitsBuffer: null);

    /// <summary><see cref="ForwardChunk(int[], byte[], int, HookSet?, bool)"/> into <paramref name="logitsBuffer"/> when it holds
    /// exactly the logits' length (it is written and returned), else into a new array. A decode loop passes each step's result
    /// back: a step then allocates nothing (a GPT-2 vocabulary's row is a 200 KB large-object allocation per token otherwise),
    /// and the caller must be done with a step's logits before it runs the next.</summary>
    public float[] ForwardChunk(int[] tokens, byte[]? mask, int T, HookSet? hooks, bool lastOnly, float[]? logitsBuffer)
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
        return Unembed(B, T, lastOnly, logitsBuffer);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The step in progress and the run state (the "wave of activations", as llama2.c calls it)

    /// <summary>The current call: B sequences of T new positions; N = B·T rows.</summary>
    protected StepInfo Step = new();

    protected sealed class StepInfo
    {
        public int B, T, N, PastLen;
        public int[] Tokens = [];      // (N) — padding replaced by id 0 so embedding lookups stay in range
        public int[] Positions = [];   // (N) position ids that skip padding
        public ImagePixels? Pixels;    // a vision model's images [B, channels, height, width]
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
        public float[] Hidden2 = [];  // (N, DMlp) the linear half of a gated MLP
        public float[] Scale = [];    // (N) norm scales, for hook_scale
        public float[] LastRows = []; // (B, C)
        public float[] Scores = [];   // (B, NH, T, S) only when scores/pattern are hooked
        public float[] Pattern = [];  // (B, NH, T, S)
        public float[] Result = [];    // (N, NH, C) only when hook_result is hooked
        public float[] HeadScratch = [];
    }

    protected readonly RunState S = new();

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
        S.Hidden2 = Config.GatedMlp ? new float[(long)N * Config.DMlp] : [];
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
            int rows = shape[0] * shape[1], NH = Config.HeadsIn(layer), NKV = Config.KvHeadsIn(layer), HD = Config.DHead, group = Config.KvGroupSize;
            var expanded = new float[rows * NH * HD];
            for (int r = 0; r < rows; r++)
            {
                for (int h = 0; h < NH; h++)
                {
                    buffer.AsSpan((r * NKV + h / group) * HD, HD).CopyTo(expanded.AsSpan((r * NH + h) * HD, HD));
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

    /// <summary>LayerNorm or RMSNorm (<see cref="ModelConfig.Norm"/>) of rows of <paramref name="x"/> into <paramref name="output"/>, firing its scale/normalized hooks.</summary>
    protected void Norm(int layer, HookKind scaleKind, float[] x, Weight weight, Weight? bias, float[] output)
    {
        int N = Step.N, C = Config.DModel;
        var scale = Hooked(layer, scaleKind) ? S.Scale.AsSpan(0, N) : Span<float>.Empty;
        if (Config.Norm == NormKind.RmsNorm)
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

    /// <summary>out = x · W (+ b) over the step's N rows, then <paramref name="epilogue"/> in the GEMM's store (an activation
    /// of out, or <paramref name="residual"/> += out).</summary>
    protected void Linear(float[] x, int inFeatures, Weight w, Weight? bias, float[] output, int outFeatures, WeightLayout layout,
        GemmEpilogue epilogue = GemmEpilogue.None, float[]? residual = null)
    {
        int N = Step.N;
        var packed = PackedFor(w, N, inFeatures, outFeatures, layout);
        MatMul(x.AsSpan(0, N * inFeatures), UnpackedFor(w, packed, N), packed, bias is null ? default : bias.Span,
            output.AsSpan(0, N * outFeatures), N, inFeatures, outFeatures, layout, epilogue,
            residual is null ? default : residual.AsSpan(0, N * outFeatures));
    }

    /// <summary>An ungated MLP's first linear and its activation, h = act(x · W + b) (F = d_mlp wide), firing hook_mlp_pre on
    /// x · W + b and hook_mlp_post on h. With neither hooked, nothing sees x · W + b alone and the activation runs in the
    /// GEMM's store (<see cref="GemmEpilogue"/>).</summary>
    // x: (N, inFeatures)  h: (N, F)
    protected void LinearActivated(int layer, float[] x, int inFeatures, Weight w, Weight? bias, float[] h, WeightLayout layout)
    {
        int F = Config.DMlp;
        if (!Hooked(layer, HookKind.MlpPre) && !Hooked(layer, HookKind.MlpPost))
        {
            Linear(x, inFeatures, w, bias, h, F, layout, ActivationEpilogue);
            return;
        }
        Linear(x, inFeatures, w, bias, h, F, layout);
        Hook(layer, HookKind.MlpPre, h, Step.B, Step.T, F);
        Activate(h);
        Hook(layer, HookKind.MlpPost, h, Step.B, Step.T, F);
    }

    /// <summary>A gated MLP's two input linears and their product, h = silu(x · W_gate + b_gate) ⊙ (x · W_up + b_up) (F = d_mlp
    /// wide), firing hook_mlp_pre on the gate's x · W_gate + b, hook_mlp_pre_linear on the up projection (left in
    /// <paramref name="up"/>) and hook_mlp_post on h. With none of the three hooked, nothing sees the gate's output alone:
    /// the up projection runs first and the product runs in the gate GEMM's store (<see cref="GemmEpilogue.SwiGlu"/>), the
    /// same element function as the separate <see cref="SwiGlu"/> pass.</summary>
    // x: (N, inFeatures)  h, up: (N, F)
    protected void GatedLinear(int layer, float[] x, int inFeatures, Weight gate, Weight? gateBias, Weight upWeight, Weight? upBias,
        float[] h, float[] up, WeightLayout layout)
    {
        int N = Step.N, F = Config.DMlp;
        if (!Hooked(layer, HookKind.MlpPre) && !Hooked(layer, HookKind.MlpPreLinear) && !Hooked(layer, HookKind.MlpPost))
        {
            Linear(x, inFeatures, upWeight, upBias, up, F, layout);
            Linear(x, inFeatures, gate, gateBias, h, F, layout, GemmEpilogue.SwiGlu, up);
            return;
        }
        Linear(x, inFeatures, gate, gateBias, h, F, layout);
        Linear(x, inFeatures, upWeight, upBias, up, F, layout);
        Hook(layer, HookKind.MlpPre, h, Step.B, Step.T, F);
        Hook(layer, HookKind.MlpPreLinear, up, Step.B, Step.T, F);
        SwiGlu(h.AsSpan(0, N * F), up.AsSpan(0, N * F), h.AsSpan(0, N * F));
        Hook(layer, HookKind.MlpPost, h, Step.B, Step.T, F);
    }

    /// <summary>A sublayer's output projection (C wide), out = x · W (+ b), firing <paramref name="outKind"/> (hook_attn_out,
    /// hook_mlp_out) on it, then the residual add residual += out when <paramref name="residual"/> is given. With that hook
    /// not attached the add runs in the GEMM's store: the same sums, so the residual stream is bitwise the same (and out
    /// still holds the sublayer's output).</summary>
    // x: (N, inFeatures)  out, residual: (N, C)
    protected void OutputLinear(int layer, HookKind outKind, float[] x, int inFeatures, Weight w, Weight? bias, float[] output,
        WeightLayout layout, float[]? residual)
    {
        int N = Step.N, C = Config.DModel;
        if (residual is not null && !Hooked(layer, outKind))
        {
            Linear(x, inFeatures, w, bias, output, C, layout, GemmEpilogue.Residual, residual);
            return;
        }
        Linear(x, inFeatures, w, bias, output, C, layout);
        HookResid(layer, outKind, output);
        if (residual is not null)
        {
            Add(residual.AsSpan(0, N * C), output.AsSpan(0, N * C), residual.AsSpan(0, N * C));
        }
    }

    /// <summary>Token embedding (+ hook_embed) into the residual stream.</summary>
    protected void EmbedTokens(Weight table)
    {
        table.GatherRows(Step.Tokens.AsSpan(0, Step.N), S.X.AsSpan(0, Step.N * Config.DModel), Config.DModel);
        HookResid(HookPoint.ModelLevel, HookKind.Embed, S.X);
    }

    /// <summary>Learned position embedding (+ hook_pos_embed) added to the residual stream: x += W_pos[position].</summary>
    protected void EmbedPositions(Weight table)
    {
        int N = Step.N, C = Config.DModel;
        table.GatherRows(Step.Positions.AsSpan(0, N), S.Tmp.AsSpan(0, N * C), C);
        HookResid(HookPoint.ModelLevel, HookKind.PosEmbed, S.Tmp);
        Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
    }

    // Config.Activation as the GEMM epilogue that applies it
    private GemmEpilogue ActivationEpilogue => Config.Activation switch
    {
        ActivationFunction.GeluTanh => GemmEpilogue.GeluTanh,
        ActivationFunction.GeluErf => GemmEpilogue.GeluErf,
        ActivationFunction.Silu => GemmEpilogue.Silu,
        _ => throw new InvalidOperationException($"no GEMM epilogue for the activation {Config.Activation}"),
    };

    /// <summary>The MLP activation, in place over the step's rows of <paramref name="h"/>.</summary>
    protected void Activate(float[] h)
    {
        var span = h.AsSpan(0, Step.N * Config.DMlp);
        switch (Config.Activation)
        {
            case ActivationFunction.GeluTanh: GeluTanh(span, span); break;
            case ActivationFunction.GeluErf: GeluErf(span, span); break;
            case ActivationFunction.Silu: Silu(span, span); break;
        }
    }
}
