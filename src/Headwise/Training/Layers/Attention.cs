using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>
/// Causal self-attention with grouped key/value heads, the T×T pattern materialised per head (training sizes):
/// att = softmax(q·kᵀ/√HD + causal mask), z = att·v; with causal = false, bidirectional (every key visible: ViT). Query head h reads key/value head h / (NH / NKV).
/// The value head size HDV may differ from HD (a combined W_OV per head has HDV = C). An optional score bias (NH, T, T) is
/// added to the scaled scores before the softmax (gaussian), and the backward can hand out the scores' gradient.
/// </summary>
public static class Attention
{
    // q: (B, T, NH, HD)  k: (B, T, NKV, HD)  v: (B, T, NKV, HDV)  att: (B, NH, T, T) saved  z: (B, T, NH, HDV)
    // scoreBias: (NH, T, T) or empty, finite (−∞ above the diagonal stays −∞)
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> att, Span<float> z,
        int B, int T, int NH, int NKV, int HD, int HDV, ReadOnlySpan<float> scoreBias = default, bool causal = true)
    {
        float scale = 1f / MathF.Sqrt(HD);
        for (int b = 0; b < B; b++)
        {
            var a = att.Slice(b * NH * T * T, NH * T * T);
            // pass 1: scaled q·kᵀ, −∞ above the diagonal when causal (a past of T keys makes every key visible)
            K.AttentionScores(q.Slice(b * T * NH * HD), k.Slice(b * T * NKV * HD), a, T, T, NH, NKV, HD, causal ? 0 : T, scale, default, 0);
            if (!scoreBias.IsEmpty) K.Add(a, scoreBias[..(NH * T * T)], a);
            // pass 2: softmax over keys
            K.MaskedSoftmax(a, NH * T, T);
            // pass 3: weighted sum of values
            K.AttentionApply(a, v.Slice(b * T * NKV * HDV), z.Slice(b * T * NH * HDV), T, T, NH, NKV, HDV);
        }
    }

    // dz: (B, T, NH, HDV)  dq: (B, T, NH, HD) overwritten  dk: (B, T, NKV, HD), dv: (B, T, NKV, HDV) overwritten
    // dScores: (B, NH, T, T) or empty: d loss / d (pre-softmax score) written for the visible keys j (a score bias's gradient)
    // dPattern: (B, NH, T, T) or empty: d loss / d att from the layers that reuse this pattern (shared attention), added in
    // Split over (b, kv head): each task owns the dk/dv rows of its kv head and the dq rows of its query heads.
    public static unsafe void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> att, Span<float> dq, Span<float> dk, Span<float> dv, int B, int T, int NH, int NKV, int HD, int HDV,
        Span<float> dScores = default, bool causal = true, ReadOnlySpan<float> dPattern = default)
    {
        bool reused = !dPattern.IsEmpty;
        float scale = 1f / MathF.Sqrt(HD);
        int group = NH / NKV;
        bool keepDs = !dScores.IsEmpty;
        fixed (float* pdz = dz, pq = q, pk = k, pv = v, pa = att, pdq = dq, pdk = dk, pdv = dv, pds = dScores, pdp = dPattern)
        {
            float* DZ = pdz, Q = pq, Kp = pk, Vp = pv, A = pa, DQ = pdq, DK = pdk, DV = pdv, DS = pds, DP = pdp;
            Par.For(B * NKV, (long)group * T * T * (HD + HDV), task =>
            {
                int b = task / NKV, kvh = task % NKV;
                for (int t = 0; t < T; t++)
                {
                    new Span<float>(DK + ((long)(b * T + t) * NKV + kvh) * HD, HD).Clear();
                    new Span<float>(DV + ((long)(b * T + t) * NKV + kvh) * HDV, HDV).Clear();
                }
                Span<float> dp = T <= 4096 ? stackalloc float[T] : new float[T];
                for (int gi = 0; gi < group; gi++)
                {
                    int h = kvh * group + gi;
                    for (int t = 0; t < T; t++)
                    {
                        int last = causal ? t : T - 1; // the last key query t sees
                        var p = new ReadOnlySpan<float>(A + ((long)(b * NH + h) * T + t) * T, last + 1);
                        var dzt = new ReadOnlySpan<float>(DZ + ((long)(b * T + t) * NH + h) * HDV, HDV);
                        var qt = new ReadOnlySpan<float>(Q + ((long)(b * T + t) * NH + h) * HD, HD);
                        var dqt = new Span<float>(DQ + ((long)(b * T + t) * NH + h) * HD, HD);
                        // undoes pass 3, z[t] = Σ_j p[j]·v[j]:  dp[j] = dz[t]·v[j],  dv[j] += p[j]·dz[t]
                        float sum = 0;
                        for (int j = 0; j <= last; j++)
                        {
                            long vo = ((long)(b * T + j) * NKV + kvh) * HDV;
                            dp[j] = K.Dot(dzt, new ReadOnlySpan<float>(Vp + vo, HDV)) + (reused ? DP[((long)(b * NH + h) * T + t) * T + j] : 0);
                            K.Axpy(p[j], dzt, new Span<float>(DV + vo, HDV));
                            sum += p[j] * dp[j];
                        }
                        // undoes pass 2, p = softmax(s):  ds[j] = p[j]·(dp[j] − Σ_i p[i]·dp[i])
                        // undoes pass 1, s[j] = scale·q[t]·k[j]:  dq[t] = scale·Σ_j ds[j]·k[j],  dk[j] += scale·ds[j]·q[t]
                        dqt.Clear();
                        for (int j = 0; j <= last; j++)
                        {
                            float ds = p[j] * (dp[j] - sum);
                            if (keepDs) DS[((long)(b * NH + h) * T + t) * T + j] = ds;
                            ds *= scale;
                            long ko = ((long)(b * T + j) * NKV + kvh) * HD;
                            K.Axpy(ds, new ReadOnlySpan<float>(Kp + ko, HD), dqt);
                            K.Axpy(ds, qt, new Span<float>(DK + ko, HD));
                        }
                    }
                }
            });
        }
    }

    /// <summary>A layer that reuses another layer's pattern att (shared attention [EchoAtt]): z = att·v, no scores of its own.</summary>
    // att: (B, NH, T, T) the source layer's  v: (B, T, NKV, HDV)  z: (B, T, NH, HDV)
    public static void ForwardReused(ReadOnlySpan<float> att, ReadOnlySpan<float> v, Span<float> z, int B, int T, int NH, int NKV, int HDV)
    {
        for (int b = 0; b < B; b++)
        {
            K.AttentionApply(att.Slice(b * NH * T * T, NH * T * T), v.Slice(b * T * NKV * HDV), z.Slice(b * T * NH * HDV), T, T, NH, NKV, HDV);
        }
    }

    /// <summary>Undoes <see cref="ForwardReused"/>: dv (overwritten) = Σ_t att[t, j]·dz[t]; the pattern's gradient dz[t]·v[j] is
    /// added into <paramref name="dPattern"/>, which the source layer's <see cref="Backward"/> takes in.</summary>
    // dz: (B, T, NH, HDV)  dv: (B, T, NKV, HDV)  dPattern: (B, NH, T, T) accumulated over the layers sharing the pattern
    public static void BackwardReused(ReadOnlySpan<float> dz, ReadOnlySpan<float> v, ReadOnlySpan<float> att, Span<float> dv, Span<float> dPattern,
        int B, int T, int NH, int NKV, int HDV)
    {
        int group = NH / NKV;
        dv[..(B * T * NKV * HDV)].Clear();
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                for (int t = 0; t < T; t++)
                {
                    var dzt = dz.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    var p = att.Slice(((b * NH + h) * T + t) * T, t + 1);
                    var dp = dPattern.Slice(((b * NH + h) * T + t) * T, t + 1);
                    for (int j = 0; j <= t; j++)
                    {
                        int vo = ((b * T + j) * NKV + kvh) * HDV;
                        dp[j] += K.Dot(dzt, v.Slice(vo, HDV));
                        K.Axpy(p[j], dzt, dv.Slice(vo, HDV));
                    }
                }
            }
        }
    }
}
