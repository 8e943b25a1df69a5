using Headwise.Hooks;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

/// <summary>
/// Chooses, per (head, query), the keys a bidirectional model's attention computes — instance-dependent sparse attention
/// such as <see cref="Analysis.Vision.Sparsifiner"/>. Set as <see cref="TransformerModel.KeySelection"/>; the model asks it
/// once per layer and sequence, with that layer's queries and keys, and attends to the chosen keys only.
/// </summary>
public interface IKeySelector
{
    /// <summary>How many keys each query reads out of <paramref name="keyCount"/>; at least <paramref name="keyCount"/>
    /// means every key: the layer then runs the dense attention unchanged.</summary>
    int KeysPerQuery(int keyCount);

    /// <summary>Writes each (head, query)'s <paramref name="K"/> chosen keys, in ascending order, to <paramref name="chosen"/>.</summary>
    // q: (T, NH, HD)  k: (S, NKV, HD)  chosen: (NH, T, K) indices in 0..S − 1
    void Select(int layer, ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S, int K, Span<int> chosen);
}

// Attention over chosen keys (KeySelection): the gathered kernel when nothing looks inside the layer, else the masked
// three passes, so hooks see the scores and pattern of what was computed.
public abstract partial class TransformerModel
{
    private int[] _chosenKeys = []; // (B, NH, T, K) the selector's choice for the layer in progress

    /// <summary>
    /// Instance-dependent key selection (null: every key): per layer and sequence, <see cref="IKeySelector.Select"/> picks
    /// each (head, query)'s keys from the layer's own q and k, and attention computes those only —
    /// <see cref="Compute.Kernels.GatheredAttention"/>, O(T·K·HD) per head instead of O(T·S·HD). Layers whose
    /// hook_attn_scores/hook_pattern a hook observes or rewrites take the three passes with the unchosen scores set to −∞
    /// before hook_attn_scores (the masked dense attention, which the gathered kernel equals). A layer where the selector
    /// keeps every key runs the dense attention, bit for bit. Bidirectional models only (a ViT): the choice is the mask.
    /// Where it chooses keys, it takes precedence over <see cref="Sparsity"/> and <see cref="SparseAttention"/>.
    /// </summary>
    public IKeySelector? KeySelection { get; set; }

    // the layer's attention over the selector's keys; false (nothing computed) when it keeps every key
    // q, z: (B, T, NH, HD)  keys, values: sequence b's (S, NKV, HD) rows start at b·kvStride
    private bool AttendSelected(int L, IKeySelector selector, float[] q, float[] keys, float[] values, int kvStride, float[] z, int NKV, int HD, float scale)
    {
        int B = Step.B, T = Step.T, S_ = Step.PastLen + T, NH = Config.HeadsIn(L), kvRow = NKV * HD;
        int K = selector.KeysPerQuery(S_);
        if (K >= S_)
        {
            return false;
        }
        if (!Config.Bidirectional)
        {
            throw new InvalidInputException($"key selection ({selector.GetType().Name}) chooses among every key; {Config.Family} attends causally");
        }
        int per = NH * T * K;
        if (_chosenKeys.Length < B * per)
        {
            _chosenKeys = new int[B * per];
        }
        for (int b = 0; b < B; b++)
        {
            selector.Select(L, q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow), T, S_, K, _chosenKeys.AsSpan(b * per, per));
        }
        var share = PatternToShare(L, B * NH * T * S_); // later layers of L's group read this step's pattern
        if (!Hooked(L, HookKind.AttnScores) && !Hooked(L, HookKind.Pattern) && share is null)
        {
            for (int b = 0; b < B; b++)
            {
                GatheredAttention(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow), values.AsSpan(b * kvStride, S_ * kvRow),
                    _chosenKeys.AsSpan(b * per, per), z.AsSpan(b * T * NH * HD, T * NH * HD), T, S_, NH, NKV, HD, K, scale);
            }
            return true;
        }
        // observed: every score, the unchosen ones −∞, then hook_attn_scores, softmax, hook_pattern and pass 3
        int scoresPer = NH * T * S_;
        if (S.Scores.Length < B * scoresPer)
        {
            S.Scores = new float[B * scoresPer];
            S.Pattern = new float[B * scoresPer];
        }
        for (int b = 0; b < B; b++)
        {
            var scores = S.Scores.AsSpan(b * scoresPer, scoresPer);
            AttentionScores(q.AsSpan(b * T * NH * HD, T * NH * HD), keys.AsSpan(b * kvStride, S_ * kvRow), scores,
                T, S_, NH, NKV, HD, S_, scale, _keyMask.AsSpan(b * _capacity, S_), Config.SlidingWindow);
            MaskUnchosen(scores, _chosenKeys.AsSpan(b * per, per), NH * T, S_, K);
        }
        SoftmaxAndApply(L, values, kvStride, z, NKV, HD, share);
        return true;
    }

    /// <summary>Sets every score but each row's chosen keys to −∞.</summary>
    // scores: (R, S)  chosen: (R, K) ascending
    internal static void MaskUnchosen(Span<float> scores, ReadOnlySpan<int> chosen, int R, int S, int K)
    {
        for (int r = 0; r < R; r++)
        {
            var row = scores.Slice(r * S, S);
            int next = 0;
            var list = chosen.Slice(r * K, K);
            for (int j = 0; j < S; j++)
            {
                if (next < K && list[next] == j)
                {
                    next++;
                    continue;
                }
                row[j] = float.NegativeInfinity;
            }
        }
    }
}
