using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>
/// dynamic_mask — "Trainable Dynamic Mask Sparse Attention" (Shi et al., 2025; the Doge models' DMA). Per query head h a
/// value-dependent key strength
///   δ[j, h] = exp(a_h · softplus(v_j · w_h))      v_j: token j's values of all kv heads (NKV·HDV), w_h: a learned row of
///                                                  W_Δ (NH, NKV·HDV), a_h: a learned scalar (initialised to 1)
/// ranks the keys: query t keeps the W causal keys j ≤ t with the largest δ[j, h] (ties to the lower index) and masks the
/// rest to −∞; on the kept keys the score is q_t·k_j/√HD + δ[j, h] (the paper adds the dynamic mask to the scores) and
///   att[t, ·] = softmax over the kept keys,  z_t = Σ_j att[t, j] v_j.
/// W ≥ t + 1 keeps every causal key (dense attention with the additive δ). The top-W choice is not differentiable: the
/// gradient flows through the kept entries only (their scores and their δ), never through which keys were kept; a masked
/// entry has att = 0 exactly, so the softmax backward gives it no gradient without a separate mask.
/// </summary>
public static class DynamicMaskAttention
{
    private static float Softplus(float x) => x > 20 ? x : MathF.Log(1 + MathF.Exp(x));

    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    // u: (N, NH) = v·W_Δᵀ  a: (NH)  delta: (N, NH) out
    public static void Strengths(ReadOnlySpan<float> u, ReadOnlySpan<float> a, Span<float> delta, int N, int NH)
    {
        for (int n = 0; n < N; n++)
            for (int h = 0; h < NH; h++) delta[n * NH + h] = MathF.Exp(a[h] * Softplus(u[n * NH + h]));
    }

    // ddelta: (N, NH)  du: (N, NH) overwritten  da: (NH) +=
    public static void StrengthsBackward(ReadOnlySpan<float> ddelta, ReadOnlySpan<float> u, ReadOnlySpan<float> a, ReadOnlySpan<float> delta,
        Span<float> du, Span<float> da, int N, int NH)
    {
        for (int n = 0; n < N; n++)
        {
            for (int h = 0; h < NH; h++)
            {
                int i = n * NH + h;
                // undoes δ = exp(e), e = a·softplus(u):  de = dδ·δ,  da += de·softplus(u),  du = de·a·σ(u)
                float de = ddelta[i] * delta[i];
                da[h] += de * Softplus(u[i]);
                du[i] = de * a[h] * Sigmoid(u[i]);
            }
        }
    }

    // q: (B, T, NH, HD)  k: (B, T, NKV, HD)  v: (B, T, NKV, HDV)  delta: (B, T, NH)  att: (B, NH, T, T) saved (0 where masked)
    // z: (B, T, NH, HDV)  order: scratch of T ints
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> delta,
        Span<float> att, Span<float> z, int B, int T, int NH, int NKV, int HD, int HDV, int window, Span<int> order)
    {
        float scale = 1f / MathF.Sqrt(HD);
        int group = NH / NKV;
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                var d = delta.Slice(b * T * NH + h);
                for (int t = 0; t < T; t++)
                {
                    // keys 0..t sorted by δ, largest first, ties to the lower index: insert key t after every key ≥ it
                    int pos = t;
                    while (pos > 0 && d[order[pos - 1] * NH] < d[t * NH]) { order[pos] = order[pos - 1]; pos--; }
                    order[pos] = t;
                    var a = att.Slice(((b * NH + h) * T + t) * T, T);
                    a.Clear();
                    var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
                    int kept = Math.Min(window, t + 1);
                    float max = float.NegativeInfinity;
                    for (int r = 0; r < kept; r++)
                    {
                        int j = order[r];
                        a[j] = scale * K.Dot(qt, k.Slice(((b * T + j) * NKV + kvh) * HD, HD)) + d[j * NH];
                        max = MathF.Max(max, a[j]);
                    }
                    float sum = 0;
                    for (int r = 0; r < kept; r++)
                    {
                        int j = order[r];
                        a[j] = MathF.Exp(a[j] - max);
                        sum += a[j];
                    }
                    var zt = z.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    zt.Clear();
                    for (int r = 0; r < kept; r++)
                    {
                        int j = order[r];
                        a[j] /= sum;
                        K.Axpy(a[j], v.Slice(((b * T + j) * NKV + kvh) * HDV, HDV), zt);
                    }
                }
            }
        }
    }

    // dz: (B, T, NH, HDV)  dq, dk, dv: overwritten  ddelta: (B, T, NH) overwritten
    public static void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> att, Span<float> dq, Span<float> dk, Span<float> dv, Span<float> ddelta, int B, int T, int NH, int NKV, int HD, int HDV)
    {
        float scale = 1f / MathF.Sqrt(HD);
        int group = NH / NKV;
        dk[..(B * T * NKV * HD)].Clear();
        dv[..(B * T * NKV * HDV)].Clear();
        ddelta[..(B * T * NH)].Clear();
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                for (int t = 0; t < T; t++)
                {
                    var p = att.Slice(((b * NH + h) * T + t) * T, t + 1);
                    var dzt = dz.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
                    var dqt = dq.Slice(((b * T + t) * NH + h) * HD, HD);
                    dqt.Clear();
                    // undoes z = Σ_j p[j] v_j and p = softmax(s) (masked keys have p = 0, so they get nothing):
                    // ds[j] = p[j]·(dz·v_j − Σ_i p[i] dz·v_i)
                    float sum = 0;
                    for (int j = 0; j <= t; j++)
                    {
                        if (p[j] == 0) continue;
                        sum += p[j] * K.Dot(dzt, v.Slice(((b * T + j) * NKV + kvh) * HDV, HDV));
                    }
                    for (int j = 0; j <= t; j++)
                    {
                        if (p[j] == 0) continue;
                        long vo = ((long)(b * T + j) * NKV + kvh) * HDV, ko = ((long)(b * T + j) * NKV + kvh) * HD;
                        float ds = p[j] * (K.Dot(dzt, v.Slice((int)vo, HDV)) - sum);
                        K.Axpy(p[j], dzt, dv.Slice((int)vo, HDV));
                        // undoes s[j] = scale·q_t·k_j + δ[j]
                        ddelta[(b * T + j) * NH + h] += ds;
                        K.Axpy(ds * scale, k.Slice((int)ko, HD), dqt);
                        K.Axpy(ds * scale, qt, dk.Slice((int)ko, HD));
                    }
                }
            }
        }
    }
}
