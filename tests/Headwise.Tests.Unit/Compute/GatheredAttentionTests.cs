using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Tolerances. The gathered kernel's dot products and weighted sums run in vector lanes (FMA), the scalar twin's one term
// at a time, and the masked dense path sums the same nonzero terms among exact zeros: a few ulps per term. z is a convex
// combination of v ∈ [−1, 1], so the error is relative to the terms (≤ 1): |Δ| ≤ 1e-6·(1 + |z|).
[Collection(KernelThreadsCollection.Name)]
public sealed class GatheredAttentionTests
{
    private const double Rel = 1e-6, Abs = 1e-6;

    public static TheoryData<int> Threads => [1, 2];

    // K of the S keys per (head, query), chosen at random, ascending
    private static int[] RandomSelection(Random rng, int rows, int S, int K)
    {
        var keys = new int[rows * K];
        for (int r = 0; r < rows; r++)
        {
            int[] pick = [.. Enumerable.Range(0, S).OrderBy(_ => rng.Next()).Take(K).Order()];
            pick.CopyTo(keys, r * K);
        }
        return keys;
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void EqualsScalarTwinAndMaskedDenseAtEveryLength(int threads)
    {
        var rng = new Random(17 + threads);
        using var scope = new ThreadScope(threads);
        int[] headSizes = [5, 8, 16, 64, 80];
        (int NH, int NKV)[] heads = [(1, 1), (2, 2), (4, 2), (3, 1)];
        for (int S = 0; S <= 257; S++)
        {
            int T = 1 + S % 4, HD = headSizes[S % headSizes.Length];
            var (NH, NKV) = heads[S % heads.Length];
            int Kc = S == 0 ? 0 : S % 3 == 0 ? S : rng.Next(1, S + 1); // every key sometimes: the dense attention
            float scale = 1f / MathF.Sqrt(HD);
            float[] q = RandomArray(rng, T * NH * HD), k = RandomArray(rng, S * NKV * HD), v = RandomArray(rng, S * NKV * HD);
            var keys = RandomSelection(rng, NH * T, S, Kc);
            float[] expected = new float[T * NH * HD], actual = new float[T * NH * HD], masked = new float[T * NH * HD];
            actual.AsSpan().Fill(float.NaN);
            ScalarKernels.GatheredAttention(q, k, v, keys, expected, T, S, NH, NKV, HD, Kc, scale);
            K.GatheredAttention(q, k, v, keys, actual, T, S, NH, NKV, HD, Kc, scale);
            string what = $"S={S} T={T} NH={NH} NKV={NKV} HD={HD} K={Kc}";
            AssertClose(expected, actual, Rel, Abs, what + " (scalar twin)");
            // the masked dense path: every score, the unlisted ones −∞ (bidirectional: past = S), softmax, apply
            var scores = new float[NH * T * S];
            ScalarKernels.AttentionScores(q, k, scores, T, S, NH, NKV, HD, S, scale, default, 0);
            Models.TransformerModel.MaskUnchosen(scores, keys, NH * T, S, Kc);
            ScalarKernels.MaskedSoftmax(scores, NH * T, S);
            ScalarKernels.AttentionApply(scores, v, masked, T, S, NH, NKV, HD);
            AssertClose(masked, actual, Rel, Abs, what + " (masked dense)");
        }
    }

    [Fact]
    public void KeyOrderDoesNotMatter()
    {
        var rng = new Random(3);
        int T = 5, S = 40, NH = 2, HD = 16, Kc = 11;
        float[] q = RandomArray(rng, T * NH * HD), k = RandomArray(rng, S * NH * HD), v = RandomArray(rng, S * NH * HD);
        var keys = RandomSelection(rng, NH * T, S, Kc);
        var shuffled = keys.Chunk(Kc).SelectMany(row => row.Reverse()).ToArray();
        float[] a = new float[T * NH * HD], b = new float[T * NH * HD];
        K.GatheredAttention(q, k, v, keys, a, T, S, NH, NH, HD, Kc, 0.25f);
        K.GatheredAttention(q, k, v, shuffled, b, T, S, NH, NH, HD, Kc, 0.25f);
        AssertClose(a, b, Rel, Abs, "reversed lists");
    }

    [Fact]
    public void SelectTopKeysEqualsSortAtEveryLength()
    {
        var rng = new Random(5);
        for (int S = 0; S <= 257; S++)
        {
            int R = 3;
            // quantised estimates: many exact ties, broken towards the earlier key
            var est = new float[R * S];
            for (int i = 0; i < est.Length; i++) est[i] = S % 2 == 0 ? rng.Next(-4, 5) * 0.5f : (float)rng.NextDouble();
            foreach (int Kc in new[] { 0, 1, S / 3, S / 2, S - 1, S }.Where(x => x >= 0 && x <= S).Distinct())
            {
                int[] expected = new int[R * Kc], actual = new int[R * Kc];
                ScalarKernels.SelectTopKeys(est, expected, R, S, Kc);
                K.SelectTopKeys(est, actual, new float[S], R, S, Kc);
                Assert.True(expected.SequenceEqual(actual), $"S={S} K={Kc}: expected {string.Join(",", expected)} got {string.Join(",", actual)}");
            }
        }
    }

    [Fact]
    public void BadShapesAreRefused()
    {
        var x = new float[64];
        Assert.Throws<ArgumentException>(() => K.GatheredAttention(x, x, x, new int[4], x, 1, 2, 1, 1, 8, 3, 1f)); // K > S
        Assert.Throws<ArgumentException>(() => K.SelectTopKeys(x, new int[4], new float[2], 1, 4, 5));
    }
}
