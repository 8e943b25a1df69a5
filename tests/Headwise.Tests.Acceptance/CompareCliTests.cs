using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>
/// `headwise compare`: each model's figures equal what `eval` and `info` say of it alone, ΔNLL is the difference of those,
/// the speed columns are filled (or null with --no-speed), and bad input gets one line and exit 2.
/// </summary>
public sealed class CompareCliTests
{
    private static readonly string Text = Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "story.txt");

    private static JsonElement Json(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    [Fact]
    public void EachRowEqualsEvalAndInfoOfThatModelAlone()
    {
        // the demo model and a copy of it with head 1.2's output scaled by 0.5 baked into the weights
        string edited = Path.Combine(Path.GetTempPath(), "hw-compare-" + Guid.NewGuid().ToString("N"));
        try
        {
            var export = CliRunner.Run("export", "--model", CliRunner.DemoModel, "--intervene", CliRunner.ExampleRecipe("scale"), "--out", edited);
            Assert.True(export.ExitCode == 0, export.Stderr);
            var c = Json(CliRunner.Run("compare", "--model", CliRunner.DemoModel, "--model", edited, "--text-file", Text, "--window", "64", "--no-speed", "--json"));
            var rows = c.GetProperty("models").EnumerateArray().ToArray();
            Assert.Equal(2, rows.Length);
            Assert.Equal(64, c.GetProperty("window").GetInt32());
            Assert.Equal(32, c.GetProperty("stride").GetInt32());
            string[] paths = [CliRunner.DemoModel, edited];
            var nll = new double[2];
            for (int i = 0; i < 2; i++)
            {
                var eval = Json(CliRunner.Run("eval", "--model", paths[i], "--text-file", Text, "--window", "64", "--json"));
                var info = Json(CliRunner.Run("info", "--model", paths[i], "--json"));
                nll[i] = eval.GetProperty("mean_nll").GetDouble();
                Assert.Equal(paths[i], rows[i].GetProperty("model").GetString());
                Assert.Equal(eval.GetProperty("tokens").GetArrayLength(), c.GetProperty("tokens").GetInt32());
                Assert.Equal(nll[i], rows[i].GetProperty("mean_nll").GetDouble(), 1e-9);
                Assert.Equal(eval.GetProperty("perplexity").GetDouble(), rows[i].GetProperty("perplexity").GetDouble(), 1e-9);
                Assert.Equal(info.GetProperty("parameters").GetInt64(), rows[i].GetProperty("parameters").GetInt64());
                Assert.Equal(info.GetProperty("kv_cache_bytes_per_token").GetInt64(), rows[i].GetProperty("kv_cache_bytes_per_token").GetInt64());
                Assert.Equal(JsonValueKind.Null, rows[i].GetProperty("prefill_tokens_per_second").ValueKind);
                Assert.Equal(JsonValueKind.Null, rows[i].GetProperty("decode_ratio").ValueKind);
            }
            Assert.Equal(0, rows[0].GetProperty("delta_nll").GetDouble());
            Assert.Equal(nll[1] - nll[0], rows[1].GetProperty("delta_nll").GetDouble(), 1e-9);
            Assert.NotEqual(0, nll[1] - nll[0], 1e-6); // the edit changes the loss: the row is not a copy of the first
        }
        finally
        {
            if (Directory.Exists(edited))
            {
                Directory.Delete(edited, recursive: true);
            }
        }
    }

    [Fact]
    public void ReportCompareAddsTheSameTableAsCompare()
    {
        string edited = Path.Combine(Path.GetTempPath(), "hw-compare-" + Guid.NewGuid().ToString("N"));
        string html = Path.Combine(Path.GetTempPath(), "hw-compare-" + Guid.NewGuid().ToString("N") + ".html");
        const string prompt = "Once upon a time there was a little cat. The cat liked to play in the sun with a ball.";
        try
        {
            Assert.Equal(0, CliRunner.Run("export", "--model", CliRunner.DemoModel, "--intervene", CliRunner.ExampleRecipe("scale"), "--out", edited).ExitCode);
            var r = CliRunner.Run("report", "--model", CliRunner.DemoModel, "--compare", edited, "--text", prompt, "--max-tokens", "16", "--out", html);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var data = JsonDocument.Parse(Headwise.Reports.HtmlReport.ExtractDataJson(File.ReadAllText(html)));
            var table = data.RootElement.GetProperty("tables").EnumerateArray().Single(t => t.GetProperty("section").GetString() == "Model comparison");
            var rows = table.GetProperty("rows").EnumerateArray().Select(row => row.EnumerateArray().Select(c => c.GetString()!).ToArray()).ToArray();
            var c = Json(CliRunner.Run("compare", "--model", CliRunner.DemoModel, "--model", edited, "--text", prompt, "--no-speed", "--json"));
            var models = c.GetProperty("models").EnumerateArray().ToArray();
            Assert.Equal(2, rows.Length);
            for (int i = 0; i < 2; i++)
            {
                Assert.Equal(models[i].GetProperty("mean_nll").GetDouble().ToString("F4", System.Globalization.CultureInfo.InvariantCulture), rows[i][4]);
                Assert.Equal(models[i].GetProperty("delta_nll").GetDouble().ToString("+0.0000;-0.0000;0", System.Globalization.CultureInfo.InvariantCulture), rows[i][6]);
            }
            Assert.Equal(edited, rows[1][0]);

            var both = CliRunner.Run("report", "--model", CliRunner.DemoModel, "--compare", edited, "--intervene", CliRunner.ExampleRecipe("scale"), "--out", html);
            Assert.Equal(2, both.ExitCode);
            Assert.Contains("--compare does not combine with --intervene", both.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(edited))
            {
                Directory.Delete(edited, recursive: true);
            }
            File.Delete(html);
        }
    }

    [Fact]
    public void SpeedColumnsAreRatiosToTheFirstModel()
    {
        var c = Json(CliRunner.Run("compare", "--model", CliRunner.DemoModel, "--model", CliRunner.DemoModel, "--text", "Once upon a time there was a cat.",
            "--prefill-tokens", "16", "--decode-context", "8", "--decode-tokens", "4", "--json"));
        var rows = c.GetProperty("models").EnumerateArray().ToArray();
        Assert.Equal(1.0, rows[0].GetProperty("prefill_ratio").GetDouble());
        Assert.Equal(1.0, rows[0].GetProperty("decode_ratio").GetDouble());
        foreach (var r in rows)
        {
            Assert.Equal(16, r.GetProperty("prefill_tokens").GetInt32());
            Assert.Equal(8, r.GetProperty("decode_context").GetInt32());
            Assert.True(r.GetProperty("prefill_tokens_per_second").GetDouble() > 0);
            Assert.True(r.GetProperty("decode_tokens_per_second").GetDouble() > 0);
        }
        double p0 = rows[0].GetProperty("prefill_tokens_per_second").GetDouble(), p1 = rows[1].GetProperty("prefill_tokens_per_second").GetDouble();
        Assert.Equal(p1 / p0, rows[1].GetProperty("prefill_ratio").GetDouble(), 1e-9);
        Assert.Equal(0, rows[1].GetProperty("delta_nll").GetDouble()); // the same model twice
    }

    [Theory]
    [InlineData("give at least two models", "--text", "hi")]
    [InlineData("vocabulary of 512 tokens", "--model", "STORIES", "--text", "hi")]
    [InlineData("--window expects an integer in [2, 128]", "--model", "DEMO", "--text", "hi", "--window", "4096")]
    [InlineData("missing --text", "--model", "DEMO")]
    public void BadInputIsOneLineAndExit2(string expected, params string[] extra)
    {
        Assert.SkipWhen(extra.Contains("STORIES") && CliRunner.Stories260K is null, "../shared/models/stories260K is absent");
        var args = new List<string> { "compare", "--model", CliRunner.DemoModel };
        foreach (string a in extra)
        {
            args.AddRange(a == "STORIES" ? [Path.Combine(CliRunner.Stories260K!, "stories260K.bin"), "--tokenizer", Path.Combine(CliRunner.Stories260K!, "tok512.bin")]
                : a == "DEMO" ? [CliRunner.DemoModel] : [a]);
        }
        var r = CliRunner.Run([.. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
