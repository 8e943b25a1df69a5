using Headwise.Kernels.Reference;

namespace Headwise.Kernels;

public static partial class Kernels
{
    /// <summary>Causal multi-head attention with grouped key/value heads, fused: z = softmax(q·kᵀ·scale + mask) · v.</summary>
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty
    public static void Attention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        Require(NKV > 0 && NH % NKV == 0, "Attention: query heads must be a multiple of key/value heads");
        ScalarKernels.Attention(q, k, v, z, T, S, NH, NKV, HD, pastLen, scale, keyMask, window);
    }

    /// <summary>Pass 1 alone, for hooks on the scores: scaled q·kᵀ, −∞ where masked.</summary>
    // q: (T, NH, HD)  k: (S, NKV, HD)  scores: (NH, T, S)
    public static void AttentionScores(ReadOnlySpan<float> q, ReadOnlySpan<float> k, Span<float> scores,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
        => ScalarKernels.AttentionScores(q, k, scores, T, S, NH, NKV, HD, pastLen, scale, keyMask, window);

    /// <summary>Row softmax in place treating −∞ as masked; an all-masked row becomes zeros.</summary>
    // x: (R, S)
    public static void MaskedSoftmax(Span<float> x, int R, int S) => ScalarKernels.MaskedSoftmax(x, R, S);

    /// <summary>Last pass alone, for hooks on the pattern: z = pattern · v.</summary>
    // pattern: (NH, T, S)  v: (S, NKV, HD)  z: (T, NH, HD)
    public static void AttentionApply(ReadOnlySpan<float> pattern, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD)
        => ScalarKernels.AttentionApply(pattern, v, z, T, S, NH, NKV, HD);
}
