using Headwise.Benchmarks;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

[Collection(KernelThreadsCollection.Name)]
public sealed class BenchmarkTests
{
    [Fact]
    public void GemmBenchmarkRunsAtTinySize()
    {
        var r = GemmBenchmark.Run(n: 24, threads: 2, repetitions: 1);
        Assert.Equal(24, r.N);
        Assert.True(r.OursSingleThread > 0 && r.OursMultiThread > 0 && r.NaiveSingleThread > 0 && r.FmaPeakSingleThread > 0);
        Assert.False(string.IsNullOrEmpty(r.OpenBlasStatus));
        if (r.OpenBlasSingleThread is { } blas) Assert.True(blas > 0);
        else Assert.StartsWith("not available", r.OpenBlasStatus);
    }

    [Fact]
    public void MemoryBandwidthBenchmarkRunsAtTinySize()
    {
        var r = MemoryBandwidthBenchmark.Run(megabytes: 4, threads: 2, repetitions: 1);
        Assert.True(r.SingleThreadGBps > 0 && r.MultiThreadGBps > 0);
    }
}
