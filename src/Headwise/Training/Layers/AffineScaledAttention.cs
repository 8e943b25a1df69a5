namespace Headwise.Training.Layers;

/// <summary>
/// affine_scaled — "Affine-Scaled Attention: Towards Flexible and Stable Transformer Attention" (Bae et al., 2026): the
/// softmax weights p of each head pass through an input-dependent affine map, so a row need not sum to one. The paper's
/// abstract fixes "an input-dependent scale and a bias on the softmax weights"; the form chosen here (docs/variants.md):
/// per token t and head h, from a projection a = x_t·W_aᵀ (W_a: (2·NH, C), no bias) of the block's normalised input,
///   α_{t,h} = 2·σ(a[h])        (scale in (0, 2); 1 at a = 0)
///   β_{t,h} = tanh(a[NH + h])   (offset in (−1, 1); 0 at a = 0)
///   w[t, j] = α_{t,h}·p[t, j] + β_{t,h} / (t + 1)       (the offset spread uniformly over the t + 1 visible keys)
///   z_t = Σ_{j≤t} w[t, j] v_j = α·(softmax attention's z_t) + β·mean_{j≤t} v_j
/// so a near-zero W_a (the init) starts the model at plain softmax attention. The saved pattern is p (softmax's).
/// </summary>
public static class AffineScaledAttention
{
    /// <summary>Projection outputs per token: NH scale logits, then NH offset logits.</summary>
    public static int ProjectionWidth(int NH) => 2 * NH;

    // logits: (B, T, 2·NH)  zRaw: (B, T, NH, HDV) softmax attention's output  v: (B, T, NKV, HDV)  z: (B, T, NH, HDV) out
    public static void Forward(ReadOnlySpan<float> logits, ReadOnlySpan<float> zRaw, ReadOnlySpan<float> v, Span<float> z,
        int B, int T, int NH, int NKV, int HDV)
    {
        int group = NH / NKV;
        Span<float> sum = HDV <= 1024 ? stackalloc float[HDV] : new float[HDV];
        for (int b = 0; b < B; b++)
        {
            for (int kvh = 0; kvh < NKV; kvh++)
            {
                sum.Clear();
                for (int t = 0; t < T; t++)
                {
                    // running Σ_{j≤t} v_j of this key/value head
                    Compute.Kernels.Add(sum, v.Slice(((b * T + t) * NKV + kvh) * HDV, HDV), sum);
                    var a = logits.Slice((b * T + t) * 2 * NH, 2 * NH);
                    for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    {
                        float alpha = Scale(a[h]), beta = MathF.Tanh(a[NH + h]) / (t + 1);
                        var zr = zRaw.Slice(((b * T + t) * NH + h) * HDV, HDV);
                        var zo = z.Slice(((b * T + t) * NH + h) * HDV, HDV);
                        for (int d = 0; d < HDV; d++) zo[d] = alpha * zr[d] + beta * sum[d];
                    }
                }
            }
        }
    }

    // dz: (B, T, NH, HDV) → dzRaw (B, T, NH, HDV) overwritten, dLogits (B, T, 2·NH) overwritten.
    // The offset's path into v is BackwardValues, run after the attention's backward (which overwrites dv).
    public static void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> logits, ReadOnlySpan<float> zRaw, ReadOnlySpan<float> v,
        Span<float> dzRaw, Span<float> dLogits, int B, int T, int NH, int NKV, int HDV)
    {
        int group = NH / NKV;
        Span<float> sum = HDV <= 1024 ? stackalloc float[HDV] : new float[HDV];
        for (int b = 0; b < B; b++)
        {
            for (int kvh = 0; kvh < NKV; kvh++)
            {
                sum.Clear();
                for (int t = 0; t < T; t++)
                {
                    Compute.Kernels.Add(sum, v.Slice(((b * T + t) * NKV + kvh) * HDV, HDV), sum);
                    var a = logits.Slice((b * T + t) * 2 * NH, 2 * NH);
                    var da = dLogits.Slice((b * T + t) * 2 * NH, 2 * NH);
                    for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    {
                        float alpha = Scale(a[h]), tanh = MathF.Tanh(a[NH + h]);
                        var dzh = dz.Slice(((b * T + t) * NH + h) * HDV, HDV);
                        var zr = zRaw.Slice(((b * T + t) * NH + h) * HDV, HDV);
                        var dzr = dzRaw.Slice(((b * T + t) * NH + h) * HDV, HDV);
                        // undoes z = α·zRaw + β·sum/(t+1):  dzRaw = α·dz,  dα = dz·zRaw,  dβ = dz·sum/(t+1)
                        float dAlpha = 0, dBeta = 0;
                        for (int d = 0; d < HDV; d++)
                        {
                            dzr[d] = alpha * dzh[d];
                            dAlpha += dzh[d] * zr[d];
                            dBeta += dzh[d] * sum[d];
                        }
                        // α = 2σ(a): dα/da = 2σ(1 − σ) = α(1 − α/2);  β = tanh(b): dβ/db = 1 − β²
                        da[h] = dAlpha * alpha * (1 - alpha / 2);
                        da[NH + h] = dBeta / (t + 1) * (1 - tanh * tanh);
                    }
                }
            }
        }
    }

    // dv: (B, T, NKV, HDV) += the offset's share: dv_j += Σ_{t≥j} Σ_{h of the group} β_{t,h}/(t+1)·dz_{t,h}
    public static void BackwardValues(ReadOnlySpan<float> dz, ReadOnlySpan<float> logits, Span<float> dv, int B, int T, int NH, int NKV, int HDV)
    {
        int group = NH / NKV;
        Span<float> acc = HDV <= 1024 ? stackalloc float[HDV] : new float[HDV];
        for (int b = 0; b < B; b++)
        {
            for (int kvh = 0; kvh < NKV; kvh++)
            {
                acc.Clear();
                // a suffix sum over the queries t ≥ j
                for (int t = T - 1; t >= 0; t--)
                {
                    var a = logits.Slice((b * T + t) * 2 * NH, 2 * NH);
                    for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    {
                        Compute.Kernels.Axpy(MathF.Tanh(a[NH + h]) / (t + 1), dz.Slice(((b * T + t) * NH + h) * HDV, HDV), acc);
                    }
                    var dvt = dv.Slice(((b * T + t) * NKV + kvh) * HDV, HDV);
                    Compute.Kernels.Add(dvt, acc, dvt);
                }
            }
        }
    }

    private static float Scale(float a) => 2f / (1f + MathF.Exp(-a));
}
