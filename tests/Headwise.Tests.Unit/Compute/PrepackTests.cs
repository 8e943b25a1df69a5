using Headwise.Compute;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// A prepacked weight holds exactly the panels the GEMM packs on the fly, read in the same order: bitwise the same output.
[Collection(KernelThreadsCollection.Name)]
public sealed class PrepackTests
{
    // 0..257-style sizes around the panel width (8/16/32), the depth block (256) and the column block (1,024)
    private static readonly int[] Cs = [0, 1, 7, 31, 255, 256, 257, 513];
    private static readonly int[] OCs = [1, 17, 33, 257, 1024, 1025, 2100];
    private static readonly int[] Ts = [1, 8, 9, 13, 121, 257];

    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.OutIn, 2)]
    [InlineData(WeightLayout.InOut, 1)]
    [InlineData(WeightLayout.InOut, 2)]
    public void PackedMatMulIsBitwiseTheUnpacked(WeightLayout layout, int threads)
    {
        var rng = new Random(31 + (int)layout * 10 + threads);
        using var scope = new ThreadScope(threads);
        for (int i = 0; i < Cs.Length; i++)
        {
            for (int j = 0; j < OCs.Length; j++)
            {
                int C = Cs[i], OC = OCs[j], T = Ts[(i + j) % Ts.Length];
                float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), bias = (i + j) % 2 == 0 ? RandomArray(rng, OC) : [];
                var packed = K.PackWeight(w, C, OC, layout);
                Assert.Equal(K.PackedWeightBytes(C, OC), packed.Bytes);
                var actual = new float[T * OC];
                actual.AsSpan().Fill(float.NaN); // every output must be written
                K.MatMul(x, w, packed, bias, actual, T, C, OC, layout);
                AssertExact(UnpackedGemmRows(x, w, bias, T, C, OC, layout), actual, $"packed MatMul T={T} C={C} OC={OC} {layout} threads={threads}");
            }
        }
    }

    // The unpacked GEMM's first T rows of x · W + bias. Decode-sized T (≤ 8) reads a packed weight through the packed GEMV
    // where it runs, with the GEMM's sums per row: so its expected rows are the unpacked GEMM's over x padded past the
    // GEMV's limit (a GEMM row does not depend on the other rows).
    private static float[] UnpackedGemmRows(float[] x, float[] w, float[] bias, int T, int C, int OC, WeightLayout layout)
    {
        int rows = T <= K.GemvMaxRows && K.PackedGemvSupported ? K.GemvMaxRows + 1 : T;
        var padded = new float[rows * C];
        x.AsSpan(0, T * C).CopyTo(padded);
        var expected = new float[rows * OC];
        K.MatMul(padded, w, bias, expected, rows, C, OC, layout);
        return expected[..(T * OC)];
    }

    // The packed GEMV (decode rows, T ≤ 8) against the scalar twin at every C and every OC of 0..257 (the other at a
    // ragged 37 or 19), T = 1..8 in turn (5..8: two passes of up to 4 rows), on 1 and 2 threads, with the weight
    // itself passed empty: the panels alone serve the product. Tolerance as MatMulTests.
    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.InOut, 2)]
    public void PackedGemvMatchesTheScalarTwinAtEveryLength(WeightLayout layout, int threads)
    {
        Assert.SkipUnless(K.PackedGemvSupported, "the packed GEMV needs AVX-512; elsewhere decode reads the weight itself");
        var rng = new Random(401 + (int)layout * 10 + threads);
        using var scope = new ThreadScope(threads);
        for (int n = 0; n <= 257; n++)
        {
            foreach (var (C, OC) in new[] { (n, 37), (19, n) })
            {
                int T = 1 + n % 8;
                float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), bias = n % 3 == 0 ? [] : RandomArray(rng, OC);
                var packed = K.PackWeight(w, C, OC, layout);
                var expected = new float[T * OC];
                var actual = new float[T * OC];
                actual.AsSpan().Fill(float.NaN);
                Headwise.Compute.Reference.ScalarKernels.MatMul(x, w, bias, expected, T, C, OC, layout);
                K.MatMul(x, default, packed, bias, actual, T, C, OC, layout);
                AssertClose(expected, actual, 0, 1e-6 * (C + 1), $"packed GEMV T={T} C={C} OC={OC} {layout} threads={threads}");
            }
        }
    }

    // Bitwise the GEMM's rows at the model's shapes (several column blocks, a ragged last panel, 12 depth blocks), so a
    // decode step's projections equal the prefill's rows to the bit.
    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.InOut, 2)]
    public void PackedGemvIsBitwiseThePrefillRows(WeightLayout layout, int threads)
    {
        Assert.SkipUnless(K.PackedGemvSupported, "the packed GEMV needs AVX-512; elsewhere decode reads the weight itself");
        var rng = new Random(409 + (int)layout * 10 + threads);
        using var scope = new ThreadScope(threads);
        foreach (var (C, OC) in new[] { (768, 2304), (3072, 768), (768, 2100), (300, 65) })
        {
            foreach (int T in new[] { 1, 3, 4, 8 })
            {
                float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), bias = RandomArray(rng, OC);
                var packed = K.PackWeight(w, C, OC, layout);
                var actual = new float[T * OC];
                K.MatMul(x, default, packed, bias, actual, T, C, OC, layout);
                AssertExact(UnpackedGemmRows(x, w, bias, T, C, OC, layout), actual, $"packed GEMV T={T} C={C} OC={OC} {layout} threads={threads}");
            }
        }
    }

    // A prepacked GEMM whose rows' A fits in 512 KiB for the whole depth (rows·C ≤ 2¹⁷ floats) runs column panel by column
    // panel with every depth block inside (GemmTaskResidentA; rows rounded up to the register tile's 8 with AVX-512);
    // larger ones run the NC-wide blocks with MC-row A blocks.
    // Both sum each depth block from zero and add the blocks in depth order: bitwise the unpacked GEMM, epilogues included,
    // on either side of the limit (one thread: a task's rows are all rows) and with the rows split between two threads.
    [Theory]
    [InlineData(WeightLayout.OutIn, 1)]
    [InlineData(WeightLayout.InOut, 1)]
    [InlineData(WeightLayout.InOut, 2)]
    public void BothPackedLoopOrdersAreBitwiseTheUnpacked(WeightLayout layout, int threads)
    {
        // (T, C, OC): 128·768 and 166·768 resident (166 leaves a ragged 6-row tile); 169·768 just past the limit;
        // 260·600 and 128·1100 blocked (MC blocks 128 + 128 + 4; a depth not a multiple of KC); 40·3072 resident with
        // 12 depth blocks; OC 1,100 crosses a column block with a ragged last panel; 300·768 and 530·1000 A-resident in
        // row chunks (152 + 148 and 4 × 112 + 82 rows; on two threads split by rows first, 2 × 272 rows in chunks of 96);
        // 300·1500 too deep for A-resident chunks: row blocks outermost, 128 + 128 + 44 rows (two threads: 128 + 24 each)
        // over 6 depth blocks, the last 220 deep, across two column blocks
        (int T, int C, int OC)[] shapes = [(128, 768, 1100), (166, 768, 97), (169, 768, 97), (260, 600, 1100), (128, 1100, 64), (40, 3072, 65),
            (300, 768, 97), (530, 1000, 70), (300, 1500, 1100)];
        var rng = new Random(77 + (int)layout * 10 + threads);
        using var scope = new ThreadScope(threads);
        foreach (var (T, C, OC) in shapes)
        {
            foreach (var epilogue in (GemmEpilogue[])[GemmEpilogue.None, GemmEpilogue.GeluTanh, GemmEpilogue.Residual])
            {
                float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), bias = RandomArray(rng, OC);
                float[] residual = RandomArray(rng, T * OC), packedResidual = (float[])residual.Clone();
                var packed = K.PackWeight(w, C, OC, layout);
                var expected = new float[T * OC];
                var actual = new float[T * OC];
                actual.AsSpan().Fill(float.NaN); // every output must be written
                K.MatMul(x, w, null, bias, expected, T, C, OC, layout, epilogue, epilogue == GemmEpilogue.Residual ? residual : default);
                K.MatMul(x, w, packed, bias, actual, T, C, OC, layout, epilogue, epilogue == GemmEpilogue.Residual ? packedResidual : default);
                string what = $"packed MatMul {epilogue} T={T} C={C} OC={OC} {layout} threads={threads}";
                AssertExact(expected, actual, what);
                AssertExact(residual, packedResidual, what + " residual");
            }
        }
    }

    [Fact]
    public void APackedWeightOfAnotherShapeIsRefused()
    {
        var w = new float[64 * 48];
        var packed = K.PackWeight(w, 64, 48, WeightLayout.OutIn);
        var x = new float[16 * 48];
        var output = new float[16 * 64];
        Assert.Throws<ArgumentException>(() => K.MatMul(x, w, packed, default, output, 16, 48, 64, WeightLayout.OutIn));
        Assert.Throws<ArgumentException>(() => K.MatMul(new float[16 * 64], w, packed, default, new float[16 * 48], 16, 64, 48, WeightLayout.InOut));
    }
}
