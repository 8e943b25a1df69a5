namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // Gathered attention, one (head h, query t) at a time: scores of the K listed keys, their softmax, the weighted sum of
    // their values. q: (T, NH, HD)  k, v: (S, NKV, HD)  keys: (NH, T, K)  z: (T, NH, HD); K = 0 gives a zero row.
    public static void GatheredAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<int> keys, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int K, float scale)
    {
        int group = NH / NKV;
        var p = new float[K];
        for (int h = 0; h < NH; h++)
        {
            int g = h / group;
            for (int t = 0; t < T; t++)
            {
                var list = keys.Slice((h * T + t) * K, K);
                float max = float.NegativeInfinity;
                for (int i = 0; i < K; i++)
                {
                    float dot = 0;
                    for (int d = 0; d < HD; d++) dot += q[(t * NH + h) * HD + d] * k[(list[i] * NKV + g) * HD + d];
                    p[i] = dot * scale;
                    max = Math.Max(max, p[i]);
                }
                float sum = 0;
                for (int i = 0; i < K; i++) sum += p[i] = MathF.Exp(p[i] - max);
                for (int d = 0; d < HD; d++)
                {
                    float acc = 0;
                    for (int i = 0; i < K; i++) acc += p[i] * v[(list[i] * NKV + g) * HD + d];
                    z[(t * NH + h) * HD + d] = K == 0 ? 0 : acc / sum;
                }
            }
        }
    }

    // Per row of S estimates, the indices of the K largest (ties: the earlier index), ascending: by a full sort.
    // estimates: (R, S)  chosen: (R, K)
    public static void SelectTopKeys(ReadOnlySpan<float> estimates, Span<int> chosen, int R, int S, int K)
    {
        for (int r = 0; r < R; r++)
        {
            var row = estimates.Slice(r * S, S).ToArray();
            int[] top = [.. Enumerable.Range(0, S).OrderByDescending(j => row[j]).ThenBy(j => j).Take(K).Order()];
            top.CopyTo(chosen.Slice(r * K, K));
        }
    }
}
