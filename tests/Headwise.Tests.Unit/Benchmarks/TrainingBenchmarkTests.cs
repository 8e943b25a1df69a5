using Headwise.Benchmarks;
using Headwise.Training;

namespace Headwise.Tests.Unit.Benchmarks;

public class TrainingBenchmarkTests
{
    [Fact]
    public void RunsOnATinyShapeAndReportsConsistentFigures()
    {
        const int C = 32, L = 1, T = 16, V = TrainingBenchmarks.DemoVocabSize, B = 2, Reps = 3;
        var config = TrainingBenchmarks.DemoConfig with { DModel = C, NLayers = L, NHeads = 2, SeqLen = T };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = TrainingBenchmarks.Run(config, batch: B, threads: 1, reps: Reps);
        double elapsed = clock.Elapsed.TotalSeconds;
        // GPT-2 with tied embeddings, counted by hand: wte V·C, wpe T·C, per layer two LayerNorms (4C), qkv (3C² + 3C),
        // attention output (C² + C), MLP (4C² + 4C and 4C² + C), then the final LayerNorm (2C)
        Assert.Equal((long)V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C, r.Parameters);
        Assert.Equal($"Gpt2 L{L} C{C} H2 T{T} V{V}", r.Shape);
        Assert.Equal((B, T, 1), (r.Batch, r.SeqLen, r.Threads));
        Assert.True(r.ForwardSeconds > 0 && r.BackwardSeconds > 0 && r.StepSeconds > 0);
        // the medians are in seconds: at least half of the timed calls of each kind took the median or longer, and they all
        // ran inside this call (a timer in the wrong unit, or a median over the wrong array, breaks this)
        int atLeastMedian = Reps / 2 + 1;
        double timed = atLeastMedian * (r.ForwardSeconds + r.BackwardSeconds + r.StepSeconds);
        Assert.True(timed <= elapsed, $"medians imply ≥ {timed:F4} s of timed work, but the run took {elapsed:F4} s");
        Assert.Equal(B * T / r.StepSeconds, r.TokensPerSecond, 6);
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
