using Headwise.Models;
using Headwise.Restructure;
using Headwise.Training;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// Latent attention in the trainer: a deepseek_v3 checkpoint (stock goldens with and without q_lora_rank and
/// attention_bias, and what `convert mla` writes from stories260K) imports with the engine's logits within 1e-4 and exports
/// back to the same tensors bit for bit; healing an MLA conversion lowers its held-out KL, and the lossless fraction 1 starts
/// at KL ≈ 0.
/// </summary>
public sealed class MlaHealingTests
{
    private static float MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }

    // the trainer's logits of one sequence, (T, V)
    private static float[] TrainerLogits(TrainableTransformer t, int[] ids)
    {
        t.Forward(ids, default, 1, ids.Length);
        return t.Logits.ToArray();
    }

    private static void AssertRoundTrip(TransformerModel engine, int[] ids, string what, float tolerance = 1e-4f)
    {
        var expected = engine.Forward(ModelInput.Single(ids));
        var student = TrainableTransformer.FromMla(engine);
        Assert.True(MaxDiff(expected, TrainerLogits(student, ids)) <= tolerance, $"{what}: trainer vs engine max |Δlogit| {MaxDiff(expected, TrainerLogits(student, ids))}");
        var back = student.ToMlaCheckpoint(engine.Config.BosTokenId, engine.Config.EosTokenId);
        // every tensor the engine read comes back, bit for bit, under its own name
        Assert.Equal(engine.Weights.Names.Order(), back.Tensors.Select(t => t.Name).Order());
        foreach (var (name, shape, data) in back.Tensors)
        {
            var w = engine.Weights.Get(name, shape);
            Assert.True(w.Span.SequenceEqual(data), $"{what}: {name} changed in the round trip");
        }
        using var reloaded = back.ToModel();
        Assert.Equal(engine.Config.Mla! with { Headwise = null }, reloaded.Config.Mla! with { Headwise = null });
        Assert.Equal(engine.Config.Mla!.Headwise?.RopeFrequencies, reloaded.Config.Mla!.Headwise?.RopeFrequencies);
        Assert.True(MaxDiff(expected, reloaded.Forward(ModelInput.Single(ids))) == 0, $"{what}: the exported checkpoint's logits differ");
    }

    [Theory]
    [InlineData("deepseek_v3_qlora")]
    [InlineData("deepseek_v3_noqlora")]
    [InlineData("deepseek_v3_bias")]
    public void StockDeepseekV3ImportsWithTheEnginesLogitsAndExportsTheSameTensors(string golden)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        int[] ids = [.. Enumerable.Range(0, 20).Select(i => (i * 37 + 11) % loaded.Config.VocabSize)];
        AssertRoundTrip(loaded.Model, ids, golden);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.25)]
    public void ConvertedStories260KImportsAndExportsExactlyThroughTheSavedDirectory(double fraction)
    {
        string dir = TestPaths.RequireStories260K();
        using var teacher = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var calibration = teacher.RequireTokenizer().Encode(CalibrationText.Default);
        WithSavedConversion(teacher.Model, fraction, calibration, mla => AssertRoundTrip(mla, calibration[..64], $"stories260K mla {fraction}"));
    }

    // converts source at the kv fraction (calibrated on calibration), saves it, and hands the model loaded back from the
    // saved directory to check; the directory is removed afterwards
    private static void WithSavedConversion(TransformerModel source, double fraction, int[] calibration, Action<TransformerModel> check)
    {
        var (rank, rope) = MlaConversion.RanksFor(source.Config, fraction, MlaFormat.Headwise);
        var converted = MlaConversion.Convert(source, rank, rope, calibration).Checkpoint;
        string saved = Path.Combine(Path.GetTempPath(), $"hw-mla-heal-{Guid.NewGuid():N}");
        try
        {
            converted.Save(saved);
            using var mla = ModelLoader.Load(saved);
            check(mla.Model);
        }
        finally
        {
            if (Directory.Exists(saved)) Directory.Delete(saved, recursive: true);
        }
    }

    [Theory]
    [InlineData("gpt2_tied", 1.0)]
    [InlineData("gpt2_tied", 0.5)]
    [InlineData("gpt2_untied", 0.25)]
    public void Gpt2ConversionsImportAsGpt2BlocksWithTheEnginesLogitsAndExportTheSameTensors(string golden, double fraction)
    {
        using var source = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        int[] ids = [.. Enumerable.Range(0, 20).Select(i => (i * 37 + 11) % source.Config.VocabSize)];
        WithSavedConversion(source.Model, fraction, ids, mla =>
        {
            // LayerNorm with biases, GELU (tanh) MLP with biases, learned positions; the latent has no rotary key
            var t = TrainableTransformer.FromMla(mla).Config;
            Assert.Equal((TrainableArchitecture.Gpt2, true, 0, true, true), (t.Architecture, t.UseBias, t.Mla!.RopeDim, t.Mla.QueryBias, t.Mla.AttentionBias));
            AssertRoundTrip(mla, ids, $"{golden} mla {fraction}", tolerance: 1e-5f);
        });
    }

    [Theory]
    [InlineData("neox_parallel", "parallel residual")]
    [InlineData("neox_sequential", "LayerNorm, GELU (tanh) and learned positions")]
    public void GptNeoXConversionsAreRefusedWithTheReason(string golden, string reason)
    {
        using var source = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        int[] ids = [.. Enumerable.Range(0, 20).Select(i => (i * 37 + 11) % source.Config.VocabSize)];
        var (rank, rope) = MlaConversion.RanksFor(source.Config, 1.0, MlaFormat.Headwise);
        using var mla = MlaConversion.Convert(source.Model, rank, rope, ids).Checkpoint.ToModel();
        Assert.Contains(reason, TrainableTransformer.MlaImportBlocker(mla.Config), StringComparison.Ordinal);
        Assert.Contains(reason, Assert.Throws<InvalidInputException>(() => TrainableTransformer.FromMla(mla)).Message, StringComparison.Ordinal);
    }

    // the same teacher and texts as HealingTests
    private static (LoadedModel Teacher, int[] Train, int[] HeldOut) Stories() => HealingTests.Stories();

    [Fact]
    public void HealingAnMlaConversionLowersTheHeldOutKl()
    {
        var (teacher, train, heldOut) = Stories();
        using var _ = teacher;
        var (rank, rope) = MlaConversion.RanksFor(teacher.Config, 0.25, MlaFormat.Headwise);
        using var before = MlaConversion.Convert(teacher.Model, rank, rope, train).Checkpoint.ToModel();
        var start = Healing.Score(before, teacher.Model, heldOut);
        Assert.True(start.Kl > 0.05, $"a quarter of the cache is known to lose quality (KL {start.Kl})");

        var student = TrainableTransformer.FromModel(before);
        var kls = Healing.Heal(student, teacher.Model, train, new HealingOptions { Steps = 25, SeqLen = 64, BatchSize = 4, LearningRate = 1e-3f });
        using var after = student.ToMlaCheckpoint().ToModel();
        Assert.Equal(before.KvCacheBytesPerToken, after.KvCacheBytesPerToken); // still the same latent: the cache did not grow
        var end = Healing.Score(after, teacher.Model, heldOut);
        Assert.True(end.Kl < 0.9 * start.Kl, $"held-out KL {start.Kl:F4} → {end.Kl:F4}"); // 25 steps on ~600 tokens: a modest gain (docs/restructure.md)
        Assert.True(end.Nll < start.Nll, $"held-out NLL {start.Nll:F4} → {end.Nll:F4}");
        Assert.True(kls[^5..].Average() < kls[..5].Average(), "the batch KL falls during training");
    }

    [Fact]
    public void TheLosslessFractionStartsAtKlZero()
    {
        var (teacher, train, heldOut) = Stories();
        using var _ = teacher;
        var (rank, rope) = MlaConversion.RanksFor(teacher.Config, 1.0, MlaFormat.Headwise);
        using var model = MlaConversion.Convert(teacher.Model, rank, rope, train).Checkpoint.ToModel();
        Assert.True(Healing.Score(model, teacher.Model, heldOut).Kl <= 1e-5);
        var kls = Healing.Heal(TrainableTransformer.FromModel(model), teacher.Model, train, new HealingOptions { Steps = 1 });
        Assert.True(kls[0] <= 1e-5, $"first batch KL {kls[0]}");
    }

    [Fact]
    public void ModelsWithoutLatentAttentionAreRefusedByTheMlaPaths()
    {
        using var llama = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        Assert.Contains("no latent attention", Assert.Throws<InvalidInputException>(() => TrainableTransformer.FromMla(llama.Model)).Message, StringComparison.Ordinal);
        var t = TrainableTransformer.FromModel(llama.Model);
        Assert.Contains("no latent attention", Assert.Throws<InvalidInputException>(() => t.ToMlaCheckpoint()).Message, StringComparison.Ordinal);
        using var mla = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "deepseek_v3_noqlora"));
        Assert.Contains("deepseek_v3", Assert.Throws<InvalidInputException>(() => TrainableTransformer.FromMla(mla.Model).ToCanonical()).Message, StringComparison.Ordinal);
    }
}
