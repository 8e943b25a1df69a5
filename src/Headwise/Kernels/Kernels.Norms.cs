using Headwise.Kernels.Reference;

namespace Headwise.Kernels;

public static partial class Kernels
{
    /// <summary>LayerNorm over the last dimension; optionally writes each row's scale √(var + ε).</summary>
    // x: (T, C)  weight, bias: (C)  out: (T, C)  scale: (T) or empty
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output,
        Span<float> scale, int T, int C, float eps)
    {
        Require(x.Length >= T * C && output.Length >= T * C && weight.Length >= C, "LayerNorm: shape mismatch");
        ScalarKernels.LayerNorm(x, weight, bias, output, scale, T, C, eps);
    }

    /// <summary>RMSNorm over the last dimension; optionally writes each row's scale √(mean(x²) + ε).</summary>
    // x: (T, C)  weight: (C)  out: (T, C)  scale: (T) or empty
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> output, Span<float> scale,
        int T, int C, float eps)
    {
        Require(x.Length >= T * C && output.Length >= T * C && weight.Length >= C, "RmsNorm: shape mismatch");
        ScalarKernels.RmsNorm(x, weight, output, scale, T, C, eps);
    }
}
