using Headwise.Training;

namespace Headwise.Tests.Unit.Training;

public class TrainerTests
{
    internal static TrainableConfig Tiny(TrainableArchitecture arch = TrainableArchitecture.Gpt2) => new()
    {
        Architecture = arch,
        VocabSize = 16,
        DModel = 16,
        NLayers = 2,
        NHeads = 2,
        SeqLen = 8,
        DMlp = 32,
        NKvHeads = arch == TrainableArchitecture.Llama ? 1 : 0,
    };

    // A stream with structure a model can learn quickly: repeated random "words".
    internal static int[] Stream(int length, int vocab, int seed = 1)
    {
        var rng = new Random(seed);
        var words = Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, 4).Select(_ => rng.Next(vocab)).ToArray()).ToArray();
        var list = new List<int>();
        while (list.Count < length) list.AddRange(words[rng.Next(words.Length)]);
        return list.Take(length).ToArray();
    }

    private static TrainerOptions Opts(int steps) => new()
    {
        Steps = steps,
        BatchSize = 4,
        LearningRate = 1e-2f,
        WarmupSteps = 2,
        Seed = 7,
        EvalEvery = 5,
        EvalBatches = 1,
        GradClip = 1.0,
    };

    [Theory]
    [InlineData(TrainableArchitecture.Gpt2)]
    [InlineData(TrainableArchitecture.Llama)]
    public void LossFallsOnLearnableData(TrainableArchitecture arch)
    {
        var model = new TrainableTransformer(Tiny(arch), seed: 3);
        var result = new Trainer(model, Opts(60), Stream(4000, 16)).Train();
        float first = result.Steps.Take(5).Average(s => s.Loss), last = result.Steps.TakeLast(5).Average(s => s.Loss);
        Assert.True(first > 2.5f, $"initial loss {first} should be near ln 16 = 2.77");
        Assert.True(last < first - 0.8f, $"loss {first} → {last}");
        Assert.NotNull(result.EvalLoss);
    }

    [Fact]
    public void FrozenParametersStayBitwiseAndTheRestStillLearns()
    {
        var model = new TrainableTransformer(Tiny(), seed: 3);
        string[] frozen = ["wpe", "blocks.0.", "blocks.1.attn.w_qkv"];
        bool IsFrozen(ParameterInfo p) => frozen.Any(f => p.Name.StartsWith(f, StringComparison.Ordinal));
        Assert.Contains(model.Parameters, p => p.Name == "blocks.1.attn.b_qkv"); // a prefix is not a substring match: b_qkv trains
        float[] before = (float[])model.Params.Clone();
        var result = new Trainer(model, Opts(30) with { Frozen = frozen }, Stream(4000, 16)).Train();
        foreach (var p in model.Parameters)
        {
            var was = before.AsSpan(p.Offset, p.Length);
            var now = model.Params.AsSpan(p.Offset, p.Length);
            if (IsFrozen(p)) Assert.True(was.SequenceEqual(now), $"{p.Name} changed though frozen");
            else Assert.False(was.SequenceEqual(now), $"{p.Name} did not train");
        }
        Assert.True(result.Steps[^1].Loss < result.Steps[0].Loss - 0.5f, $"loss {result.Steps[0].Loss} → {result.Steps[^1].Loss}");
    }

    [Fact]
    public void AFreezePrefixThatNamesNothingIsRefused()
    {
        var model = new TrainableTransformer(Tiny(), seed: 3);
        var e = Assert.Throws<InvalidInputException>(() => new Trainer(model, Opts(3) with { Frozen = ["blocks.9."] }, Stream(400, 16)));
        Assert.Contains("'blocks.9.' names no parameter", e.Message, StringComparison.Ordinal);
        Assert.Contains("blocks.0.attn.w_qkv", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SameSeedSameLossesForAnyThreadCount()
    {
        float[] Run(int threads)
        {
            int saved = Headwise.Compute.Kernels.MaxThreads;
            Headwise.Compute.Kernels.MaxThreads = threads;
            Headwise.Compute.Kernels.ForceParallel = threads > 1; // even these small matmuls take the multi-threaded path
            try
            {
                var cfg = Tiny() with { DModel = 32, NHeads = 4, SeqLen = 16, DMlp = 64 };
                var model = new TrainableTransformer(cfg, seed: 3);
                return new Trainer(model, Opts(4) with { BatchSize = 4, AccumulationSteps = 2 }, Stream(3000, 16)).Train().Steps.Select(s => s.Loss).ToArray();
            }
            finally
            {
                Headwise.Compute.Kernels.MaxThreads = saved;
                Headwise.Compute.Kernels.ForceParallel = false;
            }
        }
        var one = Run(1);
        Assert.Equal(one, Run(1));
        Assert.Equal(one, Run(Math.Max(2, Environment.ProcessorCount)));
    }

    [Theory]
    [InlineData(TrainableArchitecture.Gpt2)]
    [InlineData(TrainableArchitecture.Llama)]
    public void ResumeContinuesBitwise(TrainableArchitecture arch)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hw-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = Stream(3000, 16);
            var full = new Trainer(new TrainableTransformer(Tiny(arch), seed: 3), Opts(12), data).Train().Steps;
            var first = new Trainer(new TrainableTransformer(Tiny(arch), seed: 3), Opts(12) with { StopAfterStep = 5 }, data, dir).Train();
            Assert.False(first.Completed);
            Assert.Equal(5, first.LastStep);
            var rest = Trainer.Resume(dir, data, dir).Train();
            Assert.True(rest.Completed);
            Assert.Equal(full.Skip(5).Select(s => s.Loss), rest.Steps.Select(s => s.Loss));
            Assert.Equal(full.Skip(5).Select(s => s.GradNorm), rest.Steps.Select(s => s.GradNorm));
            var lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
            Assert.Equal(12, lines.Length);
            Assert.Contains("\"eval_loss\"", lines[4]);
            Assert.True(File.Exists(Path.Combine(dir, "loss.png")));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void LearningRateSchedules()
    {
        var o = new TrainerOptions { Steps = 100, WarmupSteps = 10, LearningRate = 1f, MinLrFraction = 0.1f };
        Assert.Equal(0.1f, o.LearningRateAt(1), 6);
        Assert.Equal(1f, o.LearningRateAt(10), 6);
        Assert.Equal(0.55f, o.LearningRateAt(55), 5);   // halfway through the cosine: (1 + 0.1) / 2
        Assert.Equal(0.1f, o.LearningRateAt(100), 6);
        var w = o with { Schedule = LrSchedule.WarmupStableDecay, DecayFraction = 0.2 };
        Assert.Equal(1f, w.LearningRateAt(80), 6);
        Assert.Equal(0.55f, w.LearningRateAt(90), 5);
        Assert.Equal(0.1f, w.LearningRateAt(100), 6);
    }
}
