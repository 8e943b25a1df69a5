using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

public sealed class SoftmaxTests
{
    // The kernel takes exponentials in float (≤ a few ulp each) and sums each lane in float before adding into a double,
    // so the sum carries a relative error of ~1e-6 at these lengths; log turns that into an absolute error of the same size.
    private const double LogSumExpAbs = 1e-5;

    [Fact]
    public void LogSumExpMatchesTwinAtEveryLength()
    {
        var rng = new Random(11);
        for (int n = 0; n <= 257; n++)
        {
            var x = RandomArray(rng, n, -10, 10);
            if (n > 3) x[n / 2] = float.NegativeInfinity; // a masked logit adds nothing
            double expected = ScalarKernels.LogSumExp(x), actual = K.LogSumExp(x);
            if (n == 0)
            {
                Assert.Equal(double.NegativeInfinity, actual);
                continue;
            }
            Assert.True(Math.Abs(actual - expected) <= LogSumExpAbs, $"n = {n}: {actual} vs {expected}");
        }
    }

    [Fact]
    public void LogSumExpIsStableForLargeLogits()
    {
        // e^1000 overflows float and double: subtracting the max first keeps it finite
        float[] x = [1000f, 1000f, 999f];
        Assert.Equal(1000 + Math.Log(2 + Math.Exp(-1)), K.LogSumExp(x), 1e-9);
    }
}
