using Headwise.Benchmarks;
using Headwise.Loading;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

/// <summary>`headwise bench` stops on Ctrl-C because every benchmark checks its token between timed runs.</summary>
[Collection(KernelThreadsCollection.Name)] // the benchmarks set Kernels.MaxThreads
public sealed class BenchmarkCancellationTests
{
    [Fact]
    public void EveryBenchmarkStopsOnACancelledToken()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var token = cancelled.Token;
        Assert.ThrowsAny<OperationCanceledException>(() => GemmBenchmark.Run(n: 16, threads: 1, repetitions: 1, cancel: token));
        Assert.ThrowsAny<OperationCanceledException>(() => MemoryBandwidthBenchmark.Run(megabytes: 1, threads: 1, repetitions: 1, cancel: token));
        using var model = ModelBenchmarks.RandomModel(ModelConfig.Gpt2Small with { NLayers = 1, VocabSize = 64, DModel = 32, NHeads = 2, NKvHeads = 2, DHead = 16, DMlp = 64, MaxPositions = 32 });
        Assert.ThrowsAny<OperationCanceledException>(() => ModelBenchmarks.Prefill(model, 4, reps: 1, cancel: token));
        Assert.ThrowsAny<OperationCanceledException>(() => ModelBenchmarks.Decode(model, 2, 2, cancel: token));
        Assert.ThrowsAny<OperationCanceledException>(() => ModelBenchmarks.Hooks(model, 4, reps: 1, cancel: token));
        Assert.ThrowsAny<OperationCanceledException>(() => PrimitivesBenchmark.Run(reps: 1, cancel: token));
        Assert.ThrowsAny<OperationCanceledException>(() => TrainingBenchmarks.Run(TrainingBenchmarks.DemoConfig with { NLayers = 1, DModel = 16, NHeads = 2, SeqLen = 8, VocabSize = 32 }, batch: 1, threads: 1, reps: 1, cancel: token));
    }
}
