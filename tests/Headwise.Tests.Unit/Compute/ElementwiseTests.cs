using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Add, Embedding, HalfToSingle and BFloat16ToSingle are exact operations: tolerance 0 (bit-for-bit).
public sealed class ElementwiseTests
{
    [Fact]
    public void AddMatchesTwinExactly()
    {
        var rng = new Random(3);
        for (int n = 0; n <= 257; n++)
        {
            float[] a = RandomArray(rng, n), b = RandomArray(rng, n);
            float[] expected = new float[n], actual = new float[n];
            ScalarKernels.Add(a, b, expected);
            K.Add(a, b, actual);
            AssertExact(expected, actual, $"Add n={n}");
            K.Add(a, b, a); // out aliases a
            AssertExact(expected, a, $"Add aliased n={n}");
        }
    }

    [Fact]
    public void EmbeddingMatchesTwinExactly()
    {
        var rng = new Random(4);
        foreach (int C in new[] { 0, 1, 3, 16, 17, 257 })
        {
            const int V = 11;
            float[] table = RandomArray(rng, V * C);
            for (int T = 0; T <= 20; T++)
            {
                var ids = new int[T];
                for (int t = 0; t < T; t++) ids[t] = rng.Next(V);
                float[] expected = new float[T * C], actual = new float[T * C];
                ScalarKernels.Embedding(table, ids, expected, C);
                K.Embedding(table, ids, actual, C);
                AssertExact(expected, actual, $"Embedding T={T} C={C}");
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => K.Embedding(new float[6], [3], new float[2], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => K.Embedding(new float[6], [-1], new float[2], 2));
    }

    private static ushort[] AllBitPatterns()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++) all[i] = (ushort)i;
        return all;
    }

    [Fact]
    public void HalfToSingleIsExactForEveryBitPattern()
    {
        var src = AllBitPatterns();
        float[] expected = new float[src.Length], actual = new float[src.Length];
        ScalarKernels.HalfToSingle(src, expected);
        K.HalfToSingle(src, actual);
        AssertExact(expected, actual, "HalfToSingle (all 65536 patterns)");
        for (int n = 0; n <= 257; n++)
        {
            var part = src.AsSpan(30000, n);
            var got = new float[n];
            K.HalfToSingle(part, got);
            AssertExact(expected.AsSpan(30000, n), got, $"HalfToSingle n={n}");
        }
    }

    [Fact]
    public void BFloat16ToSingleIsExactForEveryBitPattern()
    {
        var src = AllBitPatterns();
        float[] expected = new float[src.Length], actual = new float[src.Length];
        ScalarKernels.BFloat16ToSingle(src, expected);
        K.BFloat16ToSingle(src, actual);
        AssertExact(expected, actual, "BFloat16ToSingle (all 65536 patterns)");
        for (int n = 0; n <= 257; n++)
        {
            var part = src.AsSpan(16000, n);
            var got = new float[n];
            K.BFloat16ToSingle(part, got);
            AssertExact(expected.AsSpan(16000, n), got, $"BFloat16ToSingle n={n}");
        }
    }
}
