using System.Runtime.Intrinsics;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// The inlined AVX-512 exp functions against Math.Exp on dense grids. Tolerances: float ExpSingle ≤ 2.5e-7 relative
// (≈ 2 ulp, Cephes polynomial + float reduction); double ExpDouble ≤ 1e-13 relative (degree-11 Taylor, double
// reduction), far below the float rounding of the activations that use it.
public sealed class VectorMathTests
{
    [Fact]
    public void ExpSingleIsWithinTwoUlp()
    {
        Assert.SkipUnless(Vector512.IsHardwareAccelerated, "AVX-512 is absent on this processor (the exp functions are AVX-512 only)");
        double worst = 0;
        var lanes = new float[16];
        for (int i = 0; i < 200_000; i += 16)
        {
            for (int l = 0; l < 16; l++) lanes[l] = -87f + 175f * (i + l) / 200_000f;
            var e = K.ExpSingle(Vector512.Create(lanes));
            for (int l = 0; l < 16; l++)
            {
                double exact = Math.Exp(lanes[l]);
                worst = Math.Max(worst, Math.Abs(e[l] - exact) / exact);
            }
        }
        Assert.True(worst <= 2.5e-7, $"ExpSingle worst relative error {worst:E3}");
        var special = K.ExpSingle(Vector512.Create(float.NegativeInfinity));
        Assert.Equal(0f, special[0]);
        Assert.Equal(float.PositiveInfinity, K.ExpSingle(Vector512.Create(100f))[0]);
        Assert.True(float.IsNaN(K.ExpSingle(Vector512.Create(float.NaN))[0]));
    }

    [Fact]
    public void ExpDoubleIsNearlyExact()
    {
        Assert.SkipUnless(Vector512.IsHardwareAccelerated, "AVX-512 is absent on this processor (the exp functions are AVX-512 only)");
        double worst = 0;
        var lanes = new double[8];
        for (int i = 0; i < 200_000; i += 8)
        {
            for (int l = 0; l < 8; l++) lanes[l] = -708 + 1417.0 * (i + l) / 200_000;
            var e = K.ExpDouble(Vector512.Create(lanes));
            for (int l = 0; l < 8; l++)
            {
                double exact = Math.Exp(lanes[l]);
                worst = Math.Max(worst, Math.Abs(e[l] - exact) / exact);
            }
        }
        Assert.True(worst <= 1e-13, $"ExpDouble worst relative error {worst:E3}");
        Assert.Equal(0.0, K.ExpDouble(Vector512.Create(double.NegativeInfinity))[0]);
        Assert.Equal(double.PositiveInfinity, K.ExpDouble(Vector512.Create(1000.0))[0]);
        Assert.True(double.IsNaN(K.ExpDouble(Vector512.Create(double.NaN))[0]));
    }
}
