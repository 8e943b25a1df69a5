using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Sparse;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

// The attention sublayer shared by every family: hooks, RoPE, the KV cache append, the fused or three-pass attention, and the
// output projection (per head when hook_result is asked for).
public abstract partial class TransformerModel
{
    private readonly float[]? _ropeCos;
    private readonly float[]? _ropeSin;
    private float[][]? _perHeadWo; // per layer: (NH, HD, C), built on first hook_result
    private float[][]? _sharedPattern; // per layer whose pattern later layers reuse: (B, NH, T, S) of the current step
    private readonly bool[] _patternReused; // per layer: a later layer reuses its pattern

    /// <summary>Whether <paramref name="layer"/> reuses an earlier layer's attention pattern (<see cref="ModelConfig.SharedAttention"/>):
    /// it has no query or key projection, caches no keys, and fires no hook_q, hook_k, hook_rot_q/k or hook_attn_scores.</summary>
    public bool SharesAttention(int layer) => Config.SharedAttention is { } s && s.SourceOf(layer) != layer;

    /// <summary>Zeros in the canonical (heads, C, HD) layout: the W_Q and W_K of a layer that shares attention, which has none.</summary>
    protected float[] AbsentHeads(int heads) => new float[heads * Config.DModel * Config.DHead];

    /// <summary>A q/k bias as an owned copy; zeros (heads, HD) where a layer that shares attention dropped it but the model has biases.</summary>
    protected float[]? AbsentBias(Weight? bias, int heads) => bias?.ToArray() ?? (Config.QkvBias ? new float[heads * Config.DHead] : null);

    /// <summary>
    /// Which query–key pairs attention computes (the <see cref="AttentionSparsity"/> contract: window + sinks, a block
    /// selection); <see cref="AttentionSparsity.Dense"/>, the default, is every causal pair. Every layer's attention reads it
    /// when it runs, so a policy sets it before a forward, or per layer from a hook that fires earlier in the same layer
    /// (hook_q/hook_k/hook_rot_k: e.g. top-k blocks chosen from that layer's keys), and sets Dense again afterwards. It applies
    /// to every sequence of a batch alike; a <see cref="BlockSelection"/>'s blocks are over key positions (query t of a
    /// step sits at past + t) and must have <see cref="ModelConfig.NHeads"/> heads. It composes with the model's own
    /// sliding window (a hard limit that sinks do not lift). Unobserved layers run it on the blocked kernel (skipped blocks
    /// cost nothing); layers whose scores or pattern a hook observes or rewrites take the three-pass path.
    /// </summary>
    public AttentionSparsity Sparsity { get; set; } = AttentionSparsity.Dense;

    /// <summary>
    /// The attention sublayer after the q/k/v projections: hooks q/k/v, RoPE, the KV cache, the attention itself
    /// (fused when nothing looks inside it), hook_z, the output projection (per head when hook_result is asked for)
    /// and hook_attn_out. Reads <see cref="RunState.Q"/>/K/V; writes the sublayer output to <paramref name="output"/>, and
    /// adds it into <paramref name="residual"/> when given (in the output projection's store when nothing hooks attn_out).
    /// </summary>
    protected void Attention(int L, Weight wO, Weight? bO, WeightLayout layout, float[] output, float[]? residual = null)
    {
        int B = Step.B, T = Step.T, N = Step.N, past = Step.PastLen;
        int NH = Config.HeadsIn(L), NKV = Config.KvHeadsIn(L), HD = Config.DHead;
        int kvRow = NKV * HD;
        if (SharesAttention(L))
        {
            SharedAttentionLayer(L, wO, bO, layout, output, residual);
            return;
        }

        Hook(L, HookKind.Q, S.Q, B, T, NH, HD);
        Hook(L, HookKind.K, S.K, B, T, NKV, HD);
        Hook(L, HookKind.V, S.V, B, T, NKV, HD);

        // RoPE on the first RotaryDims of every query and key head, at each token's position id; a rolling cache keeps
        // its keys before RoPE and rotates them all at their slots (RollKeys)
        var kc = _kCache[L];
        var vc = _vCache[L];
        bool rolled = _rolling is not null && Config.Positions == PositionKind.Rotary;
        if (Config.Positions == PositionKind.Rotary)
        {
            var pos = Step.Positions.AsSpan(0, N);
            RotateHeads(S.Q.AsSpan(0, N * NH * HD), pos, N, NH, HD);
            if (rolled)
            {
                kc = RollKeys(L);
            }
            else
            {
                RotateHeads(S.K.AsSpan(0, N * kvRow), pos, N, NKV, HD);
            }
            Hook(L, HookKind.RotQ, S.Q, B, T, NH, HD);
            Hook(L, HookKind.RotK, S.K, B, T, NKV, HD);
        }

        // append this step's keys and values to the cache: (B, capacity, NKV, HD)
        for (int b = 0; b < B; b++)
        {
            if (rolled)
            {
                S.V.AsSpan(b * T * kvRow, T * kvRow).CopyTo(vc.AsSpan((b * _capacity + past) * kvRow));
            }
            else
            {
                CopyRows(S.K.AsSpan(b * T * kvRow, T * kvRow), kc.AsSpan((b * _capacity + past) * kvRow, T * kvRow),
                    S.V.AsSpan(b * T * kvRow, T * kvRow), vc.AsSpan((b * _capacity + past) * kvRow, T * kvRow), T, kvRow);
            }
        }

        Attend(L, S.Q, kc, vc, _capacity * kvRow, S.Z, NKV, HD, 1f / MathF.Sqrt(HD));
        AttentionOutput(L, wO, bO, layout, output, residual);
    }

    /// <summary>A layer that reuses the pattern of its group's first layer (computed earlier in this step, as that layer used
    /// it, after its hooks): hook_v, the values cached, hook_pattern on the reused pattern (a hook that rewrites it changes this
    /// layer alone), z = pattern·v, then the output projection as in <see cref="Attention"/>.</summary>
    private void SharedAttentionLayer(int L, Weight wO, Weight? bO, WeightLayout layout, float[] output, float[]? residual)
    {
        int B = Step.B, T = Step.T, past = Step.PastLen, S_ = past + T;
        int NH = Config.HeadsIn(L), NKV = Config.KvHeadsIn(L), HD = Config.DHead, kvRow = NKV * HD, per = NH * T * S_;
        Hook(L, HookKind.V, S.V, B, T, NKV, HD);
        var vc = _vCache[L];
        for (int b = 0; b < B; b++)
        {
            S.V.AsSpan(b * T * kvRow, T * kvRow).CopyTo(vc.AsSpan((b * _capacity + past) * kvRow));
        }
        var pattern = _sharedPattern![Config.SharedAttention!.SourceOf(L)];
        if (Hooked(L, HookKind.Pattern))
        {
            if (S.Pattern.Length < B * per)
            {
                S.Scores = new float[B * per];
                S.Pattern = new float[B * per];
            }
            pattern.AsSpan(0, B * per).CopyTo(S.Pattern);
            Hook(L, HookKind.Pattern, S.Pattern, B, NH, T, S_);
            pattern = S.Pattern;
        }
        // z = pattern · v: z (B, T, NH, HD) ← pattern (B, NH, T, S) · v (B, S, NKV, HD)
        for (int b = 0; b < B; b++)
        {
            AttentionApply(pattern.AsSpan(b * per, per), vc.AsSpan(b * _capacity * kvRow, S_ * kvRow),
                S.Z.AsSpan(b * T * NH * HD, T * NH * HD), T, S_, NH, NKV, HD);
        }
        AttentionOutput(L, wO, bO, layout, output, residual);
    }

    // where layer L keeps its pattern (B·NH·T·S floats) for the later layers of its group, or null when none reuses it
    private float[]? PatternToShare(int L, int size)
    {
        if (!_patternReused[L])
        {
            return null;
        }
        _sharedPattern ??= new float[Config.NLayers][];
        if (_sharedPattern[L] is not { } buffer || buffer.Length < size)
        {
            _sharedPattern[L] = buffer = new float[size];
        }
        return buffer;
    }

    /// <summary>RoPE in place on the first <see cref="ModelConfig.RotaryDims"/> of each of <paramref name="heads"/> heads of
    /// <paramref name="headWidth"/> floats in each of <paramref name="rows"/> rows, at the rows' position ids.</summary>
    // x: (rows, heads, headWidth)  positions: (rows)
    protected void RotateHeads(Span<float> x, ReadOnlySpan<int> positions, int rows, int heads, int headWidth) =>
        Rope(x, positions, rows, heads, headWidth, Config.RotaryDims, _ropeCos, _ropeSin, Config.RopeLayout);

    /// <summary>
    /// softmax(q·kᵀ·scale + mask)·v for every sequence of the step against the keys and values at positions 0 .. past + T − 1,
    /// firing hook_attn_scores and hook_pattern (fused when nothing rewrites them, else in three passes so hooks can).
    /// </summary>
    // q, z: (B, T, NH, HD)  keys, values: sequence b's (S, NKV, HD) rows start at b·kvStride
    protected void Attend(int L, float[] q, float[] keys, float[] values, int kvStride, float[] z, int NKV, int HD, float scale)
    {
        int B = Step.B, T = Step.T, past = Step.PastLen, S_ = past + T, NH = Config.HeadsIn(L), kvRow = NKV * HD;
        // the kernels mask keys after query t's index past + t; a bidirectional model (ViT) moves that edge past the last key
        int causalPast = Config.Bidirectional ? S_ : past;
        int window = Config.SlidingWindow;
        if (KeySelection is { } selector && AttendSelected(L, selector, q, keys, values, kvStride, z, NKV, HD, scale))
        {
            return;
        }
        if (SparseAttention is { IsDense: false } policy && AttendSparse(L, policy, q, keys, values, kvStride, z, NKV, HD, scale))
        {
            return;
        }
        var hooks = Step.Hooks;
        bool observed = Hooked(L, HookKind.AttnScores) || Hooked(L, HookKind.Pattern);
        bool rewritten = observed && (hooks!.IsWritable(L, HookKind.AttnScores) || hooks.IsWritable(L, HookKind.Pattern));
        int per = NH * T * S_;
        var sparsity = Sparsity;
        var share = PatternToShare(L, B * per); // later layers of L's group read this step's pattern
        // the blocked kernel hands out no pattern: a step whose pattern is observed or shared takes the fused kernel
        // (dense) or the three-pass path (sparse)
        bool needsPattern = observed || share is not null;
        if ((observed || (needsPattern && !sparsity.IsDense)) && S.Scores.Length < B * per)
        {
            S.Scores = new float[B * per];
            S.Pattern = new float[B * per];
        }
        if (!rewritten && (!needsPattern || sparsity.IsDense))
        {
            // fast path, one sequence at a time: the blocked kernel (Kernels.BlockedAttention.cs) when nothing observes the
            // scores/pattern; else softmax(q·kᵀ/√d + mask)·v fused, which also hands observers the scores/pattern as side
            // outputs (a sparse step with observers takes the three-pass path below)
            bool wantScores = Hooked(L, HookKind.AttnScores), wantPattern = Hooked(L, HookKind.Pattern);
            var patternOut = wantPattern ? S.Pattern : share;
            for (int b = 0; b < B; b++)
            {
                if (!needsPattern)
                {
                    UnobservedAttention(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow),
                        values.AsSpan(b * kvStride, S_ * kvRow), z.AsSpan(b * T * NH * HD, T * NH * HD),
                        T, S_, NH, NKV, HD, causalPast, scale, _keyMask.AsSpan(b * _capacity, S_), window, sparsity);
                    continue;
                }
                Kernels.Attention(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow),
                    values.AsSpan(b * kvStride, S_ * kvRow), z.AsSpan(b * T * NH * HD, T * NH * HD),
                    T, S_, NH, NKV, HD, causalPast, scale, _keyMask.AsSpan(b * _capacity, S_), window,
                    wantScores ? S.Scores.AsSpan(b * per, per) : default, patternOut is null ? default : patternOut.AsSpan(b * per, per));
            }
            Hook(L, HookKind.AttnScores, S.Scores, B, NH, T, S_);
            Hook(L, HookKind.Pattern, S.Pattern, B, NH, T, S_);
            if (wantPattern && share is not null)
            {
                S.Pattern.AsSpan(0, B * per).CopyTo(share);
            }
        }
        else
        {
            // hooked path: the three passes materialised so hooks can replace scores and pattern
            for (int b = 0; b < B; b++)
            {
                AttentionScores(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow),
                    S.Scores.AsSpan(b * per, per), T, S_, NH, NKV, HD, causalPast, scale, _keyMask.AsSpan(b * _capacity, S_), window);
            }
            SoftmaxAndApply(L, values, kvStride, z, NKV, HD, share);
        }
    }

    /// <summary>The kernel <see cref="Attend"/> runs for a layer whose scores and pattern nothing observes: the blocked one,
    /// at every step length (decode steps take its decode path, which reads the cache in place with the same per-row
    /// arithmetic: a row's result must not depend on how long its batch's padded step is). Code that recomputes a head
    /// outside the forward (a grouped k/v inject) calls this to match the forward bit for bit.</summary>
    // q, z: (T, NH, HD)  keys, values: (S, NKV, HD)  keyMask: (S)
    internal static void UnobservedAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int past, float scale, ReadOnlySpan<byte> keyMask, int window, AttentionSparsity sparsity) =>
        BlockedAttention(q, keys, values, z, T, S, NH, NKV, HD, past, scale, keyMask, window, sparsity);

    /// <summary>
    /// Attention under a sparse policy (<see cref="SparseAttention"/>): the policy chooses the kept pairs of each sequence from
    /// this layer's queries and keys; unobserved, the blocked kernel computes only those (skipped blocks cost nothing);
    /// when a hook observes the scores or pattern, the masked reference path: pass 1 writes every causal score, the dropped
    /// pairs' scores become −∞, then hook_attn_scores, the softmax, hook_pattern and pass 3 as in the hooked path.
    /// Returns false, having computed nothing, when the policy drops no pair of this step: the dense path then runs, so a
    /// spec at density 1 gives exactly the dense result.
    /// </summary>
    // q, z: (B, T, NH, HD)  keys, values: sequence b's (S, NKV, HD) rows start at b·kvStride
    private bool AttendSparse(int L, AttentionPolicy policy, float[] q, float[] keys, float[] values, int kvStride, float[] z, int NKV, int HD, float scale)
    {
        int B = Step.B, T = Step.T, past = Step.PastLen, S_ = past + T, NH = Config.HeadsIn(L), kvRow = NKV * HD;
        if (Config.Bidirectional)
        {
            throw new InvalidInputException($"attention spec '{policy.Spec}': sparse attention specs are causal; this model attends bidirectionally");
        }
        int per = NH * T * S_;
        if (S.Scores.Length < B * per)
        {
            S.Scores = new float[B * per];
            S.Pattern = new float[B * per];
        }
        _sparsities.Clear();
        bool keepsAll = true;
        for (int b = 0; b < B; b++)
        {
            _sparsities.Add(policy.Select(L, b, q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow),
                T, S_, NH, NKV, HD, past, _keyMask.AsSpan(b * _capacity, S_), out bool all));
            keepsAll &= all;
        }
        if (keepsAll)
        {
            return false;
        }
        var share = PatternToShare(L, B * per); // later layers of L's group read this step's pattern
        if (!Hooked(L, HookKind.AttnScores) && !Hooked(L, HookKind.Pattern) && share is null)
        {
            for (int b = 0; b < B; b++)
            {
                BlockedAttention(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow),
                    values.AsSpan(b * kvStride, S_ * kvRow), z.AsSpan(b * T * NH * HD, T * NH * HD),
                    T, S_, NH, NKV, HD, past, scale, _keyMask.AsSpan(b * _capacity, S_), Config.SlidingWindow, _sparsities[b]);
            }
            return true;
        }
        for (int b = 0; b < B; b++)
        {
            var mask = _keyMask.AsSpan(b * _capacity, S_);
            var scores = S.Scores.AsSpan(b * per, per);
            AttentionScores(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow), scores,
                T, S_, NH, NKV, HD, past, scale, mask, Config.SlidingWindow);
            SparseMask.Apply(scores, _sparsities[b], T, S_, NH, past);
        }
        SoftmaxAndApply(L, values, kvStride, z, NKV, HD, share);
        return true;
    }

    /// <summary>Passes 2 and 3 of the three-pass path on the scores in <see cref="RunState.Scores"/>: hook_attn_scores, the
    /// softmax into <see cref="RunState.Pattern"/>, hook_pattern, the copy later layers of the group reuse (when
    /// <paramref name="share"/> is set) and z = pattern · v.</summary>
    // values: sequence b's (S, NKV, HD) rows start at b·kvStride  z: (B, T, NH, HD)
    private void SoftmaxAndApply(int L, float[] values, int kvStride, float[] z, int NKV, int HD, float[]? share)
    {
        int B = Step.B, T = Step.T, S_ = Step.PastLen + T, NH = Config.HeadsIn(L), kvRow = NKV * HD, per = NH * T * S_;
        Hook(L, HookKind.AttnScores, S.Scores, B, NH, T, S_);
        S.Scores.AsSpan(0, B * per).CopyTo(S.Pattern);
        MaskedSoftmax(S.Pattern.AsSpan(0, B * per), B * NH * T, S_);
        Hook(L, HookKind.Pattern, S.Pattern, B, NH, T, S_);
        if (share is not null)
        {
            S.Pattern.AsSpan(0, B * per).CopyTo(share);
        }
        for (int b = 0; b < B; b++)
        {
            AttentionApply(S.Pattern.AsSpan(b * per, per), values.AsSpan(b * kvStride, S_ * kvRow),
                z.AsSpan(b * T * NH * HD, T * NH * HD), T, S_, NH, NKV, HD);
        }
    }

    /// <summary>hook_z on <see cref="RunState.Z"/> (B, T, NH, HD), the output projection — Σ_h z_h·W_O[h] per head when
    /// hook_result is asked for — into <paramref name="output"/>, hook_attn_out, and residual += output when
    /// <paramref name="residual"/> is given (<see cref="OutputLinear"/>).</summary>
    protected void AttentionOutput(int L, Weight wO, Weight? bO, WeightLayout layout, float[] output, float[]? residual = null)
    {
        int B = Step.B, T = Step.T, N = Step.N, NH = Config.HeadsIn(L), HD = Config.DHead, C = Config.DModel;
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
            HookResid(L, HookKind.AttnOut, output);
            if (residual is not null)
            {
                Add(residual.AsSpan(0, N * C), outSpan, residual.AsSpan(0, N * C));
            }
        }
        else
        {
            OutputLinear(L, HookKind.AttnOut, S.Z, NH * HD, wO, bO, output, layout, residual);
        }
    }

    // W_O per head: (NH, HD, C) — the (NH·HD, C) projection, whose rows h·HD .. (h+1)·HD are W_O[h] — built once per layer
    private float[] PerHeadWo(int L)
    {
        _perHeadWo ??= new float[Config.NLayers][];
        return _perHeadWo[L] ??= OutputWeights(L);
    }

    // a fresh (NH·HD, C) copy of layer L's output projection; OutIn stores it transposed, (C, NH·HD)
    private float[] OutputWeights(int L)
    {
        var (wO, layout) = OutputProjection(L);
        return layout == WeightLayout.OutIn ? CanonicalLayout.Transposed(wO.Span, Config.DModel, Config.HeadsIn(L) * Config.DHead) : wO.ToArray();
    }

    // result: (N, NH, C) with result[n, h] = z[n, h] · W_O[h], W_O[h]: (HD, C)
    private void PerHeadResult(int L)
    {
        int N = Step.N, NH = Config.HeadsIn(L), HD = Config.DHead, C = Config.DModel;
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

}
