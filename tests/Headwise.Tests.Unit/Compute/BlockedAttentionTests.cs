using Headwise.Compute;
using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Tolerances. The blocked kernel computes the fused kernel's softmax re-associated (an online max, each key block's
// exponentials rescaled by exp(m_old − m_new)) and its dot products in another order: a few ulps per term. z is a convex
// combination of v ∈ [−1, 1], so the error is relative to the terms (≤ 1), not to z: |Δ| ≤ 1e-6·(1 + |z|).
[Collection(KernelThreadsCollection.Name)]
public sealed class BlockedAttentionTests
{
    private const double Rel = 1e-6, Abs = 1e-6;

    internal static (float[] Q, float[] Kx, float[] V, byte[] Mask) Inputs(Random rng, int T, int S, int NH, int NKV, int HD, bool masked)
    {
        float[] q = RandomArray(rng, T * NH * HD), k = RandomArray(rng, S * NKV * HD), v = RandomArray(rng, S * NKV * HD);
        byte[] mask = [];
        if (masked)
        {
            mask = new byte[S];
            for (int j = 0; j < S; j++) mask[j] = (byte)(rng.Next(4) == 0 ? 0 : 1);
        }
        return (q, k, v, mask);
    }

    public static TheoryData<int> Threads => [1, 2];

    // (NH, NKV): MHA, GQA 2:1, 3:1 and 4:1, MQA
    private static readonly (int NH, int NKV)[] Heads = [(1, 1), (2, 2), (4, 2), (3, 1), (8, 2), (4, 1)];
    private static readonly int[] HeadSizes = [8, 16, 32, 64, 80];

    // The shared key/value tile store (each tile packed once per call, by whichever task needs it first) and the packing
    // per query tile into the task's scratch (past the store's cap) give the same bits: the same packing, the same sums.
    [Theory]
    [MemberData(nameof(Threads))]
    public void TheTileStoreAndPackingPerQueryTileAgreeBitwise(int threads)
    {
        var rng = new Random(67 + threads);
        using var scope = new ThreadScope(threads);
        long savedCap = K.MaxKeyValueTileFloats;
        try
        {
            // (T, pastLen, S, NH, NKV, HD, window, masked): several query tiles; a ragged last key tile; GQA; keys past the
            // causal edge; a window and a key mask
            foreach (var (T, pastLen, S, NH, NKV, HD, window, masked) in new[]
            {
                (200, 0, 200, 4, 4, 64, 0, false), (150, 37, 190, 8, 2, 32, 0, true), (97, 0, 100, 3, 1, 80, 40, false),
            })
            {
                var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, masked);
                float[] stored = new float[T * NH * HD], perTile = new float[T * NH * HD];
                float scale = 1f / MathF.Sqrt(HD);
                K.MaxKeyValueTileFloats = 16L << 20;
                Assert.True(K.BlockedAttentionTileStoreFloats(T, S, NKV, HD, pastLen) > 0);
                K.BlockedAttention(q, k, v, stored, T, S, NH, NKV, HD, pastLen, scale, mask, window, AttentionSparsity.Dense);
                K.MaxKeyValueTileFloats = 0;
                Assert.Equal(0, K.BlockedAttentionTileStoreFloats(T, S, NKV, HD, pastLen));
                K.BlockedAttention(q, k, v, perTile, T, S, NH, NKV, HD, pastLen, scale, mask, window, AttentionSparsity.Dense);
                AssertExact(perTile, stored, $"T={T} past={pastLen} S={S} NH={NH} NKV={NKV} HD={HD} window={window} masked={masked}");
            }
        }
        finally
        {
            K.MaxKeyValueTileFloats = savedCap;
        }
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void DenseEqualsFusedKernel(int threads)
    {
        var rng = new Random(61 + threads);
        using var scope = new ThreadScope(threads);
        int caseNo = 0;
        foreach (int T in new[] { 1, 7, 32, 45, 100 })
        {
            foreach (int pastLen in new[] { 0, 5, 64 })
            {
                int S = pastLen + T + (caseNo % 3 == 0 ? 3 : 0); // sometimes keys beyond the causal edge
                foreach (int window in new[] { 0, 1, 9, 40 })
                {
                    foreach (bool masked in new[] { false, true })
                    {
                        var (NH, NKV) = Heads[caseNo % Heads.Length];
                        int HD = HeadSizes[caseNo % HeadSizes.Length];
                        caseNo++;
                        float scale = 1f / MathF.Sqrt(HD);
                        var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, masked);
                        float[] expected = new float[T * NH * HD], actual = new float[T * NH * HD];
                        actual.AsSpan().Fill(float.NaN);
                        K.Attention(q, k, v, expected, T, S, NH, NKV, HD, pastLen, scale, mask, window);
                        K.BlockedAttention(q, k, v, actual, T, S, NH, NKV, HD, pastLen, scale, mask, window, AttentionSparsity.Dense);
                        AssertClose(expected, actual, Rel, Abs, $"T={T} S={S} NH={NH} NKV={NKV} HD={HD} past={pastLen} window={window} masked={masked}");
                    }
                }
            }
        }
    }

    // A model passes its key mask on every step, all ones when nothing is padded (and longer than S: the cache's capacity,
    // zero past the keys written). Such a mask hides no key and must give the bits of no mask, on the tile path and the
    // decode path; a mask that does hide a key must change the result.
    [Theory]
    [MemberData(nameof(Threads))]
    public void AMaskThatHidesNoKeyIsNoMask(int threads)
    {
        var rng = new Random(71 + threads);
        using var scope = new ThreadScope(threads);
        foreach (var (T, pastLen) in new[] { (100, 0), (3, 60), (1, 90) })
        {
            int S = pastLen + T, NH = 4, NKV = 2, HD = 32;
            var (q, k, v, _) = Inputs(rng, T, S, NH, NKV, HD, false);
            var mask = new byte[S + 20]; // zero past S
            mask.AsSpan(0, S).Fill(1);
            float[] none = new float[T * NH * HD], ones = new float[T * NH * HD], hiding = new float[T * NH * HD];
            float scale = 1f / MathF.Sqrt(HD);
            K.BlockedAttention(q, k, v, none, T, S, NH, NKV, HD, pastLen, scale, [], 0, AttentionSparsity.Dense);
            K.BlockedAttention(q, k, v, ones, T, S, NH, NKV, HD, pastLen, scale, mask, 0, AttentionSparsity.Dense);
            AssertExact(none, ones, $"T={T} past={pastLen}");
            mask[0] = 0;
            K.BlockedAttention(q, k, v, hiding, T, S, NH, NKV, HD, pastLen, scale, mask, 0, AttentionSparsity.Dense);
            Assert.NotEqual(none, hiding);
        }
    }

    [Fact]
    public void BidirectionalEqualsFusedKernel()
    {
        // a ViT passes pastLen = S: every query sees every key
        var rng = new Random(67);
        const int T = 50, S = 50, NH = 3, NKV = 3, HD = 16;
        var (q, k, v, _) = Inputs(rng, T, S, NH, NKV, HD, false);
        float[] expected = new float[T * NH * HD], actual = new float[T * NH * HD];
        K.Attention(q, k, v, expected, T, S, NH, NKV, HD, S, 0.25f, [], 0);
        K.BlockedAttention(q, k, v, actual, T, S, NH, NKV, HD, S, 0.25f, [], AttentionSparsity.Dense);
        AssertClose(expected, actual, Rel, Abs, "bidirectional");
    }

    // A random selection: per (head, query block) the diagonal block, block 0 and each other block with probability ½.
    internal static BlockSelection RandomSelection(Random rng, int blockSize, int NH, int queryBlocks)
    {
        var rowStart = new List<int> { 0 };
        var keyBlocks = new List<int>();
        for (int h = 0; h < NH; h++)
        {
            for (int qb = 0; qb < queryBlocks; qb++)
            {
                for (int kb = 0; kb <= qb; kb++)
                {
                    if (kb == 0 || kb == qb || rng.Next(2) == 0) keyBlocks.Add(kb);
                }
                rowStart.Add(keyBlocks.Count);
            }
        }
        return new BlockSelection(blockSize, NH, queryBlocks, [.. rowStart], [.. keyBlocks]);
    }

    // The explicit masked reference: the three-pass path with every pair the sparsity drops set to −∞ before the softmax.
    internal static float[] MaskedReference(float[] q, float[] k, float[] v, int T, int S, int NH, int NKV, int HD, int pastLen,
        float scale, byte[] mask, int window, AttentionSparsity sparsity)
    {
        var scores = new float[NH * T * S];
        K.AttentionScores(q, k, scores, T, S, NH, NKV, HD, pastLen, scale, mask, window);
        for (int h = 0; h < NH; h++)
        {
            for (int t = 0; t < T; t++)
            {
                for (int j = 0; j < S; j++)
                {
                    if (!sparsity.Keeps(h, pastLen + t, j)) scores[(h * T + t) * S + j] = float.NegativeInfinity;
                }
            }
        }
        K.MaskedSoftmax(scores, NH * T, S);
        var z = new float[T * NH * HD];
        K.AttentionApply(scores, v, z, T, S, NH, NKV, HD);
        return z;
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void SparseEqualsMaskedReference(int threads)
    {
        var rng = new Random(71 + threads);
        using var scope = new ThreadScope(threads);
        int caseNo = 0;
        // block sizes: multiples of the kernel's 32-key tile (skipped per tile) and others (masked element by element)
        foreach (int blockSize in new[] { 32, 64, 128, 16, 48 })
        {
            foreach (var (T, pastLen) in new[] { (1, 0), (20, 0), (150, 0), (40, 90), (1, 200) })
            {
                foreach (var (window, sinks, withBlocks) in new[] { (0, 0, true), (30, 0, false), (24, 4, false), (50, 33, true), (5, 1, true) })
                {
                    var (NH, NKV) = Heads[caseNo % Heads.Length];
                    int HD = HeadSizes[caseNo % HeadSizes.Length];
                    bool masked = caseNo % 4 == 3;
                    caseNo++;
                    int S = pastLen + T;
                    float scale = 1f / MathF.Sqrt(HD);
                    var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, masked);
                    var sparsity = new AttentionSparsity
                    {
                        Window = window,
                        Sinks = sinks,
                        Blocks = withBlocks ? RandomSelection(rng, blockSize, NH, (S - 1) / blockSize + 1) : null,
                    };
                    var expected = MaskedReference(q, k, v, T, S, NH, NKV, HD, pastLen, scale, mask, 0, sparsity);
                    var actual = new float[T * NH * HD];
                    actual.AsSpan().Fill(float.NaN);
                    K.BlockedAttention(q, k, v, actual, T, S, NH, NKV, HD, pastLen, scale, mask, sparsity);
                    string what = $"bs={blockSize} T={T} past={pastLen} NH={NH} NKV={NKV} HD={HD} window={window} sinks={sinks} blocks={withBlocks} masked={masked}";
                    AssertClose(expected, actual, Rel, Abs, what);
                    var twin = new float[T * NH * HD];
                    ScalarKernels.BlockedAttention(q, k, v, twin, T, S, NH, NKV, HD, pastLen, scale, mask, 0, sparsity);
                    AssertClose(twin, actual, Rel, Abs, what + " (twin)");
                }
            }
        }
    }

    [Fact]
    public void EverySelectedBlockAtDensityOneEqualsDense()
    {
        var rng = new Random(73);
        const int T = 96, S = 96, NH = 4, NKV = 2, HD = 32;
        var (q, k, v, _) = Inputs(rng, T, S, NH, NKV, HD, false);
        const int bs = 32, qbs = 3;
        var rowStart = new int[NH * qbs + 1];
        var keyBlocks = new List<int>();
        for (int r = 0; r < NH * qbs; r++)
        {
            for (int kb = 0; kb <= r % qbs; kb++) keyBlocks.Add(kb);
            rowStart[r + 1] = keyBlocks.Count;
        }
        var all = new AttentionSparsity { Blocks = new BlockSelection(bs, NH, qbs, rowStart, [.. keyBlocks]) };
        float[] dense = new float[T * NH * HD], sparse = new float[T * NH * HD];
        K.BlockedAttention(q, k, v, dense, T, S, NH, NKV, HD, 0, 0.2f, [], AttentionSparsity.Dense);
        K.BlockedAttention(q, k, v, sparse, T, S, NH, NKV, HD, 0, 0.2f, [], all);
        AssertExact(dense, sparse, "every block listed");
    }

    [Fact]
    public void TwinMatchesThreePassForEveryLength()
    {
        // every key count 0..257 (every remainder of the 32-key blocks), the fast kernel against the twin too
        var rng = new Random(79);
        for (int S = 0; S <= 257; S++)
        {
            const int NH = 2, NKV = 1, HD = 8;
            int T = Math.Min(S, 3 + S % 5), pastLen = S - T;
            int window = S % 3 == 0 ? 0 : 1 + S / 3;
            float scale = 1f / MathF.Sqrt(HD);
            var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, S % 2 == 1);
            float[] expected = new float[T * NH * HD], twin = new float[T * NH * HD], fast = new float[T * NH * HD];
            ScalarKernels.Attention(q, k, v, expected, T, S, NH, NKV, HD, pastLen, scale, mask, window);
            ScalarKernels.BlockedAttention(q, k, v, twin, T, S, NH, NKV, HD, pastLen, scale, mask, window, AttentionSparsity.Dense);
            K.BlockedAttention(q, k, v, fast, T, S, NH, NKV, HD, pastLen, scale, mask, window, AttentionSparsity.Dense);
            // the three-pass twin sums in double: the float online softmax is within a few ulps of it
            AssertClose(expected, twin, 2e-6, 2e-6, $"twin S={S}");
            AssertClose(twin, fast, 2e-6, 2e-6, $"fast S={S}");
        }
    }

    [Fact]
    public void ARowDoesNotDependOnTheStepLength()
    {
        // the first 3 queries alone, and as the first rows of 20 (full 8-row micro-tiles against one-row ones): the same bits
        var rng = new Random(97);
        const int T = 20, S = 20, NH = 4, NKV = 2, HD = 80;
        var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, true);
        float[] all = new float[T * NH * HD], head = new float[3 * NH * HD];
        K.BlockedAttention(q, k, v, all, T, S, NH, NKV, HD, 0, 0.3f, mask, AttentionSparsity.Dense);
        K.BlockedAttention(q, k.AsSpan(0, 3 * NKV * HD), v.AsSpan(0, 3 * NKV * HD), head, 3, 3, NH, NKV, HD, 0, 0.3f, mask.AsSpan(0, 3), AttentionSparsity.Dense);
        AssertExact(all.AsSpan(0, head.Length), head, "rows 0..2");
    }

    [Fact]
    public void FullyMaskedRowsAreZero()
    {
        var rng = new Random(83);
        const int T = 40, S = 40, NH = 2, NKV = 1, HD = 16;
        var (q, k, v, _) = Inputs(rng, T, S, NH, NKV, HD, false);
        var z = new float[T * NH * HD];
        z.AsSpan().Fill(float.NaN);
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, 0, 1f, new byte[S], AttentionSparsity.Dense);
        Assert.All(z, value => Assert.Equal(0f, value));
        z.AsSpan().Fill(float.NaN);
        K.BlockedAttention(q, [], [], z, T, 0, NH, NKV, HD, 0, 1f, [], AttentionSparsity.Dense);
        Assert.All(z, value => Assert.Equal(0f, value));
    }

    [Fact]
    public void DoesNotAllocateSingleThreaded()
    {
        var rng = new Random(89);
        const int T = 70, S = 70, NH = 4, NKV = 2, HD = 16;
        var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, true);
        var z = new float[T * NH * HD];
        var sparsity = new AttentionSparsity { Window = 20, Sinks = 2, Blocks = RandomSelection(rng, 32, NH, 3) };
        using var scope = new ThreadScope(1);
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, 0, 0.25f, mask, sparsity); // warm-up: per-thread scratch, JIT
        long before = GC.GetAllocatedBytesForCurrentThread();
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, 0, 0.25f, mask, sparsity);
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, 0, 0.25f, mask, 3, AttentionSparsity.Dense);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void BadInputThrows()
    {
        Assert.Throws<ArgumentException>(() => K.BlockedAttention(new float[3], new float[2], new float[2], new float[3], 1, 1, 3, 2, 1, 0, 1f, [], AttentionSparsity.Dense));
        // a selection for another head count, or too few query blocks for the step
        var one = new BlockSelection(32, 1, 1, [0, 1], [0]);
        Assert.Throws<ArgumentException>(() => K.BlockedAttention(new float[8], new float[16], new float[16], new float[8], 1, 1, 2, 1, 4, 0, 1f, [], new AttentionSparsity { Blocks = one }));
        Assert.Throws<ArgumentException>(() => K.BlockedAttention(new float[4], new float[160], new float[160], new float[4], 1, 40, 1, 1, 4, 39, 1f, [], new AttentionSparsity { Blocks = one }));
    }
}
