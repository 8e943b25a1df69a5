using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>
/// sinkhorn — doubly-stochastic attention by Sinkhorn iterations ("Geometric Attention: regime-explicit operator semantics";
/// Sinkformers, Sander et al., 2022), in a causal form. A causal (lower-triangular) matrix whose rows and columns all sum to
/// one is the identity, so the causal form here balances each key's column only over the queries that have seen it so far:
/// with scores L⁰[t, j] = q_t·k_j / √HD for j ≤ t (−∞ above the diagonal), N iterations of
///   R[t, j] = L[t, j] − log Σ_{j'≤t} exp L[t, j']          (rows: each query's weights sum to one)
///   L[t, j] = R[t, j] − log Σ_{t'=j..t} exp R[t', j]       (causal columns: key j's mass over queries j..t is one)
/// then a final row normalisation p[t, ·] = softmax(L[t, ·]), z_t = Σ_j p[t, j] v_j. Row t reads rows ≤ t only, so the
/// model stays causal; N = 0 is softmax attention. All of it in log space (in double), so no weight underflows.
/// The backward runs the same steps in reverse, recomputing the iterates of one (batch, head) at a time.
/// </summary>
public static class SinkhornAttention
{
    // q: (B, T, NH, HD)  k: (B, T, NKV, HD)  v: (B, T, NKV, HDV)  att: (B, NH, T, T) saved  z: (B, T, NH, HDV)
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> att, Span<float> z,
        int B, int T, int NH, int NKV, int HD, int HDV, int iters)
    {
        int group = NH / NKV;
        var work = new double[(2 * iters + 2) * T * T];
        z[..(B * T * NH * HDV)].Clear();
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                var p = att.Slice((b * NH + h) * T * T, T * T);
                Balance(q, k, work, p, b, h, kvh, T, NH, NKV, HD, iters);
                for (int t = 0; t < T; t++)
                {
                    var zt = z.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    for (int j = 0; j <= t; j++) K.Axpy(p[t * T + j], v.Slice(((b * T + j) * NKV + kvh) * HDV, HDV), zt);
                }
            }
        }
    }

    // dz: (B, T, NH, HDV) → dq (B, T, NH, HD), dk (B, T, NKV, HD), dv (B, T, NKV, HDV), all overwritten
    public static void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> att, Span<float> dq, Span<float> dk, Span<float> dv, int B, int T, int NH, int NKV, int HD, int HDV, int iters)
    {
        int group = NH / NKV;
        double scale = 1 / Math.Sqrt(HD);
        var work = new double[(2 * iters + 2) * T * T];
        var dL = new double[T * T];
        var dR = new double[T * T];
        var pf = new float[T * T];
        dq[..(B * T * NH * HD)].Clear();
        dk[..(B * T * NKV * HD)].Clear();
        dv[..(B * T * NKV * HDV)].Clear();
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                int kvh = h / group;
                // the iterates: work = L⁰, then (R, C) per iteration, then the final L
                Balance(q, k, work, pf, b, h, kvh, T, NH, NKV, HD, iters);
                var p = att.Slice((b * NH + h) * T * T, T * T);
                Array.Clear(dL);
                for (int t = 0; t < T; t++)
                {
                    var dzt = dz.Slice(((b * T + t) * NH + h) * HDV, HDV);
                    // undoes z_t = Σ_j p[t, j] v_j, then the final row softmax: dL = p ⊙ (dp − Σ p·dp)
                    double dot = 0;
                    for (int j = 0; j <= t; j++)
                    {
                        int vo = ((b * T + j) * NKV + kvh) * HDV;
                        float dp = K.Dot(dzt, v.Slice(vo, HDV));
                        K.Axpy(p[t * T + j], dzt, dv.Slice(vo, HDV));
                        dL[t * T + j] = dp;
                        dot += p[t * T + j] * dp;
                    }
                    for (int j = 0; j <= t; j++) dL[t * T + j] = p[t * T + j] * (dL[t * T + j] - dot);
                }
                for (int it = iters - 1; it >= 0; it--)
                {
                    var R = work.AsSpan((1 + 2 * it) * T * T, T * T);
                    var Cc = work.AsSpan((2 + 2 * it) * T * T, T * T);
                    // undoes L[t, j] = R[t, j] − C[t, j], C[t, j] = lse_{t'=j..t} R[t', j]:
                    // dR[t', j] = dL[t', j] − Σ_{t ≥ t'} dL[t, j]·exp(R[t', j] − C[t, j])
                    for (int j = 0; j < T; j++)
                    {
                        for (int t2 = j; t2 < T; t2++)
                        {
                            double s = dL[t2 * T + j];
                            for (int t = t2; t < T; t++) s -= dL[t * T + j] * Math.Exp(R[t2 * T + j] - Cc[t * T + j]);
                            dR[t2 * T + j] = s;
                        }
                    }
                    // undoes R = L − rowlse(L): dL[t, j] = dR[t, j] − exp(R[t, j])·Σ_j' dR[t, j']
                    for (int t = 0; t < T; t++)
                    {
                        double sum = 0;
                        for (int j = 0; j <= t; j++) sum += dR[t * T + j];
                        for (int j = 0; j <= t; j++) dL[t * T + j] = dR[t * T + j] - Math.Exp(R[t * T + j]) * sum;
                    }
                }
                // undoes L⁰[t, j] = scale·q_t·k_j
                for (int t = 0; t < T; t++)
                {
                    var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
                    var dqt = dq.Slice(((b * T + t) * NH + h) * HD, HD);
                    for (int j = 0; j <= t; j++)
                    {
                        float ds = (float)(dL[t * T + j] * scale);
                        int ko = ((b * T + j) * NKV + kvh) * HD;
                        K.Axpy(ds, k.Slice(ko, HD), dqt);
                        K.Axpy(ds, qt, dk.Slice(ko, HD));
                    }
                }
            }
        }
    }

    // One (batch, head): work[0] = L⁰, work[1 + 2i] = R of iteration i, work[2 + 2i] = its causal column lse C, the last
    // slot the final L; p (T, T) = the final row softmax, 0 above the diagonal.
    private static void Balance(ReadOnlySpan<float> q, ReadOnlySpan<float> k, double[] work, Span<float> p, int b, int h, int kvh,
        int T, int NH, int NKV, int HD, int iters)
    {
        double scale = 1 / Math.Sqrt(HD);
        var L = work.AsSpan(0, T * T);
        for (int t = 0; t < T; t++)
        {
            var qt = q.Slice(((b * T + t) * NH + h) * HD, HD);
            for (int j = 0; j <= t; j++) L[t * T + j] = scale * K.Dot(qt, k.Slice(((b * T + j) * NKV + kvh) * HD, HD));
        }
        for (int it = 0; it < iters; it++)
        {
            var R = work.AsSpan((1 + 2 * it) * T * T, T * T);
            var Cc = work.AsSpan((2 + 2 * it) * T * T, T * T);
            var next = work.AsSpan((3 + 2 * it) * T * T, T * T);
            for (int t = 0; t < T; t++)
            {
                double lse = RowLse(L.Slice(t * T, t + 1));
                for (int j = 0; j <= t; j++) R[t * T + j] = L[t * T + j] - lse;
            }
            for (int j = 0; j < T; j++)
            {
                // running log Σ_{t'=j..t} exp R[t', j]
                double m = double.NegativeInfinity, s = 0;
                for (int t = j; t < T; t++)
                {
                    double r = R[t * T + j];
                    if (r > m)
                    {
                        s = s * Math.Exp(m - r) + 1;
                        m = r;
                    }
                    else
                    {
                        s += Math.Exp(r - m);
                    }
                    Cc[t * T + j] = m + Math.Log(s);
                    next[t * T + j] = r - Cc[t * T + j];
                }
            }
            L = next;
        }
        p.Clear();
        for (int t = 0; t < T; t++)
        {
            double lse = RowLse(L.Slice(t * T, t + 1));
            for (int j = 0; j <= t; j++) p[t * T + j] = (float)Math.Exp(L[t * T + j] - lse);
        }
    }

    private static double RowLse(ReadOnlySpan<double> x)
    {
        double m = double.NegativeInfinity;
        foreach (double v in x) m = Math.Max(m, v);
        double s = 0;
        foreach (double v in x) s += Math.Exp(v - m);
        return m + Math.Log(s);
    }
}
