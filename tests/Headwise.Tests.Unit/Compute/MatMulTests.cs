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

    // ---------------------------------------------------------------- epilogues (GemmEpilogue)

    private static readonly GemmEpilogue[] Epilogues = [GemmEpilogue.GeluTanh, GemmEpilogue.GeluErf, GemmEpilogue.Silu, GemmEpilogue.Residual];

    // Against the scalar twin: the GEMM's tolerance above, times the activations' slope (≤ 1.13 for GELU, 1.1 for SiLU),
    // plus 1e-6 relative for the activation itself (the kernels evaluate it in double: within an ulp of the reference).
    private static void CheckEpilogue(Random rng, int T, int C, int OC, WeightLayout layout, GemmEpilogue epilogue, int threads)
    {
        float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), bias = RandomArray(rng, OC);
        float[] residual = epilogue is GemmEpilogue.Residual or GemmEpilogue.SwiGlu ? RandomArray(rng, T * OC) : [];
        float[] expectedResidual = (float[])residual.Clone();
        var expected = new float[T * OC];
        var actual = new float[T * OC];
        actual.AsSpan().Fill(float.NaN); // every output must be written
        ScalarKernels.MatMul(x, w, bias, expected, T, C, OC, layout, epilogue, expectedResidual);
        using (new ThreadScope(threads))
        {
            K.MatMul(x, w, null, bias, actual, T, C, OC, layout, epilogue, residual);
        }
        string what = $"MatMul {epilogue} T={T} C={C} OC={OC} {layout} threads={threads}";
        AssertClose(expected, actual, 1e-6, 1.2e-6 * (C + 1), what);
        AssertClose(expectedResidual, residual, 1e-6, 1.2e-6 * (C + 1), what + " residual");
    }

    [Theory]
    [InlineData(GemmEpilogue.GeluTanh, WeightLayout.InOut, 2)]
    [InlineData(GemmEpilogue.GeluErf, WeightLayout.OutIn, 1)]
    [InlineData(GemmEpilogue.Silu, WeightLayout.OutIn, 2)]
    [InlineData(GemmEpilogue.Residual, WeightLayout.InOut, 1)]
    [InlineData(GemmEpilogue.Residual, WeightLayout.OutIn, 2)]
    [InlineData(GemmEpilogue.SwiGlu, WeightLayout.OutIn, 1)]
    [InlineData(GemmEpilogue.SwiGlu, WeightLayout.OutIn, 2)]
    [InlineData(GemmEpilogue.SwiGlu, WeightLayout.InOut, 2)]
    public void EpilogueEveryTAndOC_WithRotatingC(GemmEpilogue epilogue, WeightLayout layout, int threads)
    {
        var rng = new Random(2000 + (int)epilogue * 10 + threads);
        for (int i = 0; i < Sizes.Length; i++)
        {
            for (int j = 0; j < Sizes.Length; j++)
            {
                int C = Sizes[(i * 5 + j * 3 + (int)epilogue) % Sizes.Length];
                CheckEpilogue(rng, Sizes[i], C, Sizes[j], layout, epilogue, threads);
            }
        }
    }

    // Fused against the passes it replaces (the GEMM, then Kernels.GeluTanh/GeluErf/Silu over out, or Kernels.Add into the
    // residual), prepacked and not, across the depth (256) and column (1,024) blocks: bitwise for the residual add (the
    // same additions); bitwise for an activation when OC is a multiple of 32 (every row of every tile then takes the same
    // vector path as the flat pass); else within 1e-6 relative, since the flat pass may send a row's tail down a narrower
    // vector path whose exp differs in the last bit (or, for the tanh GELU, computes in double where AVX-512's 16 float
    // lanes do not: their e^t overflows to a quotient of 0 where the double form's is a tiny float, hence 1e-30 absolute).
    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.OutIn, 2)]
    [InlineData(WeightLayout.InOut, 1)]
    [InlineData(WeightLayout.InOut, 2)]
    public void FusedEpilogueIsTheSeparatePass(WeightLayout layout, int threads)
    {
        int[] cs = [0, 1, 7, 255, 256, 257, 513], ocs = [1, 17, 32, 33, 64, 257, 1024, 1025], ts = [1, 8, 9, 13, 121, 257];
        var rng = new Random(41 + (int)layout * 10 + threads);
        using var scope = new ThreadScope(threads);
        for (int i = 0; i < cs.Length; i++)
        {
            for (int j = 0; j < ocs.Length; j++)
            {
                int C = cs[i], OC = ocs[j], T = ts[(i + j) % ts.Length];
                var epilogue = Epilogues[(i + 2 * j) % Epilogues.Length];
                float[] x = RandomArray(rng, T * C, -2, 2), w = RandomArray(rng, C * OC), bias = (i + j) % 2 == 0 ? RandomArray(rng, OC) : [];
                var packed = (i + j) % 3 == 0 ? null : K.PackWeight(w, C, OC, layout);
                float[] residual = RandomArray(rng, T * OC), fusedResidual = (float[])residual.Clone();
                var expected = new float[T * OC];
                var actual = new float[T * OC];
                K.MatMul(x, w, packed, bias, expected, T, C, OC, layout);
                switch (epilogue)
                {
                    case GemmEpilogue.GeluTanh: K.GeluTanh(expected, expected); break;
                    case GemmEpilogue.GeluErf: K.GeluErf(expected, expected); break;
                    case GemmEpilogue.Silu: K.Silu(expected, expected); break;
                    case GemmEpilogue.Residual: K.Add(residual, expected, residual); break;
                }
                K.MatMul(x, w, packed, bias, actual, T, C, OC, layout, epilogue, epilogue == GemmEpilogue.Residual ? fusedResidual : default);
                string what = $"fused {epilogue} T={T} C={C} OC={OC} {layout} packed={packed is not null} threads={threads}";
                if (epilogue == GemmEpilogue.Residual || OC % 32 == 0)
                {
                    AssertExact(expected, actual, what);
                    AssertExact(residual, fusedResidual, what + " residual");
                }
                else
                {
                    AssertClose(expected, actual, 1e-6, 1e-30, what);
                }
            }
        }
    }

    // The gated MLP's product in the gate GEMM's store against the GEMM then Kernels.SwiGlu(gate, up) over the whole output:
    // the same element function (Map<SiluOp> with up as the multiplier), so bitwise when OC is a multiple of 32 (as for the
    // activations above, every tile row then takes the flat pass's vector path), else within 1e-6 relative; prepacked and
    // not, across the depth and column blocks, the up operand left as it was.
    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.OutIn, 2)]
    [InlineData(WeightLayout.InOut, 2)]
    public void FusedSwiGluIsTheSeparatePass(WeightLayout layout, int threads)
    {
        int[] cs = [0, 1, 7, 255, 256, 257, 513], ocs = [1, 17, 32, 33, 64, 96, 257, 1024, 1025], ts = [1, 8, 9, 13, 121, 257];
        var rng = new Random(77 + (int)layout * 10 + threads);
        using var scope = new ThreadScope(threads);
        for (int i = 0; i < cs.Length; i++)
        {
            for (int j = 0; j < ocs.Length; j++)
            {
                int C = cs[i], OC = ocs[j], T = ts[(i + j) % ts.Length];
                float[] x = RandomArray(rng, T * C, -2, 2), w = RandomArray(rng, C * OC), bias = (i + j) % 2 == 0 ? RandomArray(rng, OC) : [];
                var packed = (i + j) % 3 == 0 ? null : K.PackWeight(w, C, OC, layout);
                float[] up = RandomArray(rng, T * OC, -3, 3), upBefore = (float[])up.Clone();
                var expected = new float[T * OC];
                var actual = new float[T * OC];
                K.MatMul(x, w, packed, bias, expected, T, C, OC, layout);
                K.SwiGlu(expected, up, expected);
                K.MatMul(x, w, packed, bias, actual, T, C, OC, layout, GemmEpilogue.SwiGlu, up);
                string what = $"fused SwiGlu T={T} C={C} OC={OC} {layout} packed={packed is not null} threads={threads}";
                if (OC % 32 == 0)
                {
                    AssertExact(expected, actual, what);
                }
                else
                {
                    AssertClose(expected, actual, 1e-6, 1e-30, what);
                }
                AssertExact(upBefore, up, what + " up");
            }
        }
    }

    [Fact]
    public void SwiGluEpilogueRefusesAShortOrOverlappingUp()
    {
        var x = new float[16 * 8];
        var w = new float[8 * 32];
        var output = new float[16 * 32];
        Assert.Throws<ArgumentException>(() => K.MatMul(x, w, null, default, output, 16, 8, 32, WeightLayout.OutIn, GemmEpilogue.SwiGlu, new float[16 * 32 - 1]));
        Assert.Throws<ArgumentException>(() => K.MatMul(x, w, null, default, output, 16, 8, 32, WeightLayout.OutIn, GemmEpilogue.SwiGlu, output));
    }

    [Fact]
    public void ResidualEpilogueRefusesAShortOrOverlappingResidual()
    {
        var x = new float[16 * 8];
        var w = new float[8 * 32];
        var output = new float[16 * 32];
        Assert.Throws<ArgumentException>(() => K.MatMul(x, w, null, default, output, 16, 8, 32, WeightLayout.InOut, GemmEpilogue.Residual, new float[16 * 32 - 1]));
        Assert.Throws<ArgumentException>(() => K.MatMul(x, w, null, default, output, 16, 8, 32, WeightLayout.InOut, GemmEpilogue.Residual, output));
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
