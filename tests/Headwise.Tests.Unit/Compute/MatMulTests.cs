using Headwise.Compute;
using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Tolerance: the packed kernel sums in a different (blocked, FMA) order than the sequential scalar twin. Inputs are in
// [−1, 1], so partial sums stay ≲ √C and the order difference is ~eps·C/3 in practice; we allow |Δ| ≤ 1e-6·(C + 1),
// ~50× that, which still catches any wrong index or missed block (errors of order 0.1–1).
[Collection(KernelThreadsCollection.Name)]
public sealed class MatMulTests
{
    private static readonly int[] Sizes = [0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257];

    private static void Check(Random rng, int T, int C, int OC, WeightLayout layout, bool withBias, int threads)
    {
        float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC);
        float[] bias = withBias ? RandomArray(rng, OC) : [];
        var expected = new float[T * OC];
        var actual = new float[T * OC];
        actual.AsSpan().Fill(float.NaN); // every output must be written
        ScalarKernels.MatMul(x, w, bias, expected, T, C, OC, layout);
        using (new ThreadScope(threads))
        {
            K.MatMul(x, w, bias, actual, T, C, OC, layout);
        }
        AssertClose(expected, actual, 0, 1e-6 * (C + 1), $"MatMul T={T} C={C} OC={OC} {layout} bias={withBias} threads={threads}");
    }

    [Theory]
    [InlineData(WeightLayout.OutIn, false, 1)]
    [InlineData(WeightLayout.OutIn, true, 2)]
    [InlineData(WeightLayout.InOut, false, 2)]
    [InlineData(WeightLayout.InOut, true, 1)]
    public void EveryTAndOC_WithRotatingC(WeightLayout layout, bool withBias, int threads)
    {
        // the full T × OC grid; C cycles through the size set so every C meets many shapes without the full cube
        var rng = new Random(1000 + (int)layout * 10 + threads);
        for (int i = 0; i < Sizes.Length; i++)
        {
            for (int j = 0; j < Sizes.Length; j++)
            {
                int C = Sizes[(i * 7 + j * 3 + (int)layout) % Sizes.Length];
                Check(rng, Sizes[i], C, Sizes[j], layout, withBias, threads);
            }
        }
    }

    [Theory]
    [InlineData(WeightLayout.OutIn)]
    [InlineData(WeightLayout.InOut)]
    public void EveryC_AtSmallAndDecodeShapes(WeightLayout layout)
    {
        var rng = new Random(77 + (int)layout);
        foreach (int C in Sizes)
        {
            foreach (int T in new[] { 1, 4, 5, 17 })
            {
                Check(rng, T, C, 33, layout, C % 2 == 0, 1);
                Check(rng, T, C, 65, layout, C % 2 == 1, 2);
            }
        }
    }

    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.OutIn, 2)]
    [InlineData(WeightLayout.InOut, 1)]
    [InlineData(WeightLayout.InOut, 2)]
    public void SeveralDepthBlocksAndRowBlocks(WeightLayout layout, int threads)
    {
        // C > KC (several packed depth blocks), T > 2·MC (several row chunks when threaded), OC > NC (several column blocks)
        var rng = new Random(5 + threads);
        Check(rng, 250, 600, 300, layout, true, threads);
        Check(rng, 3, 1500, 700, layout, true, threads); // decode path with a long reduction
        Check(rng, 13, 50, 1100, layout, false, threads); // OC > NC: several packed column blocks
        Check(rng, 2, 40, 2100, layout, true, threads); // decode with OC wider than one GEMV column chunk
    }

    [Fact]
    public void ZeroDepthGivesBias()
    {
        var bias = new float[] { 1, 2, 3 };
        var output = new float[6];
        K.MatMul([], [], bias, output, 2, 0, 3, WeightLayout.OutIn);
        Assert.Equal(new float[] { 1, 2, 3, 1, 2, 3 }, output);
    }

    [Fact]
    public void ShortBuffersAreRejected()
    {
        Assert.Throws<ArgumentException>(() => K.MatMul(new float[5], new float[6], [], new float[6], 2, 3, 2, WeightLayout.OutIn));
        Assert.Throws<ArgumentException>(() => K.MatMul(new float[6], new float[5], [], new float[4], 2, 3, 2, WeightLayout.InOut));
    }
}
