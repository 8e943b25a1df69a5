using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>
/// linear — kernelised causal attention, "Transformers are RNNs" (Katharopoulos et al., 2020), the form studied in
/// "Self-Attention and Beyond the Infinite" and "How Many Heads Make an SSM?": with the feature map φ(x) = elu(x) + 1
/// (positive, so every weight is positive),
///   z_t = Σ_{j≤t} (φ(q_t)·φ(k_j)) v_j / Σ_{j≤t} φ(q_t)·φ(k_j)
/// No 1/√HD scale (φ is not a softmax; the normaliser already fixes the scale). The parallel form below materialises the
/// weights att[t, j] = φ(q_t)·φ(k_j) / Σ (the pattern analyses read them); <see cref="Step"/> is the recurrent
/// (state-space) form for generation, state S_t = S_{t−1} + φ(k_t) v_tᵀ, u_t = u_{t−1} + φ(k_t), z_t = φ(q_t)ᵀS_t / φ(q_t)·u_t.
/// </summary>
public static class LinearAttention
{
    public static float Phi(float x) => x > 0 ? x + 1 : MathF.Exp(x);

    // dφ/dx
    private static float PhiGrad(float x) => x > 0 ? 1 : MathF.Exp(x);

    // q: (B, T, NH, HD)  k: (B, T, NKV, HD)  v: (B, T, NKV, HDV)  att: (B, NH, T, T) saved  z: (B, T, NH, HDV)
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> att, Span<float> z,
        int B, int T, int NH, int NKV, int HD, int HDV)
    {
        int group = NH / NKV;
        Span<float> fq = stackalloc float[HD];
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                for (int t = 0; t < T; t++)
                {
                    Features(q.Slice(((b * T + t) * NH + h) * HD, HD), fq);
                    var a = att.Slice(((b * NH + h) * T + t) * T, T);
                    a.Clear();
                    float sum = 0;
                    for (int j = 0; j <= t; j++)
                    {
                        var kj = k.Slice(((b * T + j) * NKV + kvh) * HD, HD);
                        float s = 0;
                        for (int d = 0; d < HD; d++) s += fq[d] * Phi(kj[d]);
                        a[j] = s;
                        sum += s;
                    }
                    var zt = z.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    zt.Clear();
                    for (int j = 0; j <= t; j++)
                    {
                        a[j] /= sum;
                        K.Axpy(a[j], v.Slice(((b * T + j) * NKV + kvh) * HDV, HDV), zt);
                    }
                }
            }
        }
    }

    // dz: (B, T, NH, HDV) → dq (B, T, NH, HD), dk (B, T, NKV, HD), dv (B, T, NKV, HDV), all overwritten
    public static void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> att, Span<float> dq, Span<float> dk, Span<float> dv, int B, int T, int NH, int NKV, int HD, int HDV)
    {
        int group = NH / NKV;
        dk[..(B * T * NKV * HD)].Clear();
        dv[..(B * T * NKV * HDV)].Clear();
        Span<float> fq = stackalloc float[HD];
        Span<float> dfq = stackalloc float[HD];
        Span<float> fk = stackalloc float[HD];
        Span<float> dp = T <= 4096 ? stackalloc float[T] : new float[T];
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                for (int t = 0; t < T; t++)
                {
                    var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
                    Features(qt, fq);
                    var p = att.Slice(((b * NH + h) * T + t) * T, t + 1);
                    var dzt = dz.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    // undoes z = Σ_j p_j v_j:  dp_j = dz·v_j,  dv_j += p_j dz
                    float dot = 0, sum = 0;
                    for (int j = 0; j <= t; j++)
                    {
                        int vo = ((b * T + j) * NKV + kvh) * HDV;
                        dp[j] = K.Dot(dzt, v.Slice(vo, HDV));
                        K.Axpy(p[j], dzt, dv.Slice(vo, HDV));
                        dot += p[j] * dp[j];
                    }
                    // the normaliser Σ_j s_j = φ(q)·Σ_j φ(k_j)
                    for (int j = 0; j <= t; j++)
                    {
                        Features(k.Slice(((b * T + j) * NKV + kvh) * HD, HD), fk);
                        sum += K.Dot(fq, fk);
                    }
                    // undoes p_j = s_j / Σ s:  ds_j = (dp_j − Σ_i p_i dp_i) / Σ s
                    // undoes s_j = φ(q)·φ(k_j):  dφ(q) = Σ_j ds_j φ(k_j),  dφ(k_j) = ds_j φ(q), then through φ
                    dfq.Clear();
                    for (int j = 0; j <= t; j++)
                    {
                        float ds = (dp[j] - dot) / sum;
                        var kj = k.Slice(((b * T + j) * NKV + kvh) * HD, HD);
                        var dkj = dk.Slice(((b * T + j) * NKV + kvh) * HD, HD);
                        for (int d = 0; d < HD; d++)
                        {
                            dfq[d] += ds * Phi(kj[d]);
                            dkj[d] += ds * fq[d] * PhiGrad(kj[d]);
                        }
                    }
                    var dqt = dq.Slice(((b * T + t) * NH + h) * HD, HD);
                    for (int d = 0; d < HD; d++) dqt[d] = dfq[d] * PhiGrad(qt[d]);
                }
            }
        }
    }

    /// <summary>One recurrent step of one head: folds (k_t, v_t) into the state, then reads z_t for q_t.</summary>
    // state: (HD, HDV) running Σ φ(k) vᵀ  norm: (HD) running Σ φ(k)  q, k: (HD)  v, z: (HDV)
    public static void Step(Span<float> state, Span<float> norm, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        Span<float> z, int HD, int HDV)
    {
        for (int d = 0; d < HD; d++)
        {
            float fk = Phi(k[d]);
            norm[d] += fk;
            K.Axpy(fk, v, state.Slice(d * HDV, HDV));
        }
        z.Clear();
        float denom = 0;
        for (int d = 0; d < HD; d++)
        {
            float fq = Phi(q[d]);
            denom += fq * norm[d];
            K.Axpy(fq, state.Slice(d * HDV, HDV), z);
        }
        for (int i = 0; i < HDV; i++) z[i] /= denom;
    }

    private static void Features(ReadOnlySpan<float> x, Span<float> f)
    {
        for (int d = 0; d < x.Length; d++) f[d] = Phi(x[d]);
    }
}
