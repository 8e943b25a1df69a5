namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // The blocked attention's algorithm without tiles of queries or vectors: per (head h, query t), keys in blocks of 32
    // with an online softmax (running max m and sum l, the accumulator rescaled by exp(m_old − m_new) when m grows).
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty. Query t sits at key index pastLen + t;
    // it computes key j iff Kernels.IsVisible (causal, padding, the model's window) and sparsity.Keeps(h, pastLen + t, j).
    public static void BlockedAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window, AttentionSparsity sparsity)
    {
        const int block = 32;
        int group = NH / NKV;
        var acc = new float[HD];
        var p = new float[block];
        for (int h = 0; h < NH; h++)
        {
            int g = h / group;
            for (int t = 0; t < T; t++)
            {
                float m = float.NegativeInfinity, l = 0f;
                Array.Clear(acc);
                for (int j0 = 0; j0 < S; j0 += block)
                {
                    int n = Math.Min(block, S - j0);
                    // scores of the block, −∞ where not computed, and the block's max
                    float blockMax = float.NegativeInfinity;
                    for (int j = 0; j < n; j++)
                    {
                        int key = j0 + j;
                        p[j] = float.NegativeInfinity;
                        if (!Kernels.IsVisible(t, key, pastLen, keyMask, window) || !sparsity.Keeps(h, pastLen + t, key)) continue;
                        float dot = 0f;
                        for (int d = 0; d < HD; d++) dot += q[(t * NH + h) * HD + d] * k[(key * NKV + g) * HD + d];
                        p[j] = dot * scale;
                        blockMax = Math.Max(blockMax, p[j]);
                    }
                    float mNew = Math.Max(m, blockMax);
                    if (float.IsNegativeInfinity(mNew)) continue; // nothing visible yet
                    // rescale what was accumulated under the old max
                    float c = MathF.Exp(m - mNew);
                    l *= c;
                    for (int d = 0; d < HD; d++) acc[d] *= c;
                    m = mNew;
                    for (int j = 0; j < n; j++)
                    {
                        float e = MathF.Exp(p[j] - m);
                        l += e;
                        for (int d = 0; d < HD; d++) acc[d] += e * v[((j0 + j) * NKV + g) * HD + d];
                    }
                }
                for (int d = 0; d < HD; d++) z[(t * NH + h) * HD + d] = l == 0f ? 0f : acc[d] / l;
            }
        }
    }
}
