using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Restructure;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// GQA → MLA [TransMLA]: lossless at kv fraction 1 on every Llama-family golden and stories260K (prefill and the absorbed
/// decode, the cache R + D floats per layer); the joint key/value reconstruction error never increases with the rank; the
/// deepseek_v3 export loads back with the logits computed before writing; bad input refused.
/// </summary>
public sealed class MlaConversionTests
{
    public static TheoryData<string> LlamaGoldens => new() { "llama_mha", "llama_gqa", "mistral", "qwen2", "llama_f16", "llama_sharded" };

    /// <summary>Every family the conversion reads: the Llama family's goldens, GPT-2 (learned positions, tied and untied) and
    /// GPT-NeoX (partial rotary 0.25 with a parallel residual, 0.5 sequential).</summary>
    public static TheoryData<string> AllFamilies => new() { "llama_mha", "llama_gqa", "mistral", "qwen2", "llama_f16", "llama_sharded",
        "gpt2_tied", "gpt2_untied", "neox_parallel", "neox_sequential" };

    private static readonly int[] Calibration = Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 90 + 3).ToArray();

    private static float MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    private static float[] Logits(TransformerModel m, int[] ids) => m.Forward(ModelInput.Single(ids));

    // one prefill of the first half, then one decode step per token: the absorbed form on the cached [k_rope | latent] rows
    private static float[] Decoded(TransformerModel m, int[] ids)
    {
        int V = m.Config.VocabSize, half = ids.Length / 2;
        m.ResetCache(1, ids.Length);
        var all = new float[ids.Length * V];
        m.ForwardChunk(ids[..half], null, half).AsSpan(0, half * V).CopyTo(all);
        for (int t = half; t < ids.Length; t++)
        {
            m.ForwardChunk([ids[t]], null, 1).AsSpan(0, V).CopyTo(all.AsSpan(t * V));
        }
        return all;
    }

    [Theory]
    [MemberData(nameof(AllFamilies))]
    public void FractionOneIsLossless(string golden)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var c = loaded.Config;
        var ids = Calibration[..24];
        var before = Logits(loaded.Model, ids);
        var (rank, rope) = MlaConversion.RanksFor(c, 1.0, MlaFormat.Headwise);
        Assert.Equal(2 * c.NKvHeads * c.DHead, rank + rope);
        var r = MlaConversion.Convert(loaded.Model, rank, rope, Calibration);
        using var mla = r.Checkpoint.ToModel();
        Assert.True(MaxDiff(before, Logits(mla, ids)) <= 1e-4f, $"{golden}: max |Δlogit| {MaxDiff(before, Logits(mla, ids))}");
        Assert.True(MaxDiff(before, Decoded(mla, ids)) <= 1e-4f, $"{golden} decode: max |Δlogit| {MaxDiff(before, Decoded(mla, ids))}");
        Assert.True(Math.Abs(MlaConversion.Nll(loaded.Model, Calibration) - MlaConversion.Nll(mla, Calibration)) <= 1e-4);
        // every key dim keeps RoPE where the source rotates all of them (the Llama family); GPT-NeoX's unrotated dims and all of
        // GPT-2's are NoPE from the start, which loses nothing either
        bool allRotary = c.RotaryDims == c.DHead;
        Assert.All(r.Layers, l => Assert.True(l.JointError < 1e-9 && (l.NopeKeyEnergy == 0 || !allRotary), $"layer {l.Layer}: {l.JointError}, NoPE {l.NopeKeyEnergy}"));
        // the cache: R + D floats per token and layer, the original's size, and that is what it allocates
        Assert.Equal(loaded.Model.KvCacheBytesPerToken, mla.KvCacheBytesPerToken);
        Assert.Equal((long)c.NLayers * (rank + rope) * 4, mla.KvCacheBytesPerToken);
        using var fresh = r.Checkpoint.ToModel();
        fresh.ResetCache(3, 10);
        Assert.Equal(30 * fresh.KvCacheBytesPerToken, fresh.KvCacheAllocatedBytes);
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("gpt2_untied")]
    [InlineData("neox_parallel")]
    [InlineData("neox_sequential")]
    public void Gpt2AndNeoXConvertThroughTheSavedHeadwiseLayout(string golden)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var c = loaded.Config;
        var ids = Calibration[..24];
        var before = Logits(loaded.Model, ids);
        var (rank, rope) = MlaConversion.RanksFor(c, 1.0, MlaFormat.Headwise);
        Assert.Equal(c.NKvHeads * c.RotaryDims, rope); // GPT-2: 0, no rotary key
        string outDir = Path.Combine(Path.GetTempPath(), "hw-mla-" + golden + "-" + Guid.NewGuid().ToString("N"));
        try
        {
            var r = MlaConversion.Convert(loaded.Model, rank, rope, Calibration);
            r.Checkpoint.Save(outDir);
            using var back = ModelLoader.Load(outDir);
            var bc = back.Config;
            Assert.Equal("deepseek_v3", bc.ModelType);
            // the block around the attention is the source's, read back from headwise_mla
            Assert.Equal((c.Norm, c.Activation, c.GatedMlp, c.MlpBias, c.Positions, c.ParallelResidual, c.TiedEmbeddings),
                (bc.Norm, bc.Activation, bc.GatedMlp, bc.MlpBias, bc.Positions, bc.ParallelResidual, bc.TiedEmbeddings));
            Assert.Equal(bc.ParameterCount, r.Checkpoint.Tensors.Sum(t => (long)t.Data.Length));
            Assert.True(MaxDiff(before, Logits(back.Model, ids)) <= 1e-4f, $"{golden}: max |Δlogit| {MaxDiff(before, Logits(back.Model, ids))}");
            Assert.True(MaxDiff(before, Decoded(back.Model, ids)) <= 1e-4f, $"{golden} decode: max |Δlogit| {MaxDiff(before, Decoded(back.Model, ids))}");
            Assert.Equal(c.Positions == PositionKind.Learned, back.Model.HookPoints.Any(p => p.Kind == HookKind.PosEmbed));

            // half the cache costs something and stays a language model
            (rank, rope) = MlaConversion.RanksFor(c, 0.5, MlaFormat.Headwise);
            using var half = MlaConversion.Convert(loaded.Model, rank, rope, Calibration).Checkpoint.ToModel();
            Assert.Equal(loaded.Model.KvCacheBytesPerToken / 2, half.KvCacheBytesPerToken);
            double nll = MlaConversion.Nll(half, Calibration);
            Assert.True(double.IsFinite(nll) && nll >= MlaConversion.Nll(loaded.Model, Calibration) - 0.5, $"{golden}: {nll}");
        }
        finally
        {
            if (Directory.Exists(outDir))
            {
                Directory.Delete(outDir, recursive: true);
            }
        }
    }

    [Fact]
    public void Stories260KLosslessThroughTheSavedCheckpointAndCheaperBelow()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        int[] text = loaded.RequireTokenizer().Encode(CalibrationText.Default);
        double original = MlaConversion.Nll(loaded.Model, text);
        string outDir = Path.Combine(Path.GetTempPath(), "hw-mla-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (rank, rope) = MlaConversion.RanksFor(loaded.Config, 1.0, MlaFormat.Headwise);
            MlaConversion.Convert(loaded.Model, rank, rope, text).Checkpoint.Save(outDir);
            using var back = ModelLoader.Load(outDir);
            Assert.Equal("deepseek_v3", back.Config.ModelType);
            Assert.True(Math.Abs(original - MlaConversion.Nll(back.Model, text)) <= 1e-4);
            // a quarter of the cache, 16 of 64 floats: D = 8 of the 32 rotary dims, R = 8; it costs something, and stays a language model
            (rank, rope) = MlaConversion.RanksFor(loaded.Config, 0.25, MlaFormat.Headwise);
            Assert.Equal((8, 8), (rank, rope));
            using var quarter = MlaConversion.Convert(loaded.Model, rank, rope, text).Checkpoint.ToModel();
            Assert.Equal(loaded.Model.KvCacheBytesPerToken / 4, quarter.KvCacheBytesPerToken);
            double nll = MlaConversion.Nll(quarter, text);
            Assert.True(nll > original && nll < Math.Log(loaded.Config.VocabSize), $"{original} → {nll}");
        }
        finally
        {
            if (Directory.Exists(outDir))
            {
                Directory.Delete(outDir, recursive: true);
            }
        }
    }

    [Fact]
    public void ReconstructionErrorNeverIncreasesWithTheRank()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        int[] text = loaded.RequireTokenizer().Encode(CalibrationText.Default);
        const int rope = 8;
        int max = 2 * loaded.Config.NKvHeads * loaded.Config.DHead - rope;
        double[]? previous = null;
        foreach (int rank in new[] { 1, 2, 4, 8, 16, 24, 32, 40, 48, max })
        {
            var errors = MlaConversion.Convert(loaded.Model, rank, rope, text).Layers.Select(l => l.JointError).ToArray();
            if (previous is not null)
            {
                for (int l = 0; l < errors.Length; l++)
                {
                    Assert.True(errors[l] <= previous[l] + 1e-9, $"layer {l}: rank {rank} error {errors[l]} > {previous[l]}");
                }
            }
            previous = errors;
        }
        Assert.All(previous!, e => Assert.True(e < 1e-9, $"full rank leaves {e}"));
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("llama_mha")]
    public void DeepseekV3ExportLoadsBackWithTheSameLogits(string golden)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var (rank, rope) = MlaConversion.RanksFor(loaded.Config, 0.5, MlaFormat.DeepseekV3);
        Assert.Equal(loaded.Config.RotaryDims, rope);
        var r = MlaConversion.Convert(loaded.Model, rank, rope, Calibration, MlaFormat.DeepseekV3);
        Assert.DoesNotContain("headwise_mla", r.Checkpoint.Config.Select(p => p.Key));
        Assert.Equal(loaded.Config.NHeads, (int)r.Checkpoint.Config["num_key_value_heads"]!);
        Assert.Equal(loaded.Config.NLayers, (int)r.Checkpoint.Config["first_k_dense_replace"]!);
        var ids = Calibration[..24];
        using var converted = r.Checkpoint.ToModel();
        var expected = Logits(converted, ids);
        string outDir = Path.Combine(Path.GetTempPath(), "hw-mla-ds-" + Guid.NewGuid().ToString("N"));
        try
        {
            r.Checkpoint.Save(outDir);
            using var back = ModelLoader.Load(outDir);
            Assert.Null(back.Config.Mla!.Headwise);
            Assert.True(MaxDiff(expected, Logits(back.Model, ids)) <= 1e-5f);
            Assert.True(MaxDiff(expected, Decoded(back.Model, ids)) <= 1e-4f);
            // the latent norm's approximation has a price, measured against the same weights without it
            using var exact = MlaConversion.WithoutLatentNorm(r).ToModel();
            Assert.True(double.IsFinite(MlaConversion.Nll(back.Model, Calibration) - MlaConversion.Nll(exact, Calibration)));
        }
        finally
        {
            if (Directory.Exists(outDir))
            {
                Directory.Delete(outDir, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void FractionOutsideZeroToOneIsRefused(double f)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        var e = Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(loaded.Config, f, MlaFormat.Headwise));
        Assert.Contains("--kv-fraction", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ImpossibleRanksAndUnsupportedSourcesAreRefused()
    {
        using var gqa = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        var c = gqa.Config; // 2 kv heads of 8 dims, all rotary: at most 16 rotary dims, rank ≤ 32 − D
        Assert.Contains("--kv-rank 30", Assert.Throws<InvalidInputException>(() => MlaConversion.Convert(gqa.Model, 30, 4, Calibration)).Message, StringComparison.Ordinal);
        Assert.Contains("--kv-rank 0", Assert.Throws<InvalidInputException>(() => MlaConversion.Convert(gqa.Model, 0, 4, Calibration)).Message, StringComparison.Ordinal);
        Assert.Contains("--rope-dim 18", Assert.Throws<InvalidInputException>(() => MlaConversion.Convert(gqa.Model, 4, 18, Calibration)).Message, StringComparison.Ordinal);
        Assert.Contains("--rope-dim 3", Assert.Throws<InvalidInputException>(() => MlaConversion.Convert(gqa.Model, 4, 3, Calibration)).Message, StringComparison.Ordinal);
        Assert.Contains("--rope-dim 4", Assert.Throws<InvalidInputException>(() => MlaConversion.Convert(gqa.Model, 4, 4, Calibration, MlaFormat.DeepseekV3)).Message, StringComparison.Ordinal);
        Assert.Contains("no room for a latent", Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(c, 0.25, MlaFormat.DeepseekV3)).Message, StringComparison.Ordinal);

        // stock DeepSeek-V3 has no place for GPT-2's and GPT-NeoX's LayerNorm, GELU MLP, biases, learned positions, parallel residual
        using var gpt2 = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var e = Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(gpt2.Config, 1, MlaFormat.DeepseekV3)).Message;
        Assert.Contains("--format deepseek_v3", e, StringComparison.Ordinal);
        Assert.Contains("learned position embedding", e, StringComparison.Ordinal);
        Assert.Contains("LayerNorm", e, StringComparison.Ordinal);
        Assert.Contains("query bias", e, StringComparison.Ordinal);
        using var neox = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "neox_parallel"));
        Assert.Contains("parallel residual", Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(neox.Config, 1, MlaFormat.DeepseekV3)).Message, StringComparison.Ordinal);
        using var vit = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "vit_cls"));
        Assert.Contains("vit checkpoints are not supported", Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(vit.Config, 1, MlaFormat.Headwise)).Message, StringComparison.Ordinal);
        using var qwen = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "qwen2"));
        Assert.Contains("query bias", Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(qwen.Config, 1, MlaFormat.DeepseekV3)).Message, StringComparison.Ordinal);
        using var mistral = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "mistral"));
        Assert.Contains("sliding window", Assert.Throws<InvalidInputException>(() => MlaConversion.RanksFor(mistral.Config, 1, MlaFormat.DeepseekV3)).Message, StringComparison.Ordinal);
    }
}
