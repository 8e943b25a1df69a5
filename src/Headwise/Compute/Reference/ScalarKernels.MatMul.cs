namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // x: (T, C)  w: (OC, C) for OutIn or (C, OC) for InOut  bias: (OC) or empty  out: (T, OC)
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> output,
        int T, int C, int OC, WeightLayout layout)
    {
        for (int t = 0; t < T; t++)
        {
            for (int o = 0; o < OC; o++)
            {
                float sum = bias.IsEmpty ? 0f : bias[o];
                for (int i = 0; i < C; i++)
                {
                    float wv = layout == WeightLayout.OutIn ? w[o * C + i] : w[i * OC + o];
                    sum += x[t * C + i] * wv;
                }
                output[t * OC + o] = sum;
            }
        }
    }
}
