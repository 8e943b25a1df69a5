using Headwise.Compute;
using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// The vector paths perform the twin's exact float operations (two products, one add/sub, no FMA): tolerance 0.
public sealed class RopeTests
{
    [Theory]
    [InlineData(RopeLayout.RotateHalf)]
    [InlineData(RopeLayout.Interleaved)]
    public void RopeMatchesTwinExactly(RopeLayout layout)
    {
        var rng = new Random(21 + (int)layout);
        var (cos, sin) = K.RopeTables(64, 258, 10000.0);
        // every head size 0..257 with a full rotation (R = HD rounded down to even) and a partial one (R ≈ HD/4)
        for (int HD = 0; HD <= 257; HD++)
        {
            foreach (int R in new[] { HD / 2 * 2, HD / 8 * 2 })
            {
                const int T = 3, NH = 2;
                var (c, s) = R == 258 ? (cos, sin) : K.RopeTables(64, R, 10000.0);
                float[] x = RandomArray(rng, T * NH * HD);
                int[] positions = [0, 5, 63];
                float[] expected = (float[])x.Clone(), actual = (float[])x.Clone();
                ScalarKernels.Rope(expected, positions, T, NH, HD, R, c, s, layout);
                K.Rope(actual, positions, T, NH, HD, R, c, s, layout);
                AssertExact(expected, actual, $"Rope {layout} HD={HD} R={R}");
            }
        }
    }

    [Fact]
    public void RopeRejectsOddRotaryDims() =>
        Assert.Throws<ArgumentException>(() => K.Rope(new float[8], [0], 1, 1, 8, 3, new float[8], new float[8], RopeLayout.RotateHalf));
}
