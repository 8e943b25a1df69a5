namespace Headwise.Training.Layers;

/// <summary>RMSNorm over the last dimension: out = x·rstd·w, rstd = 1/√(mean(x²) + ε).</summary>
public static class RmsNorm
{
    // x: (N, C)  w: (C)  out: (N, C)  rstd: (N) saved for the backward
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> output, Span<float> rstd, int N, int C, float eps)
    {
        for (int n = 0; n < N; n++)
        {
            var row = x.Slice(n * C, C);
            double ss = 0;
            for (int i = 0; i < C; i++) ss += (double)row[i] * row[i];
            float s = (float)(1.0 / Math.Sqrt(ss / C + eps));
            var o = output.Slice(n * C, C);
            for (int i = 0; i < C; i++)
            {
                o[i] = row[i] * s * w[i];
            }
            rstd[n] = s;
        }
    }

    // dout: (N, C)  dx: (N, C) +=  dw: (C) +=
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> rstd,
        Span<float> dx, Span<float> dw, int N, int C)
    {
        for (int n = 0; n < N; n++)
        {
            var row = x.Slice(n * C, C);
            var d = dout.Slice(n * C, C);
            var g = dx.Slice(n * C, C);
            float s = rstd[n];
            // d rstd / d x_i = −x_i·rstd³/C, so dx_i = rstd·w_i·dout_i − x_i·rstd³/C · Σ_j w_j·dout_j·x_j
            float dot = 0;
            for (int i = 0; i < C; i++) dot += w[i] * d[i] * row[i];
            float k = dot * s * s * s / C;
            for (int i = 0; i < C; i++)
            {
                // undoes: o[i] = row[i] * s * w[i]
                dw[i] += row[i] * s * d[i];
                g[i] += s * w[i] * d[i] - row[i] * k;
            }
        }
    }
}
