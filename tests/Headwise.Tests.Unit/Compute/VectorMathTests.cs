using System.Runtime.Intrinsics;
using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
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

    // A float dot product of n terms errs by at most ~n·2⁻²⁴ of Σ|a·b| whatever its order; the fast paths' error is far
    // below that bound, which still separates a right sum from a wrong one (a dropped or doubled term moves it by ≥ 1e-3).
    private const double DotRelToAbsSum = 1e-5;

    [Fact]
    public unsafe void DotsMatchTwinAtEveryLength()
    {
        var rng = new Random(5);
        for (int n = 0; n <= 257; n++)
        {
            var a = RandomArray(rng, n);
            var b = RandomArray(rng, n);
            double expected = ScalarKernels.Dot(a, b), scale = 0;
            for (int i = 0; i < n; i++) scale += Math.Abs((double)a[i] * b[i]);
            float training = K.Dot(a, b), inference;
            fixed (float* pa = a, pb = b) inference = K.Dot(pa, pb, n);
            Assert.True(Math.Abs(training - expected) <= DotRelToAbsSum * scale + 1e-30, $"training-order dot, n = {n}: {training} vs {expected}");
            Assert.True(Math.Abs(inference - expected) <= DotRelToAbsSum * scale + 1e-30, $"kernel dot, n = {n}: {inference} vs {expected}");
        }
    }

    [Fact]
    public unsafe void AxpyScaleAndMaxMatchTwinsExactly()
    {
        // one or two roundings per element in a fixed place, so every order and vector width gives the twin's bits
        var rng = new Random(6);
        for (int n = 0; n <= 257; n++)
        {
            var x = RandomArray(rng, n);
            var y = RandomArray(rng, n);
            var expected = (float[])y.Clone();
            ScalarKernels.Axpy(0.37f, x, expected);
            K.Axpy(0.37f, x, y);
            Assert.Equal(expected, y);

            ScalarKernels.Scale(expected, -1.7f);
            fixed (float* py = y) K.Scale(py, -1.7f, n);
            Assert.Equal(expected, y);

            fixed (float* px = x) Assert.Equal(ScalarKernels.Max(x), K.Max(px, n));
        }
    }
}
