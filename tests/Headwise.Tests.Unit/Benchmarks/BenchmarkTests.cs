using System.Diagnostics;
using System.Runtime.Intrinsics;
using Headwise.Benchmarks;
using Headwise.Loading;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

[Collection(KernelThreadsCollection.Name)]
public sealed class BenchmarkTests
{
    [Fact]
    public void GemmFiguresAreConsistentWithTheFlopCountTheClockAndTheFmaPeak()
    {
        const int N = 96;
        var clock = Stopwatch.StartNew();
        var r = GemmBenchmark.Run(n: N, threads: 2, repetitions: 1);
        double elapsed = clock.Elapsed.TotalSeconds;
        Assert.Equal((N, 2, N), (r.N, r.Threads, r.NaiveN)); // the scalar twin is timed at min(n, 192)
        Assert.Equal(Vector512.IsHardwareAccelerated ? "Vector512" : Vector256.IsHardwareAccelerated ? "Vector256" : "Vector128", r.Isa);
        Assert.False(string.IsNullOrEmpty(r.OpenBlasStatus));
        if (r.OpenBlasSingleThread is null) Assert.StartsWith("not available", r.OpenBlasStatus);

        // Each figure is 2·n³ / (seconds of one timed product) / 10⁹. From above, no product beats the FMA issue rate of
        // its threads; a benchmark that timed an empty call (≈ 50 ns, some 30,000 GFLOP/s here) or counted flops many
        // times over would. The factor 20 absorbs a peak measured while neighbours held the core: its three 25 ms runs
        // can share a core with others where one product of ~0.1 ms runs alone.
        double flops = 2.0 * N * N * N; // the scalar twin's too, since NaiveN = N here
        var figures = new List<(string Name, double GFlops, int Threads)>
        {
            ("ours 1 thread", r.OursSingleThread, 1), ("ours 2 threads", r.OursMultiThread, 2), ("scalar twin", r.NaiveSingleThread, 1),
        };
        if (r.OpenBlasSingleThread is { } b1 && r.OpenBlasMultiThread is { } bm)
        {
            figures.Add(("OpenBLAS 1 thread", b1, 1));
            figures.Add(("OpenBLAS 2 threads", bm, 2));
        }
        foreach (var (name, gflops, threads) in figures)
        {
            Assert.True(gflops > 0 && gflops <= 20 * r.FmaPeakSingleThread * threads,
                $"{name}: {gflops:F1} GFLOP/s against an FMA peak of {r.FmaPeakSingleThread:F1} per thread");
        }
        // From below: the products those figures imply all ran inside this call (a timer in the wrong unit, or a flop
        // count too small, implies more time than there was).
        double implied = figures.Sum(p => flops / (p.GFlops * 1e9));
        Assert.True(implied <= elapsed, $"the figures imply {implied:F4} s of products, the run took {elapsed:F4} s");
    }

    [Fact]
    public void TheMedianTimerSkipsTheWarmUpAndTakesTheMiddleRun()
    {
        // warm-up 600 ms (untimed), then runs of 0, 300 and 40 ms: the median is the 40 ms run (timing the warm-up too would
        // make it the upper middle of four, 300 ms)
        int[] sleeps = [600, 0, 300, 40];
        int call = 0;
        double median = ModelBenchmarks.Median(3, () => Thread.Sleep(sleeps[call++]));
        Assert.Equal(4, call);
        Assert.InRange(median, 0.035, 0.299);
        Assert.Equal(3.0, GemmBenchmark.MedianOf([5, 1, 3]));
        Assert.Equal(3.0, GemmBenchmark.MedianOf([4, 3, 1, 2]));   // the upper middle of an even count
        Assert.Equal(7.0, GemmBenchmark.MedianOf([7]));
    }

    [Fact]
    public void ForwardFlopsOfKnownShapesAreExact()
    {
        // GPT-2 small over 1,024 tokens: 2·T·(matmul weights per token: 12 layers × 12·C² + the C·V unembedding)
        // = 2·1024·(84,934,656 + 38,597,376), plus 2·T²·C per layer for q·kᵀ and pattern·v under the causal mask
        var gpt2 = ModelConfig.Gpt2Small;
        Assert.Equal(252_993_601_536.0 + 19_327_352_832.0, ModelBenchmarks.ForwardFlops(gpt2, 1024));

        // Llama with grouped-query attention (4 query heads, 2 key/value heads of 16) and a gated MLP of three matrices:
        // per layer and token q 64·64 + k,v 2·64·32 + o 64·64 + MLP 3·64·172 = 45,312; 2 layers + unembedding 64·100
        // = 97,024 per token, × 2·10 tokens = 1,940,480; attention 2 layers × 2·10²·64 = 25,600
        var llama = gpt2 with
        {
            ModelType = "llama",
            Family = ArchitectureFamily.Llama,
            VocabSize = 100,
            DModel = 64,
            NLayers = 2,
            NHeads = 4,
            NKvHeads = 2,
            DHead = 16,
            DMlp = 172,
            MaxPositions = 32,
            Norm = NormKind.RmsNorm,
            Activation = ActivationFunction.Silu,
            GatedMlp = true,
            Positions = PositionKind.Rotary,
            RotaryDims = 16,
        };
        Assert.Equal(1_940_480.0 + 25_600.0, ModelBenchmarks.ForwardFlops(llama, 10));
    }

    [Fact]
    public void PrefillFiguresFollowFromTheFlopCountAndTheMeasuredTime()
    {
        var config = ModelConfig.Gpt2Small with { VocabSize = 64, DModel = 32, NLayers = 2, NHeads = 4, NKvHeads = 4, DHead = 8, DMlp = 128, MaxPositions = 64 };
        var model = ModelBenchmarks.RandomModel(config);
        var clock = Stopwatch.StartNew();
        var r = ModelBenchmarks.Prefill(model, tokens: 48, reps: 3);
        double elapsed = clock.Elapsed.TotalSeconds;
        Assert.Equal(48, r.Tokens);
        Assert.Equal(ModelBenchmarks.ForwardFlops(config, 48) / 1e9, r.ForwardGFlop, 12);
        Assert.Equal(r.ForwardGFlop / r.Seconds, r.GFlops, 9);
        Assert.Equal(48 / r.Seconds, r.TokensPerSecond, 9);
        // of the three timed forwards, two took at least the median, and all ran inside this call
        Assert.True(r.Seconds > 0 && 2 * r.Seconds <= elapsed, $"median {r.Seconds:F5} s, run {elapsed:F5} s");
    }

    [Fact]
    public void MemoryBandwidthFigureFollowsFromTheBufferSize()
    {
        var clock = Stopwatch.StartNew();
        var r = MemoryBandwidthBenchmark.Run(megabytes: 4, threads: 2, repetitions: 3);
        double elapsed = clock.Elapsed.TotalSeconds;
        Assert.Equal((4L << 20, 2), (r.Bytes, r.Threads));
        // bytes / median seconds: two of the three timed reads of each kind took at least the median, inside this call
        double implied = 2 * (r.Bytes / (r.SingleThreadGBps * 1e9) + r.Bytes / (r.MultiThreadGBps * 1e9));
        Assert.True(r.SingleThreadGBps > 0 && r.MultiThreadGBps > 0 && implied <= elapsed, $"the figures imply {implied:F4} s, the run took {elapsed:F4} s");
    }
}
