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

    // The GEMM with its epilogue, as the two passes it fuses: out = x·W + bias, then the activation of out, residual += out,
    // or out = silu(out)·residual (SwiGlu: residual is the up projection's output).
    // x: (T, C)  w: (OC, C) for OutIn or (C, OC) for InOut  bias: (OC) or empty  out: (T, OC)  residual: (T, OC) for Residual/SwiGlu
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> output,
        int T, int C, int OC, WeightLayout layout, GemmEpilogue epilogue, Span<float> residual)
    {
        MatMul(x, w, bias, output, T, C, OC, layout);
        var o = output[..(T * OC)];
        switch (epilogue)
        {
            case GemmEpilogue.GeluTanh: GeluTanh(o, o); break;
            case GemmEpilogue.GeluErf: GeluErf(o, o); break;
            case GemmEpilogue.Silu: Silu(o, o); break;
            case GemmEpilogue.Residual:
                for (int i = 0; i < o.Length; i++) residual[i] += o[i];
                break;
            case GemmEpilogue.SwiGlu: SwiGlu(o, residual, o); break;
        }
    }
}
