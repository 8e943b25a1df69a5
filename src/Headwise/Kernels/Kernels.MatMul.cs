using Headwise.Kernels.Reference;

namespace Headwise.Kernels;

public static partial class Kernels
{
    /// <summary>out = x · W (+ bias).</summary>
    // x: (T, C)  w: (OC, C) for OutIn or (C, OC) for InOut  bias: (OC) or empty  out: (T, OC)
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> output,
        int T, int C, int OC, WeightLayout layout)
    {
        Require(x.Length >= (long)T * C, "MatMul: x is shorter than T·C");
        Require(w.Length >= (long)C * OC, "MatMul: w is shorter than C·OC");
        Require(bias.IsEmpty || bias.Length >= OC, "MatMul: bias is shorter than OC");
        Require(output.Length >= (long)T * OC, "MatMul: out is shorter than T·OC");
        ScalarKernels.MatMul(x, w, bias, output, T, C, OC, layout);
    }
}
