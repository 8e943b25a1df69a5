namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // q: (T, NH, HD)  k: (S, NKV, HD)  scores: (NH, T, S) — query t sits at key index pastLen + t.
    // A key j is visible to query t iff j ≤ pastLen + t, keyMask is empty or keyMask[j] ≠ 0, and window = 0 or (pastLen + t) − j < window.
    // Invisible entries are −∞, as TransformerLens' hook_attn_scores shows them.
    public static void AttentionScores(ReadOnlySpan<float> q, ReadOnlySpan<float> k, Span<float> scores,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        int group = NH / NKV;
        for (int h = 0; h < NH; h++)
        {
            int g = h / group;
            for (int t = 0; t < T; t++)
            {
                for (int j = 0; j < S; j++)
                {
                    float value = float.NegativeInfinity;
                    if (Kernels.IsVisible(t, j, pastLen, keyMask, window))
                    {
                        float dot = 0;
                        for (int d = 0; d < HD; d++) dot += q[(t * NH + h) * HD + d] * k[(j * NKV + g) * HD + d];
                        value = dot * scale;
                    }
                    scores[(h * T + t) * S + j] = value;
                }
            }
        }
    }

    // pattern: (NH, T, S)  v: (S, NKV, HD)  z: (T, NH, HD) = Σ_j pattern[h, t, j] · v[j, h / (NH/NKV)]
    public static void AttentionApply(ReadOnlySpan<float> pattern, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD)
    {
        int group = NH / NKV;
        for (int t = 0; t < T; t++)
        {
            for (int h = 0; h < NH; h++)
            {
                int g = h / group;
                for (int d = 0; d < HD; d++)
                {
                    float sum = 0;
                    for (int j = 0; j < S; j++) sum += pattern[(h * T + t) * S + j] * v[(j * NKV + g) * HD + d];
                    z[(t * NH + h) * HD + d] = sum;
                }
            }
        }
    }

    // The three passes above in sequence: the reference for the fused Kernels.Attention.
    public static void Attention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        var scores = new float[NH * T * S];
        AttentionScores(q, k, scores, T, S, NH, NKV, HD, pastLen, scale, keyMask, window);
        MaskedSoftmax(scores, NH * T, S);
        AttentionApply(scores, v, z, T, S, NH, NKV, HD);
    }
}
