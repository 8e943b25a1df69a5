using System.Numerics.Tensors;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>
/// tensor — "Generalizing Matrix Softmax Attention to Kronecker Computation" (Alman &amp; Song, 2023): third-order attention
/// over pairs of keys. Each kv head has two key and two value projections (k1, k2, v1, v2); query t scores every causal pair
/// (j1, j2), j1, j2 ≤ t:
///   s[t, j1, j2] = ⟨q_t, k1_j1 ⊙ k2_j2⟩ / √HD,   p[t, ·, ·] = softmax over the (t + 1)² pairs,
///   z_t = Σ_{j1, j2} p[t, j1, j2] · (v1_j1 ⊙ v2_j2)
/// (the paper's A = softmax(Q (K1 ⊘ K2)ᵀ), V = V1 ⊘ V2 with ⊘ the column-wise Kronecker product, restricted to causal pairs).
/// O(T³) time and memory per head: training sizes only, the sequence length capped at <see cref="MaxSeqLen"/>.
/// The T × T pattern the analyses read is the pair weight's marginal over the two key slots,
/// att[t, j] = ½ (Σ_j2 p[t, j, j2] + Σ_j1 p[t, j1, j]) (rows sum to one).
/// </summary>
public static class TensorAttention
{
    /// <summary>Longest sequence the variant accepts (T³ pair scores per head).</summary>
    public const int MaxSeqLen = 64;

    // q: (B, T, NH, HD)  k: (B, T, 2·NKV, HD), heads k1 | k2  v: (B, T, 2·NKV, HDV), v1 | v2
    // pairs: (B, NH, T, T, T) saved, [t, j1, j2]  att: (B, NH, T, T) the marginal  z: (B, T, NH, HDV)  r: scratch of HD + HDV
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> pairs, Span<float> att,
        Span<float> z, int B, int T, int NH, int NKV, int HD, int HDV, Span<float> r)
    {
        float scale = 1f / MathF.Sqrt(HD);
        int group = NH / NKV;
        var qk = r[..HD];
        var w = r.Slice(HD, HDV);
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                for (int t = 0; t < T; t++)
                {
                    var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
                    var p = pairs.Slice((((b * NH + h) * T + t) * T) * T, T * T);
                    p.Clear();
                    float max = float.NegativeInfinity;
                    for (int j1 = 0; j1 <= t; j1++)
                    {
                        // (q_t ⊙ k1_j1)·k2_j2 = ⟨q_t, k1_j1 ⊙ k2_j2⟩
                        TensorPrimitives.Multiply(qt, K1(k, b, j1, kvh, T, NKV, HD), qk);
                        for (int j2 = 0; j2 <= t; j2++)
                        {
                            float s = scale * K.Dot(qk, K2(k, b, j2, kvh, T, NKV, HD));
                            p[j1 * T + j2] = s;
                            max = MathF.Max(max, s);
                        }
                    }
                    float sum = 0;
                    for (int j1 = 0; j1 <= t; j1++)
                        for (int j2 = 0; j2 <= t; j2++) sum += p[j1 * T + j2] = MathF.Exp(p[j1 * T + j2] - max);
                    var zt = z.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    zt.Clear();
                    var a = att.Slice(((b * NH + h) * T + t) * T, T);
                    a.Clear();
                    for (int j1 = 0; j1 <= t; j1++)
                    {
                        // z_t += v1_j1 ⊙ (Σ_j2 p[j1, j2] v2_j2)
                        w.Clear();
                        for (int j2 = 0; j2 <= t; j2++)
                        {
                            float pj = p[j1 * T + j2] /= sum;
                            K.Axpy(pj, K2(v, b, j2, kvh, T, NKV, HDV), w);
                            a[j1] += 0.5f * pj;
                            a[j2] += 0.5f * pj;
                        }
                        TensorPrimitives.Multiply(w, K1(v, b, j1, kvh, T, NKV, HDV), w);
                        K.Add(zt, w, zt);
                    }
                }
            }
        }
    }

    // dz: (B, T, NH, HDV)  dq, dk, dv: overwritten  ds: scratch of T·T  r: scratch of 2·HD + HDV
    public static void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> pairs, Span<float> dq, Span<float> dk, Span<float> dv, int B, int T, int NH, int NKV, int HD, int HDV,
        Span<float> ds, Span<float> r)
    {
        float scale = 1f / MathF.Sqrt(HD);
        int group = NH / NKV;
        dk[..(B * T * 2 * NKV * HD)].Clear();
        dv[..(B * T * 2 * NKV * HDV)].Clear();
        var acc = r[..HD];
        var qk = r.Slice(HD, HD);
        var dzv = r.Slice(2 * HD, HDV);
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                for (int t = 0; t < T; t++)
                {
                    var p = pairs.Slice((((b * NH + h) * T + t) * T) * T, T * T);
                    var dzt = dz.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
                    var dqt = dq.Slice(((b * T + t) * NH + h) * HD, HD);
                    dqt.Clear();
                    // undoes z_t = Σ p[j1, j2] v1_j1 ⊙ v2_j2:  dp[j1, j2] = (dz ⊙ v1_j1)·v2_j2,
                    // dv1_j1 += dz ⊙ Σ_j2 p v2_j2,  dv2_j2 += p[j1, j2]·(dz ⊙ v1_j1)
                    float sum = 0;
                    for (int j1 = 0; j1 <= t; j1++)
                    {
                        TensorPrimitives.Multiply(dzt, K1(v, b, j1, kvh, T, NKV, HDV), dzv);
                        var dv1 = K1(dv, b, j1, kvh, T, NKV, HDV);
                        for (int j2 = 0; j2 <= t; j2++)
                        {
                            float pj = p[j1 * T + j2];
                            var v2 = K2(v, b, j2, kvh, T, NKV, HDV);
                            float dp = K.Dot(dzv, v2);
                            ds[j1 * T + j2] = dp;
                            sum += pj * dp;
                            K.Axpy(pj, dzv, K2(dv, b, j2, kvh, T, NKV, HDV));
                            // dv1 += p·(dz ⊙ v2), one entry at a time
                            for (int e = 0; e < HDV; e++) dv1[e] += pj * dzt[e] * v2[e];
                        }
                    }
                    // undoes the softmax: ds = p·(dp − Σ p·dp), times the score scale
                    for (int j1 = 0; j1 <= t; j1++)
                        for (int j2 = 0; j2 <= t; j2++) ds[j1 * T + j2] = scale * p[j1 * T + j2] * (ds[j1 * T + j2] - sum);
                    // undoes s = ⟨q_t, k1_j1 ⊙ k2_j2⟩:  dq += ds·(k1 ⊙ k2),  dk1_j1 += q ⊙ Σ_j2 ds·k2_j2,  dk2_j2 += q ⊙ Σ_j1 ds·k1_j1
                    for (int j1 = 0; j1 <= t; j1++)
                    {
                        acc.Clear();
                        for (int j2 = 0; j2 <= t; j2++) K.Axpy(ds[j1 * T + j2], K2(k, b, j2, kvh, T, NKV, HD), acc);
                        var k1 = K1(k, b, j1, kvh, T, NKV, HD);
                        TensorPrimitives.Multiply(acc, k1, qk);
                        K.Add(dqt, qk, dqt);
                        TensorPrimitives.Multiply(acc, qt, qk);
                        var dk1 = K1(dk, b, j1, kvh, T, NKV, HD);
                        K.Add(dk1, qk, dk1);
                    }
                    for (int j2 = 0; j2 <= t; j2++)
                    {
                        acc.Clear();
                        for (int j1 = 0; j1 <= t; j1++) K.Axpy(ds[j1 * T + j2], K1(k, b, j1, kvh, T, NKV, HD), acc);
                        TensorPrimitives.Multiply(acc, qt, qk);
                        var dk2 = K2(dk, b, j2, kvh, T, NKV, HD);
                        K.Add(dk2, qk, dk2);
                    }
                }
            }
        }
    }

    // the first / second key (or value) of kv head kvh at token j: rows of (B, T, 2·NKV, D)
    private static Span<float> K1(Span<float> x, int b, int j, int kvh, int T, int NKV, int D) => x.Slice(((b * T + j) * 2 * NKV + kvh) * D, D);
    private static Span<float> K2(Span<float> x, int b, int j, int kvh, int T, int NKV, int D) => x.Slice(((b * T + j) * 2 * NKV + NKV + kvh) * D, D);
    private static ReadOnlySpan<float> K1(ReadOnlySpan<float> x, int b, int j, int kvh, int T, int NKV, int D) => x.Slice(((b * T + j) * 2 * NKV + kvh) * D, D);
    private static ReadOnlySpan<float> K2(ReadOnlySpan<float> x, int b, int j, int kvh, int T, int NKV, int D) => x.Slice(((b * T + j) * 2 * NKV + NKV + kvh) * D, D);
}
