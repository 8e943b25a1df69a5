using Headwise.Analysis;
using Headwise.Benchmarks;

namespace Headwise.Tests.Unit.Benchmarks;

public class InfluenceBenchmarkTests
{
    [Fact]
    public void InfluenceBenchmarkMeasuresDocumentsAndTokensAgainstPrefill()
    {
        string demo = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "models", "demo");
        using var loaded = ModelLoader.Load(demo);
        var r = InfluenceBenchmark.Run(loaded.Model, [new HeadId(2, 1)], documents: 20, reps: 1);
        Assert.Equal(20, r.Documents);
        Assert.True(r.DocumentsPerSecond > 0 && r.TokensPerSecond > 0 && r.PrefillTokensPerSecond > 0);
        Assert.Equal(r.Tokens / r.Seconds, r.TokensPerSecond, 1e-9);
        string? outFile = Environment.GetEnvironmentVariable("HEADWISE_INFLUENCE_BENCH");
        if (outFile is not null)
        {
            // a measurement for docs/performance.md: HEADWISE_INFLUENCE_BENCH=FILE dotnet test --filter InfluenceBenchmark
            var full = InfluenceBenchmark.Run(loaded.Model, [new HeadId(2, 1)], documents: 400, reps: 3);
            using var gpt2 = ModelBenchmarks.RandomModel(Headwise.Loading.ModelConfig.Gpt2Small);
            var small = InfluenceBenchmark.Run(gpt2, [new HeadId(5, 1)], documents: 40, reps: 1);
            File.WriteAllText(outFile, $"demo {full}\nratio {full.Ratio:F3}\ngpt2-small {small}\nratio {small.Ratio:F3}\n");
        }
    }
}
