using Headwise.Models;
using Headwise.Restructure;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// GQA by head fusion: lossless at G = NKV on every Llama-family golden and stories260K; exact by construction when the
/// members of a group are linear images of each other (which checks the maps folded into W_Q and W_O and the reordering of
/// query heads); fuse never reconstructs worse than mean; bad input refused.
/// </summary>
public sealed class GqaConversionTests
{
    public static TheoryData<string> LlamaGoldens => new() { "llama_mha", "llama_gqa", "mistral", "qwen2", "llama_f16", "llama_sharded" };

    private static readonly int[] Calibration = Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 90 + 3).ToArray();

    private static float MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    private static float[] Logits(TransformerModel m) => m.Forward(ModelInput.Single(Calibration[..24]));

    [Theory]
    [MemberData(nameof(LlamaGoldens))]
    public void KeepingEveryKvHeadIsLossless(string golden)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var before = Logits(loaded.Model);
        foreach (var method in new[] { GqaMethod.Mean, GqaMethod.Fuse })
        {
            var r = GqaConversion.Convert(loaded.Model, loaded.Config.NKvHeads, method, Calibration);
            using var converted = TransformerModel.Create(r.Weights);
            Assert.True(MaxDiff(before, Logits(converted)) <= 1e-4f, $"{golden} {method}: max |Δlogit| {MaxDiff(before, Logits(converted))}");
            Assert.All(r.Layers, l => Assert.True(l.KeyError < 1e-9 && l.ValueError < 1e-9, $"layer {l.Layer}: {l.KeyError} {l.ValueError}"));
        }
    }

    [Fact]
    public void Stories260KLosslessAndRoundTripsThroughAHuggingFaceCheckpoint()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var before = Logits(loaded.Model);
        var r = GqaConversion.Convert(loaded.Model, 4, GqaMethod.Fuse, Calibration);
        string outDir = Path.Combine(Path.GetTempPath(), "hw-gqa-" + Guid.NewGuid().ToString("N"));
        try
        {
            r.Weights.SaveHf(outDir);
            using var back = ModelLoader.Load(outDir);
            Assert.Equal(4, back.Config.NKvHeads);
            Assert.True(MaxDiff(before, Logits(back.Model)) <= 1e-4f);
        }
        finally
        {
            Directory.Delete(outDir, recursive: true);
        }
    }

    /// <summary>
    /// llama_mha (4 kv heads) made so that kv head 2 is a linear image of kv head 0, and 3 of 1: keys by a scaled rotation per
    /// RoPE frequency pair (what commutes with RoPE), values by any invertible map. Fusing {0, 2} and {1, 3} then loses nothing
    /// — if the maps are folded into the right W_Q and W_O and the query heads are reordered right — while the mean does.
    /// </summary>
    [Fact]
    public void FusingLinearImagesIsExactAndReordersQueryHeads()
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_mha"));
        var w = loaded.Model.ToCanonical();
        var c = w.Config;
        int C = c.DModel, HD = c.DHead, R = c.RotaryDims;
        Assert.Equal(4, c.NKvHeads);
        Assert.Equal(HD, R);
        var rng = new Random(5);
        foreach (var layer in w.Layers)
        {
            var a = layer.Attention;
            foreach (var (from, to) in new[] { (0, 2), (1, 3) })
            {
                // keys: pair p (p, p + R/2) of head `to` = (α + iβ)·pair p of head `from`
                for (int p = 0; p < R / 2; p++)
                {
                    double al = rng.NextDouble() + 0.5, be = rng.NextDouble() - 0.5;
                    for (int row = 0; row < C; row++)
                    {
                        double x = a.K(from)[row * HD + p], y = a.K(from)[row * HD + p + R / 2];
                        a.K(to)[row * HD + p] = (float)(al * x - be * y);
                        a.K(to)[row * HD + p + R / 2] = (float)(al * y + be * x);
                    }
                }
                // values: v_to = v_from · B, B = I + small random
                var b = new double[HD, HD];
                for (int i = 0; i < HD; i++)
                {
                    for (int j = 0; j < HD; j++)
                    {
                        b[i, j] = (i == j ? 1 : 0) + (rng.NextDouble() - 0.5) * 0.3;
                    }
                }
                for (int row = 0; row < C; row++)
                {
                    for (int j = 0; j < HD; j++)
                    {
                        double s = 0;
                        for (int i = 0; i < HD; i++)
                        {
                            s += a.V(from)[row * HD + i] * b[i, j];
                        }
                        a.V(to)[row * HD + j] = (float)s;
                    }
                }
            }
        }
        using var original = TransformerModel.Create(w);
        var before = Logits(original);
        int[][][] groups = Enumerable.Range(0, c.NLayers).Select(_ => new[] { new[] { 0, 2 }, new[] { 1, 3 } }).ToArray();

        var fused = GqaConversion.Convert(original, 2, GqaMethod.Fuse, Calibration, groups: groups);
        using var fusedModel = TransformerModel.Create(fused.Weights);
        Assert.True(MaxDiff(before, Logits(fusedModel)) <= 1e-4f, $"max |Δlogit| {MaxDiff(before, Logits(fusedModel))}");
        Assert.All(fused.Layers, l => Assert.True(l.KeyError < 1e-8 && l.ValueError < 1e-8, $"layer {l.Layer}: {l.KeyError} {l.ValueError}"));
        Assert.Equal([0, 2, 1, 3], fused.QueryHeadOrigin[0]); // group {0, 2} first: old heads 0 and 2 become 0 and 1

        var mean = GqaConversion.Convert(original, 2, GqaMethod.Mean, Calibration, groups: groups);
        using var meanModel = TransformerModel.Create(mean.Weights);
        Assert.True(MaxDiff(before, Logits(meanModel)) > 1e-3f, "mean pooling of different heads cannot be exact");
    }

    [Theory]
    [InlineData("llama_mha", 2)]
    [InlineData("llama_mha", 1)]
    [InlineData("qwen2", 1)]
    public void FuseNeverReconstructsWorseThanMean(string golden, int kvHeads)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var fuse = GqaConversion.Convert(loaded.Model, kvHeads, GqaMethod.Fuse, Calibration);
        var mean = GqaConversion.Convert(loaded.Model, kvHeads, GqaMethod.Mean, Calibration);
        for (int l = 0; l < fuse.Layers.Count; l++)
        {
            Assert.Equal(fuse.Layers[l].Groups, mean.Layers[l].Groups); // the same grouping: only the fusion differs
            Assert.True(fuse.Layers[l].KeyError <= mean.Layers[l].KeyError + 1e-9, $"layer {l} keys: fuse {fuse.Layers[l].KeyError} > mean {mean.Layers[l].KeyError}");
            Assert.True(fuse.Layers[l].ValueError <= mean.Layers[l].ValueError + 1e-9, $"layer {l} values: fuse {fuse.Layers[l].ValueError} > mean {mean.Layers[l].ValueError}");
            Assert.True(fuse.Layers[l].ValueError > 0); // different heads: something is lost
        }
        Assert.Equal(kvHeads, fuse.Weights.Config.NKvHeads);
    }

    [Theory]
    [InlineData("llama_mha", 3, "--kv-heads 3 must divide the model's 4 key/value heads")]
    [InlineData("llama_mha", 0, "--kv-heads 0 must divide")]
    [InlineData("llama_gqa", 4, "--kv-heads 4 must divide the model's 2 key/value heads (1 to 2)")]
    [InlineData("gpt2_tied", 1, "gpt2 checkpoints have no grouped-query form")]
    [InlineData("neox_parallel", 1, "gpt_neox checkpoints have no grouped-query form")]
    public void BadInputIsRefused(string golden, int kvHeads, string expected)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var e = Assert.Throws<InvalidInputException>(() => GqaConversion.Convert(loaded.Model, kvHeads, GqaMethod.Fuse, Calibration));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
