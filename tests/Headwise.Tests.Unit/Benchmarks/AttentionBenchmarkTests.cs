using Headwise.Benchmarks;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

[Collection(KernelThreadsCollection.Name)]
public sealed class AttentionBenchmarkTests
{
    [Fact]
    public void OneRowPerShapeLengthAndThreadCountWithTheCausalFlopCount()
    {
        int saved = Headwise.Compute.Kernels.MaxThreads;
        var rows = AttentionBenchmark.Run([40, 70], [1, 2], reps: 1);
        Assert.Equal(saved, Headwise.Compute.Kernels.MaxThreads); // restored
        Assert.Equal(AttentionBenchmark.Shapes.Length * 2 * 2, rows.Count);
        foreach (var r in rows)
        {
            Assert.Equal(4.0 * r.NH * r.HD * r.Tokens * (r.Tokens + 1) / 2, r.Flops);
            Assert.True(r.FusedSeconds > 0 && r.BlockedSeconds > 0, $"{r.Shape} T={r.Tokens}: times must be positive");
            Assert.Equal(r.FusedSeconds / r.BlockedSeconds, r.Speedup, 12);
            Assert.Equal(r.Flops / r.BlockedSeconds / 1e9, r.BlockedGFlops, 9);
        }
        Assert.Contains(rows, r => r is { Shape: "llama-gqa", NH: 32, NKV: 8, HD: 128, Tokens: 70, Threads: 2 });
    }
}
