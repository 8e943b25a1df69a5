using Headwise.Kernels.Reference;

namespace Headwise.Kernels;

public static partial class Kernels
{
    /// <summary>Rotary position embedding in place on the first <paramref name="rotaryDims"/> dims of each head.</summary>
    // x: (T, NH, HD)  positions: (T)  cos, sin: (maxPos, R/2)
    public static void Rope(Span<float> x, ReadOnlySpan<int> positions, int T, int NH, int HD, int rotaryDims,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeLayout layout)
    {
        Require(rotaryDims % 2 == 0 && rotaryDims <= HD, "Rope: rotaryDims must be even and ≤ head size");
        ScalarKernels.Rope(x, positions, T, NH, HD, rotaryDims, cos, sin, layout);
    }
}
