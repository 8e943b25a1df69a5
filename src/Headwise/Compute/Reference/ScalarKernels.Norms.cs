namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // x: (T, C)  weight, bias: (C)  out: (T, C)  scale: (T) or empty — scale = sqrt(var + eps), as TransformerLens' ln.hook_scale
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output,
        Span<float> scale, int T, int C, float eps)
    {
        for (int t = 0; t < T; t++)
        {
            var row = x.Slice(t * C, C);
            double mean = 0;
            for (int i = 0; i < C; i++) mean += row[i];
            mean /= C;
            double variance = 0;
            for (int i = 0; i < C; i++) variance += (row[i] - mean) * (row[i] - mean);
            variance /= C;
            double s = Math.Sqrt(variance + eps);
            if (!scale.IsEmpty) scale[t] = (float)s;
            for (int i = 0; i < C; i++)
            {
                output[t * C + i] = (float)((row[i] - mean) / s) * weight[i] + (bias.IsEmpty ? 0f : bias[i]);
            }
        }
    }

    // x: (T, C)  weight: (C)  out: (T, C)  scale: (T) or empty — scale = sqrt(mean(x²) + eps)
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> output, Span<float> scale,
        int T, int C, float eps)
    {
        for (int t = 0; t < T; t++)
        {
            var row = x.Slice(t * C, C);
            double ss = 0;
            for (int i = 0; i < C; i++) ss += (double)row[i] * row[i];
            double s = Math.Sqrt(ss / C + eps);
            if (!scale.IsEmpty) scale[t] = (float)s;
            for (int i = 0; i < C; i++)
            {
                output[t * C + i] = weight[i] * (float)(row[i] / s);
            }
        }
    }
}
