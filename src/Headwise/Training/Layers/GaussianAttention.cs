namespace Headwise.Training.Layers;

/// <summary>
/// gaussian — after "Gaussian Adaptive Attention is All You Need" (Ioannides et al., 2024), whose GAAM weights features by
/// a Gaussian density with learned means and variances. Here (docs/variants.md) the Gaussian is over the relative distance
/// of query and key, one per head with a learned mean μ_h and log-variance s_h, added as a log-density to softmax's scores:
///   d = (t − j) / T_ctx      (the distance in units of the context length, so the parameters do not depend on T_ctx)
///   s[t, j] = q_t·k_j / √HD − (d − μ_h)² / (2·exp(s_h)),   p = softmax_j(s) over j ≤ t,  z_t = Σ_j p[t, j] v_j
/// The normaliser −½·log(2π·exp(s_h)) of the density is the same for every key and cancels in the softmax. At init
/// (μ = s = 0) the bias lies in [−½, 0]: a slight recency preference, close to plain softmax. The softmax part is
/// <see cref="Attention"/> with a score bias; this file makes the bias and reduces the score gradient to dμ, ds.
/// </summary>
public static class GaussianAttention
{
    // mu, logVar: (NH)  bias: (NH, T, T) out, 0 above the diagonal (masked anyway)
    public static void Bias(ReadOnlySpan<float> mu, ReadOnlySpan<float> logVar, Span<float> bias, int NH, int T, int contextLength)
    {
        for (int h = 0; h < NH; h++)
        {
            float precision = MathF.Exp(-logVar[h]);
            for (int t = 0; t < T; t++)
            {
                var row = bias.Slice((h * T + t) * T, T);
                for (int j = 0; j < T; j++)
                {
                    float u = (float)(t - j) / contextLength - mu[h];
                    row[j] = j <= t ? -0.5f * u * u * precision : 0f;
                }
            }
        }
    }

    // dScores: (B, NH, T, T), d loss / d s[t, j] for j ≤ t  →  dMu, dLogVar: (NH) +=
    // undoes s += −(d − μ)²/(2e^{s_h}):  ∂/∂μ = (d − μ)·e^{−s_h},  ∂/∂s_h = (d − μ)²·e^{−s_h}/2
    public static void Backward(ReadOnlySpan<float> dScores, ReadOnlySpan<float> mu, ReadOnlySpan<float> logVar, Span<float> dMu, Span<float> dLogVar,
        int B, int NH, int T, int contextLength)
    {
        for (int h = 0; h < NH; h++)
        {
            float precision = MathF.Exp(-logVar[h]);
            double gMu = 0, gLogVar = 0;
            for (int b = 0; b < B; b++)
            {
                for (int t = 0; t < T; t++)
                {
                    var ds = dScores.Slice(((b * NH + h) * T + t) * T, t + 1);
                    for (int j = 0; j <= t; j++)
                    {
                        float u = (float)(t - j) / contextLength - mu[h];
                        gMu += ds[j] * u * precision;
                        gLogVar += ds[j] * 0.5f * u * u * precision;
                    }
                }
            }
            dMu[h] += (float)gMu;
            dLogVar[h] += (float)gLogVar;
        }
    }
}
