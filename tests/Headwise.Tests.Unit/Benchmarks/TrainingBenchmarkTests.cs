using Headwise.Benchmarks;
using Headwise.Training;

namespace Headwise.Tests.Unit.Benchmarks;

public class TrainingBenchmarkTests
{
    [Fact]
    public void RunsOnATinyShapeAndReportsConsistentFigures()
    {
        var config = TrainingBenchmarks.DemoConfig with { DModel = 32, NLayers = 1, NHeads = 2, SeqLen = 16 };
        var r = TrainingBenchmarks.Run(config, batch: 2, threads: 1, reps: 3);
        Assert.Equal(new TrainableTransformer(config).ParameterCount, r.Parameters);
        Assert.True(r.ForwardSeconds > 0 && r.BackwardSeconds > 0 && r.StepSeconds > 0);
        Assert.Equal(2 * 16 / r.StepSeconds, r.TokensPerSecond, 6);
        Assert.Equal(r.BackwardSeconds / r.ForwardSeconds, r.BackwardToForward, 6);
    }

    [Fact]
    public void TheBenchmarkedShapeIsTheBundledDemoModels()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "models", "demo", "config.json")))
        {
            dir = dir.Parent;
        }
        Assert.NotNull(dir);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, "models", "demo", "config.json")));
        var hf = json.RootElement;
        var c = TrainingBenchmarks.DemoConfig;
        Assert.Equal(hf.GetProperty("n_layer").GetInt32(), c.NLayers);
        Assert.Equal(hf.GetProperty("n_embd").GetInt32(), c.DModel);
        Assert.Equal(hf.GetProperty("n_head").GetInt32(), c.NHeads);
        Assert.Equal(hf.GetProperty("vocab_size").GetInt32(), c.VocabSize);
        Assert.Equal(hf.GetProperty("n_positions").GetInt32(), c.SeqLen);
    }
}
