using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>classify and patterns --image on the tiny ViT goldens (dev/reference/make_vit_goldens.py), and the one-line
/// refusals: bad images, a model without a classifier, text commands on a ViT, images for a language model.</summary>
public class VisionCliTests
{
    private static string Vit => CliRunner.Golden("vit_cls");
    private static string Image(string name) => Path.Combine(Vit, name);

    [Fact]
    public void InfoDescribesAViTAndPacksItsWeights()
    {
        // info packs the weights as the first input would: for a ViT that input is an image, not token ids
        foreach (var model in new[] { Vit, CliRunner.Golden("vit_model") })
        {
            var r = CliRunner.Run("info", "--model", model, "--prepack", "on", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            Assert.Equal("vit", doc.RootElement.GetProperty("model_type").GetString());
            Assert.True(doc.RootElement.GetProperty("weights_packed_bytes").GetInt64() > 0);
        }
    }

    [Fact]
    public void ClassifyJsonHasLogitsAndTopLabelsWithProbabilities()
    {
        var r = CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--top", "3", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var logits = doc.RootElement.GetProperty("logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(5, logits.Length);
        var top = doc.RootElement.GetProperty("top").EnumerateArray().ToArray();
        Assert.Equal(3, top.Length);
        // the first label is the argmax of the logits, its probability the softmax's
        string[] labels = ["tabby cat", "sports car", "teapot", "lighthouse", "volcano"];
        int best = Array.IndexOf(logits, logits.Max());
        Assert.Equal(labels[best], top[0].GetProperty("label").GetString());
        double z = logits.Sum(l => Math.Exp(l - logits[best]));
        Assert.Equal(1 / z, top[0].GetProperty("probability").GetDouble(), 1e-6);
        Assert.True(top[0].GetProperty("probability").GetDouble() >= top[1].GetProperty("probability").GetDouble());
    }

    [Fact]
    public void ClassifyTextListsTheTopLabels()
    {
        var r = CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--top", "2");
        Assert.Equal(0, r.ExitCode);
        var lines = r.Stdout.TrimEnd().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.All(lines, l => Assert.Contains("%", l));
    }

    [Fact]
    public void AGrayscaleImageIsConvertedAndSaidSo()
    {
        var r = CliRunner.Run("classify", "--model", Vit, "--image", Image("image_gray.png"), "--top", "1");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("grayscale", r.Stderr);
        Assert.Contains("image_gray.png", r.Stderr);
    }

    [Fact]
    public void BadInputIsOneLineNamingTheFileOrModel()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", Vit, "--image", Image("image_truncated.png")), "image_truncated.png");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", Vit, "--image", Image("config.json")), "config.json");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", Vit, "--image", Image("missing.png")), "missing.png");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", CliRunner.Golden("vit_model"), "--image", Image("image.png")), "no classifier");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", CliRunner.Golden("gpt2_tied"), "--image", Image("image.png")), "language model");
        CliRunner.AssertOneLineError(CliRunner.Run("patterns", "--model", Vit, "--text", "hello"), "vision model");
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--model", Vit, "--tokens", "1,2"), "reads images");
    }

    [Fact]
    public void PatternsOnAnImageStartWithTheCls()
    {
        var r = CliRunner.Run("patterns", "--model", Vit, "--image", Image("image.png"), "--head", "1.2", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var tokens = doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()).ToArray();
        Assert.Equal(17, tokens.Length);
        Assert.Equal("CLS", tokens[0]);
        Assert.Equal("3,3", tokens[16]);
        var pattern = doc.RootElement.GetProperty("pattern").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(1.0, pattern[..17].Sum(), 1e-5); // the CLS's row: every key visible (bidirectional)

        var text = CliRunner.Run("patterns", "--model", Vit, "--image", Image("image.png"));
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("4×4 grid", text.Stdout);
    }

    [Fact]
    public void HeadsOnAnImageRankEveryHeadByDistance()
    {
        var r = CliRunner.Run("heads", "--model", Vit, "--image", Image("image.png"), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var scores = doc.RootElement.GetProperty("scores").EnumerateArray().ToArray();
        Assert.Equal(2 * 4, scores.Length);
        var distances = scores.Select(s => s.GetProperty("distance").GetDouble()).ToArray();
        Assert.Equal(distances.Order().ToArray(), distances);
        Assert.All(scores, s => Assert.InRange(s.GetProperty("cls").GetDouble(), 0, 1));
        CliRunner.AssertOneLineError(CliRunner.Run("heads", "--model", CliRunner.Golden("gpt2_tied"), "--image", Image("image.png")), "language model");
    }

    [Fact]
    public void AblatingHeadsOnAnImageComparesTheLabelDistributions()
    {
        var classify = CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--top", "1", "--json");
        using var top = JsonDocument.Parse(classify.Stdout);
        var first = top.RootElement.GetProperty("top")[0];
        foreach (string method in new[] { "zero", "mean" })
        {
            var r = CliRunner.Run("ablate", "--model", Vit, "--image", Image("image.png"), "--heads", "0.0,1.2", "--method", method, "--json");
            Assert.Equal(0, r.ExitCode);
            using var doc = JsonDocument.Parse(r.Stdout);
            var root = doc.RootElement;
            Assert.Equal(first.GetProperty("label").GetString(), root.GetProperty("clean_label").GetString());
            Assert.Equal(first.GetProperty("probability").GetDouble(), root.GetProperty("clean_probability").GetDouble(), 1e-12);
            Assert.True(root.GetProperty("kl").GetDouble() > 0);
        }
        CliRunner.AssertOneLineError(CliRunner.Run("ablate", "--model", Vit, "--image", Image("image.png"), "--heads", "0.0", "--method", "resample"), "resample");
    }

    private static string LabelledImages => Path.Combine(CliRunner.RepoRoot, "docs", "examples", "images");

    [Fact]
    public void EvalOnLabelledImagesIsTheAccuracyAndCrossEntropyOfClassify()
    {
        // docs/examples/images: teapot/a.png, volcano/b.png, 0/c.png (sub-folders named by label or id)
        var r = CliRunner.Run("eval", "--model", Vit, "--image-dir", LabelledImages, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        int[] labels = [.. root.GetProperty("labels").EnumerateArray().Select(e => e.GetInt32())];
        Assert.Equal([0, 2, 4], labels); // folders in name order: 0, teapot, volcano
        string[] files = [Path.Combine(LabelledImages, "0", "c.png"), Path.Combine(LabelledImages, "teapot", "a.png"), Path.Combine(LabelledImages, "volcano", "b.png")];
        int correct = 0;
        double ce = 0;
        for (int i = 0; i < files.Length; i++)
        {
            using var c = JsonDocument.Parse(CliRunner.Run("classify", "--model", Vit, "--image", files[i], "--json").Stdout);
            var logits = c.RootElement.GetProperty("logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            double max = logits.Max();
            correct += Array.IndexOf(logits, max) == labels[i] ? 1 : 0;
            ce += (Math.Log(logits.Sum(l => Math.Exp(l - max))) + max - logits[labels[i]]) / files.Length;
        }
        Assert.Equal(correct, root.GetProperty("correct").GetInt32());
        Assert.Equal(ce, root.GetProperty("mean_cross_entropy").GetDouble(), 1e-5);

        var withFile = CliRunner.Run("eval", "--model", Vit, "--image-dir", LabelledImages, "--labels", Path.Combine(LabelledImages, "labels.tsv"), "--json");
        Assert.True(withFile.ExitCode == 0, withFile.Stderr);
        using var byFile = JsonDocument.Parse(withFile.Stdout);
        Assert.Equal([3, 4, 0], byFile.RootElement.GetProperty("labels").EnumerateArray().Select(e => e.GetInt32()));

        string bad = Path.Combine(Path.GetTempPath(), $"headwise-labels-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(bad, "zebra"));
        File.Copy(Image("image.png"), Path.Combine(bad, "zebra", "z.png"));
        try
        {
            CliRunner.AssertOneLineError(CliRunner.Run("eval", "--model", Vit, "--image-dir", bad), "zebra");
            File.WriteAllText(Path.Combine(bad, "labels.tsv"), "zebra/z.png\tzebra\n");
            CliRunner.AssertOneLineError(CliRunner.Run("eval", "--model", Vit, "--image-dir", bad, "--labels", Path.Combine(bad, "labels.tsv")), "line 1");
        }
        finally
        {
            Directory.Delete(bad, recursive: true);
        }
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--model", CliRunner.Golden("vit_model"), "--image-dir", LabelledImages), "no classifier");
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--model", Vit, "--image-dir", Image("missing")), "missing");
    }

    [Fact]
    public void ImportanceByPruningScoresEveryHeadOnLabelledImages()
    {
        foreach (string metric in new[] { "loss", "accuracy" })
        {
            var r = CliRunner.Run("importance", "--model", Vit, "--image-dir", LabelledImages, "--metric", metric, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            var values = doc.RootElement.GetProperty("values").EnumerateArray().Select(l => l.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
            Assert.Equal(2, values.Length);
            Assert.All(values, l => Assert.Equal(4, l.Length));
            Assert.Equal($"importance-zero-{metric}", doc.RootElement.GetProperty("name").GetString());
            Assert.Equal(3, doc.RootElement.GetProperty("images").GetInt32());
        }
        CliRunner.AssertOneLineError(CliRunner.Run("importance", "--model", Vit, "--image-dir", LabelledImages, "--method", "mean"), "zero");
        CliRunner.AssertOneLineError(CliRunner.Run("importance", "--model", Vit, "--image-dir", LabelledImages, "--metric", "kl"), "accuracy or loss");
    }

    [Fact]
    public void RolloutRowsAreDistributionsAndHeadsClusterOverADirectory()
    {
        var r = CliRunner.Run("patterns", "--model", Vit, "--image", Image("image.png"), "--rollout", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var rollout = doc.RootElement.GetProperty("rollout").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(17 * 17, rollout.Length);
        Assert.Equal(1.0, rollout[..17].Sum(), 1e-5);
        Assert.Contains("4×4 grid", CliRunner.Run("patterns", "--model", Vit, "--image", Image("image.png"), "--rollout").Stdout);
        CliRunner.AssertOneLineError(CliRunner.Run("patterns", "--model", Vit, "--image", Image("image.png"), "--rollout", "--head", "0.0"), "--rollout");

        var heads = CliRunner.Run("heads", "--model", Vit, "--image-dir", LabelledImages, "--clusters", "3", "--json");
        Assert.True(heads.ExitCode == 0, heads.Stderr);
        using var h = JsonDocument.Parse(heads.Stdout);
        Assert.Equal(3, h.RootElement.GetProperty("images").GetInt32());
        var clusters = h.RootElement.GetProperty("clusters");
        Assert.InRange(clusters.GetProperty("k").GetInt32(), 1, 3);
        Assert.Equal(8, clusters.GetProperty("assignment").EnumerateObject().Count());
        Assert.All(h.RootElement.GetProperty("scores").EnumerateArray(), s => Assert.InRange(s.GetProperty("sink").GetDouble(), 1.0 / 16 - 1e-6, 1));
        Assert.Contains("cluster 0:", CliRunner.Run("heads", "--model", Vit, "--image-dir", LabelledImages, "--clusters", "3").Stdout);
        CliRunner.AssertOneLineError(CliRunner.Run("heads", "--model", Vit, "--image", Image("image.png"), "--clusters", "9"), "--clusters");
    }

    [Fact]
    public void TokenPruningAtOneChangesNothingAndBelowRunsOnFewerTokens()
    {
        var plain = CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--json");
        var exact = CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--prune-tokens", "1.0", "--json");
        Assert.True(exact.ExitCode == 0, exact.Stderr);
        Assert.Equal(plain.Stdout, exact.Stdout);

        using var full = JsonDocument.Parse(CliRunner.Run("eval", "--model", Vit, "--image-dir", LabelledImages, "--json").Stdout);
        var halfRun = CliRunner.Run("eval", "--model", Vit, "--image-dir", LabelledImages, "--prune-tokens", "0.5", "--prune-layers", "0", "--json");
        Assert.True(halfRun.ExitCode == 0, halfRun.Stderr);
        using var half = JsonDocument.Parse(halfRun.Stdout);
        Assert.Equal(1.0, full.RootElement.GetProperty("tokens_kept").GetDouble());
        // block 0 on all 17 tokens, block 1 on the CLS + 8 patches: (17 + 9) / 2 / 17
        Assert.Equal((17 + 9) / 2.0 / 17, half.RootElement.GetProperty("tokens_kept").GetDouble(), 1e-12);
        Assert.True(half.RootElement.GetProperty("images_per_second").GetDouble() > 0);

        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--model", Vit, "--image-dir", LabelledImages, "--prune-tokens", "0"), "--prune-tokens");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--prune-tokens", "0.5", "--prune-layers", "2"), "--prune-layers");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--prune-layers", "0"), "--prune-tokens");
        CliRunner.AssertOneLineError(CliRunner.Run("classify", "--model", Vit, "--image", Image("image.png"), "--prune-tokens", "0.5", "--head-weights", Image("config.json")), "--head-weights");
    }
}
