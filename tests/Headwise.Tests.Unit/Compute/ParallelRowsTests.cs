using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// The row-wise passes split over threads (Kernels.ParallelRows.cs): rows are independent, so every thread count must give
// the single-threaded bits, and the copies must put each value where a plain loop puts it.
[Collection(KernelThreadsCollection.Name)]
public sealed class ParallelRowsTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void SplitQkvPutsEveryValueWhereThePlainLoopDoes(int threads)
    {
        var rng = new Random(5);
        using var scope = new ThreadScope(threads);
        foreach (var (NH, NKV, HD, perHead) in new[] { (4, 4, 8, false), (4, 2, 8, false), (3, 3, 5, true), (12, 12, 64, true) })
        {
            for (int N = 0; N <= 9; N++)
            {
                int qd = NH * HD, kvd = NKV * HD, row = qd + 2 * kvd;
                float[] qkv = RandomArray(rng, N * row);
                float[] q = new float[N * qd], k = new float[N * kvd], v = new float[N * kvd];
                K.SplitQkv(qkv, q, k, v, N, NH, NKV, HD, perHead);
                // the plain loop: GPT-2's [q | k | v] rows, or GPT-NeoX's per-head [q_h | k_h | v_h] groups
                for (int n = 0; n < N; n++)
                {
                    for (int h = 0; h < NH; h++)
                    {
                        for (int d = 0; d < HD; d++)
                        {
                            int src = perHead ? n * row + h * 3 * HD + d : n * row + h * HD + d;
                            Assert.Equal(qkv[src], q[(n * NH + h) * HD + d]);
                            if (h < NKV)
                            {
                                int kSrc = perHead ? src + HD : n * row + qd + h * HD + d;
                                int vSrc = perHead ? src + 2 * HD : n * row + qd + kvd + h * HD + d;
                                Assert.Equal(qkv[kSrc], k[(n * NKV + h) * HD + d]);
                                Assert.Equal(qkv[vSrc], v[(n * NKV + h) * HD + d]);
                            }
                        }
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void CopyRowsCopiesBothPairs(int threads)
    {
        var rng = new Random(6);
        using var scope = new ThreadScope(threads);
        foreach (var (rows, width) in new[] { (0, 4), (1, 1), (7, 3), (64, 768) })
        {
            float[] a = RandomArray(rng, rows * width), b = RandomArray(rng, rows * width);
            float[] da = new float[rows * width + 5], db = new float[rows * width + 5];
            da.AsSpan(rows * width).Fill(9f);
            K.CopyRows(a, da, b, db, rows, width);
            Assert.Equal(a, da[..(rows * width)]);
            Assert.Equal(b, db[..(rows * width)]);
            Assert.All(da[(rows * width)..], x => Assert.Equal(9f, x)); // nothing written past rows · width
        }
    }

    [Fact]
    public void ShortBuffersAreRefused()
    {
        Assert.Throws<ArgumentException>(() => K.SplitQkv(new float[10], new float[4], new float[4], new float[4], 1, 2, 2, 2, false));
        Assert.Throws<ArgumentException>(() => K.SplitQkv(new float[12], new float[4], new float[4], new float[4], 1, 2, 1, 2, true));
        Assert.Throws<ArgumentException>(() => K.CopyRows(new float[5], new float[6], new float[6], new float[6], 2, 3));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void NormsSplitOverThreadsKeepTheirBits(int threads)
    {
        var rng = new Random(7);
        foreach (var (T, C) in new[] { (1, 17), (7, 33), (64, 768), (129, 257) })
        {
            float[] x = RandomArray(rng, T * C, -3, 5), w = RandomArray(rng, C, -2, 2), b = RandomArray(rng, C);
            float[] ln1 = new float[T * C], lnN = new float[T * C], rms1 = new float[T * C], rmsN = new float[T * C];
            float[] s1 = new float[T], sN = new float[T], r1 = new float[T], rN = new float[T];
            using (new ThreadScope(1))
            {
                K.LayerNorm(x, w, b, ln1, s1, T, C, 1e-5f);
                K.RmsNorm(x, w, rms1, r1, T, C, 1e-6f);
            }
            using (new ThreadScope(threads))
            {
                K.LayerNorm(x, w, b, lnN, sN, T, C, 1e-5f);
                K.RmsNorm(x, w, rmsN, rN, T, C, 1e-6f);
            }
            Assert.Equal(ln1, lnN);
            Assert.Equal(s1, sN);
            Assert.Equal(rms1, rmsN);
            Assert.Equal(r1, rN);
        }
    }
}
