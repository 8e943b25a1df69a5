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
        Assert.Equal(4, TrainingBenchmarks.DemoConfig.NLayers);
        Assert.Equal(256, TrainingBenchmarks.DemoConfig.DModel);
    }
}
