using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Both sides accumulate the row statistics in double and apply the same float rounding steps; only the double
// summation order differs, which can flip one float rounding of the normalised value (≤ 1 ulp ≈ 1.2e-7·|n|) before the
// weight multiply: |Δ| ≤ 1e-6 + 1e-6·|expected| for outputs, rel 1e-7 for the scale.
public sealed class NormTests
{
    [Fact]
    public void LayerNormMatchesTwin()
    {
        var rng = new Random(11);
        for (int C = 0; C <= 257; C++)
        {
            int T = 1 + C % 3;
            // an offset mean checks that the variance is not computed as E[x²] − E[x]²
            float[] x = RandomArray(rng, T * C, 5, 7), w = RandomArray(rng, C, -2, 2), b = RandomArray(rng, C);
            foreach (bool withBias in new[] { true, false })
            {
                float[] e = new float[T * C], a = new float[T * C], es = new float[T], @as = new float[T];
                ScalarKernels.LayerNorm(x, w, withBias ? b : [], e, es, T, C, 1e-5f);
                K.LayerNorm(x, w, withBias ? b : [], a, @as, T, C, 1e-5f);
                AssertClose(e, a, 1e-6, 1e-6, $"LayerNorm C={C} bias={withBias}");
                if (C > 0) AssertClose(es, @as, 1e-7, 0, $"LayerNorm scale C={C}");
                K.LayerNorm(x, w, withBias ? b : [], a, [], T, C, 1e-5f); // scale is optional
                AssertClose(e, a, 1e-6, 1e-6, $"LayerNorm no-scale C={C}");
            }
        }
    }

    [Fact]
    public void RmsNormMatchesTwin()
    {
        var rng = new Random(12);
        for (int C = 0; C <= 257; C++)
        {
            int T = 1 + C % 3;
            float[] x = RandomArray(rng, T * C, -3, 3), w = RandomArray(rng, C, -2, 2);
            float[] e = new float[T * C], a = new float[T * C], es = new float[T], @as = new float[T];
            ScalarKernels.RmsNorm(x, w, e, es, T, C, 1e-6f);
            K.RmsNorm(x, w, a, @as, T, C, 1e-6f);
            AssertClose(e, a, 1e-6, 1e-6, $"RmsNorm C={C}");
            if (C > 0) AssertClose(es, @as, 1e-7, 0, $"RmsNorm scale C={C}");
            var inPlace = (float[])x.Clone();
            K.RmsNorm(inPlace, w, inPlace, [], T, C, 1e-6f);
            AssertClose(e, inPlace, 1e-6, 1e-6, $"RmsNorm in place C={C}");
        }
    }
}
