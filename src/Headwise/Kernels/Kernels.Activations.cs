using Headwise.Kernels.Reference;

namespace Headwise.Kernels;

public static partial class Kernels
{
    /// <summary>GELU, tanh approximation (HF "gelu_new"). In place allowed.</summary>
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> output) => ScalarKernels.GeluTanh(x, output);

    /// <summary>GELU, exact erf form (HF "gelu"). In place allowed.</summary>
    public static void GeluErf(ReadOnlySpan<float> x, Span<float> output) => ScalarKernels.GeluErf(x, output);

    /// <summary>SiLU x·σ(x). In place allowed.</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> output) => ScalarKernels.Silu(x, output);

    /// <summary>SwiGLU: out = silu(gate) · up. out may alias gate or up.</summary>
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output) => ScalarKernels.SwiGlu(gate, up, output);
}
