namespace Headwise.Training.Layers;

/// <summary>LayerNorm over the last dimension: out = (x − mean)·rstd·w + b, rstd = 1/√(var + ε).</summary>
public static class LayerNorm
{
    // x: (N, C)  w, b: (C)  out: (N, C)  mean, rstd: (N) saved for the backward
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> output,
        Span<float> mean, Span<float> rstd, int N, int C, float eps)
    {
        for (int n = 0; n < N; n++)
        {
            var row = x.Slice(n * C, C);
            double m = 0;
            for (int i = 0; i < C; i++) m += row[i];
            m /= C;
            double v = 0;
            for (int i = 0; i < C; i++) v += (row[i] - m) * (row[i] - m);
            v /= C;
            float s = (float)(1.0 / Math.Sqrt(v + eps));
            float fm = (float)m;
            var o = output.Slice(n * C, C);
            for (int i = 0; i < C; i++)
            {
                o[i] = (row[i] - fm) * s * w[i] + b[i];
            }
            mean[n] = fm;
            rstd[n] = s;
        }
    }

    // dout: (N, C)  dx: (N, C) +=  dw, db: (C) +=
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> rstd, Span<float> dx, Span<float> dw, Span<float> db, int N, int C)
    {
        for (int n = 0; n < N; n++)
        {
            var row = x.Slice(n * C, C);
            var d = dout.Slice(n * C, C);
            var g = dx.Slice(n * C, C);
            float m = mean[n], s = rstd[n];
            // two reductions: mean(w·dout) and mean(w·dout·norm)
            float dnormMean = 0, dnormNormMean = 0;
            for (int i = 0; i < C; i++)
            {
                float norm = (row[i] - m) * s;
                float dnorm = w[i] * d[i];
                dnormMean += dnorm;
                dnormNormMean += dnorm * norm;
            }
            dnormMean /= C;
            dnormNormMean /= C;
            for (int i = 0; i < C; i++)
            {
                float norm = (row[i] - m) * s;
                // undoes: o[i] = (row[i] - fm) * s * w[i] + b[i]
                db[i] += d[i];
                dw[i] += norm * d[i];
                // the three terms: direct, through the mean, through the variance
                g[i] += (w[i] * d[i] - dnormMean - norm * dnormNormMean) * s;
            }
        }
    }
}
