using Headwise.Compute;
using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.BlockedAttentionTests;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// The decode path of the blocked attention (steps of ≤ 8 queries, keys and values read in place) against the tiled path,
// which must give the same bits (a row's result does not depend on its step's length: a decode step equals the prefill
// row it continues), and against the twin and the three-pass path within the blocked kernel's tolerance (1e-6: the online
// softmax is the fused kernel's re-associated, see BlockedAttentionTests).
[Collection(KernelThreadsCollection.Name)]
public sealed class DecodeAttentionTests
{
    private const double Rel = 1e-6, Abs = 1e-6;

    public static TheoryData<int> Threads => [1, 2];

    // (NH, NKV): MHA, GQA 2:1, 4:1, MQA 3:1 and 8:1
    private static readonly (int NH, int NKV)[] Heads = [(1, 1), (2, 2), (4, 2), (3, 1), (8, 1), (4, 1)];
    // multiples of 16 and 8, and head sizes whose last columns and dims take the remainder loops
    private static readonly int[] HeadSizes = [8, 16, 64, 80, 24, 5, 13, 128];

    // sparsity of case i: dense, the model's window, window + sinks, block selections aligned to the 32-key tiles and not
    private static AttentionSparsity SparsityOf(Random rng, int i, int S, int NH, out int window)
    {
        window = 0;
        switch (i % 6)
        {
            case 1: window = 1 + (S / 3); return AttentionSparsity.Dense;
            case 2: return new AttentionSparsity { Window = 1 + (S / 4), Sinks = i % 5 };
            case 3: return new AttentionSparsity { Blocks = RandomSelection(rng, 32, NH, (S / 32) + 1) };
            case 4: return new AttentionSparsity { Window = 40, Sinks = 2, Blocks = RandomSelection(rng, 64, NH, (S / 64) + 1) };
            case 5: window = 70; return new AttentionSparsity { Blocks = RandomSelection(rng, 16, NH, (S / 16) + 1) };
            default: return AttentionSparsity.Dense;
        }
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void DecodeIsTheTiledPathBitForBitForEveryLength(int threads)
    {
        // every key count 0..257 (every remainder of the 32-key tiles and the 8-key groups), steps of 1..8 queries at the
        // end: the same bits as the tiled path on the same step, and as the last rows of the whole prefill
        var rng = new Random(101 + threads);
        using var scope = new ThreadScope(threads);
        for (int S = 0; S <= 257; S++)
        {
            var (NH, NKV) = Heads[S % Heads.Length];
            int HD = HeadSizes[S % HeadSizes.Length];
            int T = Math.Min(S, 1 + (S % 8)), pastLen = S - T;
            float scale = 1f / MathF.Sqrt(HD);
            var (q, k, v, mask) = Inputs(rng, S, S, NH, NKV, HD, S % 2 == 1);
            var sparsity = SparsityOf(rng, S, S, NH, out int window);
            string what = $"S={S} T={T} NH={NH} NKV={NKV} HD={HD} window={window} sparsity={S % 6} masked={S % 2 == 1}";
            var step = q.AsSpan(pastLen * NH * HD, T * NH * HD);
            float[] decode = new float[T * NH * HD], tiles = new float[T * NH * HD], prefill = new float[S * NH * HD];
            decode.AsSpan().Fill(float.NaN);
            K.BlockedAttention(step, k, v, decode, T, S, NH, NKV, HD, pastLen, scale, mask, window, sparsity, K.AttentionPath.Decode);
            K.BlockedAttention(step, k, v, tiles, T, S, NH, NKV, HD, pastLen, scale, mask, window, sparsity, K.AttentionPath.Tiles);
            AssertExact(tiles, decode, what + " (tiles, same step)");
            K.BlockedAttention(q, k, v, prefill, S, S, NH, NKV, HD, 0, scale, mask, window, sparsity, K.AttentionPath.Tiles);
            AssertExact(prefill.AsSpan(pastLen * NH * HD), decode, what + " (the prefill's last rows)");
        }
    }

    [Fact]
    public void DecodeEqualsTwinAndThreePassForEveryLength()
    {
        var rng = new Random(103);
        for (int S = 0; S <= 257; S++)
        {
            var (NH, NKV) = Heads[(S / 2) % Heads.Length];
            int HD = HeadSizes[(S / 3) % HeadSizes.Length];
            int T = Math.Min(S, 1 + (S % 8)), pastLen = S - T;
            float scale = 1f / MathF.Sqrt(HD);
            var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, S % 3 == 0);
            var sparsity = SparsityOf(rng, S / 7, S, NH, out int window);
            string what = $"S={S} T={T} NH={NH} NKV={NKV} HD={HD} window={window} sparsity={S / 7 % 6} masked={S % 3 == 0}";
            float[] decode = new float[T * NH * HD], twin = new float[T * NH * HD];
            decode.AsSpan().Fill(float.NaN);
            K.BlockedAttention(q, k, v, decode, T, S, NH, NKV, HD, pastLen, scale, mask, window, sparsity, K.AttentionPath.Decode);
            ScalarKernels.DecodeAttention(q, k, v, twin, T, S, NH, NKV, HD, pastLen, scale, mask, window, sparsity);
            AssertClose(twin, decode, Rel, Abs, what + " (twin)");
            // the three-pass path with the model's window and every pair the sparsity drops masked
            var expected = MaskedReference(q, k, v, T, S, NH, NKV, HD, pastLen, scale, mask, window, sparsity);
            AssertClose(expected, decode, Rel, Abs, what + " (three-pass)");
        }
    }

    [Fact]
    public void StepsOfAtMostEightTakeTheDecodePath()
    {
        // the public kernel routes short steps to the decode path and longer ones to the tiles: the same bits either way
        var rng = new Random(107);
        const int S = 100, NH = 8, NKV = 2, HD = 64;
        var (q, k, v, mask) = Inputs(rng, S, S, NH, NKV, HD, true);
        var all = new float[S * NH * HD];
        K.BlockedAttention(q, k, v, all, S, S, NH, NKV, HD, 0, 0.125f, mask, AttentionSparsity.Dense);
        foreach (int T in new[] { 1, 2, 8, 9 })
        {
            var step = new float[T * NH * HD];
            K.BlockedAttention(q.AsSpan((S - T) * NH * HD, T * NH * HD), k, v, step, T, S, NH, NKV, HD, S - T, 0.125f, mask, AttentionSparsity.Dense);
            AssertExact(all.AsSpan((S - T) * NH * HD), step, $"T={T}");
        }
    }

    [Fact]
    public void FullyMaskedRowsAreZero()
    {
        var rng = new Random(109);
        const int T = 3, S = 40, NH = 2, NKV = 1, HD = 16;
        var (q, k, v, _) = Inputs(rng, T, S, NH, NKV, HD, false);
        var z = new float[T * NH * HD];
        z.AsSpan().Fill(float.NaN);
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, S - T, 1f, new byte[S], 0, AttentionSparsity.Dense, K.AttentionPath.Decode);
        Assert.All(z, value => Assert.Equal(0f, value));
    }

    [Fact]
    public void DoesNotAllocateSingleThreaded()
    {
        var rng = new Random(113);
        const int T = 4, S = 90, NH = 4, NKV = 2, HD = 24;
        var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, true);
        var z = new float[T * NH * HD];
        var sparsity = new AttentionSparsity { Window = 20, Sinks = 2, Blocks = RandomSelection(rng, 32, NH, 3) };
        using var scope = new ThreadScope(1);
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, S - T, 0.25f, mask, sparsity); // warm-up: per-thread scratch, JIT
        long before = GC.GetAllocatedBytesForCurrentThread();
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, S - T, 0.25f, mask, sparsity);
        K.BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, S - T, 0.25f, mask, 3, AttentionSparsity.Dense);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
