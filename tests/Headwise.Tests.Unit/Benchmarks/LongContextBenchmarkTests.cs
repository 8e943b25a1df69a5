using Headwise.Benchmarks;
using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Sparse;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

[Collection(KernelThreadsCollection.Name)]
public sealed class LongContextBenchmarkTests
{
    private const int NH = 4, NKV = 2, HD = 16, B = 32;

    [Fact]
    public void TinyRunHasDenseTopKAndWindowRowsWithTheirDensities()
    {
        int[] tokens = [96, 320];
        var r = LongContextBenchmark.Run(tokens, reps: 2, oneRepAbove: 200, blockSize: B, window: 64, sinks: 2, NH: NH, NKV: NKV, HD: HD);
        Assert.Equal(tokens.Length * 3, r.Rows.Count);
        foreach (int T in tokens)
        {
            var rows = r.Rows.Where(x => x.Tokens == T).ToArray();
            Assert.Equal(T > 200 ? 1 : 2, rows[0].Reps);
            Assert.Equal("dense", rows[0].Spec);
            Assert.Equal(1, rows[0].Density);
            int keep = LongContextBenchmark.KeepForDensity(T, B, 0.1);
            Assert.Equal($"topk-blocks:{B},{keep}", rows[1].Spec);
            Assert.Equal(LongContextBenchmark.TopKDensity(T, B, keep), rows[1].Density, 12);
            Assert.Equal("window:64,sinks:2", rows[2].Spec);
            // window 64 with 2 sinks, counted pair by pair
            long kept = 0, causal = 0;
            for (int i = 0; i < T; i++)
            {
                for (int s = 0; s <= i; s++)
                {
                    causal++;
                    kept += i - s < 64 || s < 2 ? 1 : 0;
                }
            }
            Assert.Equal((double)kept / causal, rows[2].Density, 12);
            foreach (var x in rows)
            {
                Assert.True(x.AttentionSeconds > 0 && x.DenseSeconds > 0, $"{x.Spec} at {T}: times must be positive");
                Assert.Equal(rows[0].AttentionSeconds, x.DenseSeconds);
                Assert.Equal(x.DenseSeconds / x.AttentionSeconds, x.Speedup, 12);
                Assert.Equal(x.DenseSeconds / (x.AttentionSeconds + x.SelectionSeconds), x.SpeedupWithSelection, 12);
            }
        }
        var m = Assert.IsType<LongContextMemory>(r.Memory);
        Assert.Equal(320, m.Tokens);
        Assert.Equal(4L * 320 * HD * (2 * NH + 2 * NKV), m.TensorBytes);
        Assert.True(m.ScratchBytes > 0 && m.PeakWorkingSet > 0 && m.WorkingSetBefore > 0);
        var described = LongContextBenchmark.Describe(r).ToArray();
        Assert.Contains(described, item => item.Line?.Contains("memory at 320 tokens", StringComparison.Ordinal) == true);
        // the rows as a table's cells (the CLI draws it): one row per spec and length, the spec's name in its column
        var table = Assert.Single(described, item => item.Columns is not null);
        Assert.Equal([">tokens", "spec", ">density", ">rounds", ">attention s", ">selection s", ">speed-up", ">+ sel."], table.Columns!);
        Assert.Equal(r.Rows.Count, table.Rows!.Count);
        Assert.All(table.Rows, cells => Assert.Equal(table.Columns!.Count, cells.Length));
        Assert.Equal(r.Rows[0].Spec, table.Rows[0][1]);
    }

    [Fact]
    public void KeepForDensityPicksTheNearestAndTheDensityMatchesThePolicysCount()
    {
        // 16K tokens in blocks of 64: K = 14 gives 10.3%, K = 13 9.5% (K = round(0.1 · 256) = 26 would give 18.9%)
        int keep = LongContextBenchmark.KeepForDensity(16384, 64, 0.1);
        Assert.Equal(14, keep);
        Assert.Equal(0.1027464144, LongContextBenchmark.TopKDensity(16384, 64, keep), 9);
        Assert.Equal(0.1893500153, LongContextBenchmark.TopKDensity(16384, 64, 26), 9);
        Assert.Equal(1, LongContextBenchmark.TopKDensity(200, B, 7), 12); // 7 blocks: all of them
        var (q, k, _) = LongContextBenchmark.RandomLayer(200, NH, NKV, HD, seed: 3);
        var policy = new TopKBlocksPolicy(B, 3);
        policy.Select(0, 0, q, k, 200, 200, NH, NKV, HD, 0, []);
        Assert.Equal(LongContextBenchmark.TopKDensity(200, B, 3), policy.Density, 12);
    }

    [Theory]
    [InlineData("topk-blocks:32,100")]
    [InlineData("window:400,sinks:4")]
    public void ASpecThatKeepsEveryBlockEqualsDenseOnTheBlockedKernel(string spec)
    {
        const int T = 200;
        var (q, k, v) = LongContextBenchmark.RandomLayer(T, NH, NKV, HD, seed: 5);
        float scale = 1f / MathF.Sqrt(HD);
        var dense = new float[T * NH * HD];
        var sparse = new float[T * NH * HD];
        Kernels.BlockedAttention(q, k, v, dense, T, T, NH, NKV, HD, 0, scale, [], AttentionSparsity.Dense);
        var policy = AttentionSpec.Parse(spec);
        // the selection itself, not the dense path the forward would take for it
        var sparsity = policy.Select(0, 0, q, k, T, T, NH, NKV, HD, 0, []);
        Assert.False(sparsity.IsDense && spec.StartsWith("topk", StringComparison.Ordinal));
        Kernels.BlockedAttention(q, k, v, sparse, T, T, NH, NKV, HD, 0, scale, [], sparsity);
        Assert.Equal(1, policy.Density, 12);
        for (int i = 0; i < dense.Length; i++)
        {
            Assert.True(Math.Abs(dense[i] - sparse[i]) <= 1e-5f, $"{spec}: z[{i}] {sparse[i]} vs dense {dense[i]}");
        }
    }

    [Theory]
    [InlineData("dense", 0)]
    [InlineData("window:7,sinks:3", 0)]
    [InlineData("window:50,sinks:0", 37)]
    [InlineData("topk-blocks:32,3", 0)]
    [InlineData("topk-blocks:16,2,proxy:2", 21)]
    [InlineData("chunks:32,2", 40)]
    public void TheIntervalCountEqualsThePairByPairCount(string spec, int pastLen)
    {
        // an all-ones key mask takes the pair-by-pair count; an empty one the interval count
        const int T = 90;
        int S = pastLen + T;
        var (q, _, _) = LongContextBenchmark.RandomLayer(T, NH, NKV, HD, seed: 9);
        var (_, k, _) = LongContextBenchmark.RandomLayer(S, NH, NKV, HD, seed: 10);
        var sparsity = AttentionSpec.Parse(spec).Select(0, 0, q, k, T, S, NH, NKV, HD, pastLen, []);
        var ones = Enumerable.Repeat((byte)1, S).ToArray();
        var fast = SparseMask.Count(sparsity, T, S, NH, pastLen, []);
        var slow = SparseMask.Count(sparsity, T, S, NH, pastLen, ones);
        Assert.Equal(slow, fast);
        Assert.True(fast.Kept > 0);
        // a cache longer than the step's last query (S past pastLen + T) counts no more rows
        Assert.Equal(SparseMask.Count(sparsity, T, S + 5, NH, pastLen, Enumerable.Repeat((byte)1, S + 5).ToArray()),
            SparseMask.Count(sparsity, T, S + 5, NH, pastLen, []));
    }

    [Fact]
    public void TheSparsityCommandsAttentionSpeedupIsTimedPerSpec()
    {
        // the sparsity command's attention_speedup: dense ÷ (selection + blocked kernel) over every layer, one value per spec
        using var model = ModelBenchmarks.RandomModel(ModelConfig.Gpt2Small with
        {
            NLayers = 2,
            VocabSize = 64,
            DModel = 32,
            NHeads = 4,
            NKvHeads = 4,
            DHead = 8,
            DMlp = 64,
            MaxPositions = 96,
        });
        var ids = Enumerable.Range(0, 96).Select(i => i * 7 % 64).ToArray();
        AttentionPolicy[] specs = [AttentionSpec.Parse("window:16,sinks:2"), AttentionSpec.Parse("topk-blocks:32,1")];
        var speedups = SparsityAnalysis.AttentionSpeedups(model, ModelInput.Single(ids), specs, rounds: 2);
        Assert.Equal(2, speedups.Length);
        Assert.All(speedups, x => Assert.True(x > 0));
        Assert.All(specs, p => Assert.Equal(0, p.CausalPairs)); // counts reset
        var r = SparsityAnalysis.Run(model, ids, specs, timeRounds: 1);
        Assert.All(r.Specs, x => Assert.True(x.AttentionSpeedup > 0));
        Assert.All(SparsityAnalysis.Run(model, ids, specs).Specs, x => Assert.Null(x.AttentionSpeedup));
    }
}
