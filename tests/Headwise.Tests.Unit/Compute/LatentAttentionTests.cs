using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Tolerance: z is a convex combination of values in [−1, 1]. The kernel sums scores in another order (vector lanes), takes
// a float vector exp (≤ 1 ulp) instead of a double one, accumulates online (rescaled per tile) and merges chunks, so each
// weight carries a relative error of a few 1e-6 and z an absolute one of at most 2e-5 (as for the fused attention kernel).
[Collection(KernelThreadsCollection.Name)]
public sealed class LatentAttentionTests
{
    public static TheoryData<int> Threads => [1, 2];

    private static void Check(Random rng, int T, int S, int NH, int W, int valueOffset, int past, int window, bool masked)
    {
        int R = W - valueOffset;
        float scale = 1f / MathF.Sqrt(W);
        float[] q = RandomArray(rng, T * NH * W), rows = RandomArray(rng, S * W);
        byte[] mask = [];
        if (masked)
        {
            mask = new byte[S];
            for (int j = 0; j < S; j++) mask[j] = (byte)(rng.Next(4) == 0 ? 0 : 1);
        }
        float[] expected = new float[T * NH * R], actual = new float[T * NH * R];
        actual.AsSpan().Fill(float.NaN);
        ScalarKernels.LatentAttention(q, rows, expected, T, S, NH, W, valueOffset, past, scale, mask, window);
        K.LatentAttention(q, rows, actual, T, S, NH, W, valueOffset, past, scale, mask, window);
        AssertClose(expected, actual, 0, 2e-5, $"LatentAttention T={T} S={S} NH={NH} W={W} offset={valueOffset} past={past} window={window} masked={masked}");
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void DecodeMatchesTwinAtEveryLength(int threads)
    {
        // one query per sequence (decode) over S = 1 .. 257 cached rows: every tile and row-block remainder; 16 heads fill an
        // AVX-512 vector, 8 an AVX2 one, 3 leave padding lanes; widths with and without a rotary prefix, odd value widths
        var rng = new Random(7 + threads);
        using var scope = new ThreadScope(threads);
        (int NH, int W, int Offset)[] shapes = [(16, 24, 8), (8, 19, 3), (3, 9, 0), (5, 33, 16)];
        for (int S = 1; S <= 257; S++)
        {
            var (NH, W, offset) = shapes[S % shapes.Length];
            Check(rng, 1, S, NH, W, offset, S - 1, 0, masked: S % 5 == 0);
        }
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void NoKeysGiveZero(int threads)
    {
        using var scope = new ThreadScope(threads);
        // S = 0, and every key masked: MaskedSoftmax's all-masked row is zeros, so z is 0
        float[] q = RandomArray(new Random(1), 2 * 4 * 6), rows = RandomArray(new Random(2), 5 * 6), z = new float[2 * 4 * 4];
        z.AsSpan().Fill(float.NaN);
        K.LatentAttention(q, [], z, 2, 0, 4, 6, 2, 0, 1f, [], 0);
        Assert.All(z, v => Assert.Equal(0f, v));
        z.AsSpan().Fill(float.NaN);
        K.LatentAttention(q, rows, z, 2, 5, 4, 6, 2, 3, 1f, new byte[5], 0);
        Assert.All(z, v => Assert.Equal(0f, v));
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void SeveralQueriesMatchTwin(int threads)
    {
        // T > 1 (a chunk after a past): lanes of one vector belong to different queries, each with its own causal edge;
        // sliding windows and padded keys cut rows inside a tile
        var rng = new Random(101 + threads);
        using var scope = new ThreadScope(threads);
        int caseNo = 0;
        foreach (int T in new[] { 1, 2, 3, 7 })
        {
            foreach (int past in new[] { 0, 1, 63, 130 })
            {
                foreach (int window in new[] { 0, 1, 5, 70 })
                {
                    foreach (bool masked in new[] { false, true })
                    {
                        int NH = new[] { 16, 4, 6, 2 }[caseNo % 4], W = new[] { 20, 12, 17 }[caseNo % 3];
                        int S = past + T + (caseNo % 3 == 0 ? 2 : 0); // sometimes rows beyond the causal edge
                        caseNo++;
                        Check(rng, T, S, NH, W, caseNo % 2 == 0 ? 4 : 0, past, window, masked);
                    }
                }
            }
        }
    }

    [Fact]
    public void RefusesShortBuffers()
    {
        var e = Assert.Throws<ArgumentException>(() => K.LatentAttention(new float[10], new float[12], new float[8], 1, 2, 2, 6, 2, 1, 1f, [], 0));
        Assert.Contains("q is shorter", e.Message);
        e = Assert.Throws<ArgumentException>(() => K.LatentAttention(new float[12], new float[12], new float[8], 1, 2, 2, 6, 7, 1, 1f, [], 0));
        Assert.Contains("valueOffset", e.Message);
    }
}
