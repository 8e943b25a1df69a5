using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>
/// --attention on eval, generate, heads, report and compare; `headwise sparsity` and `headwise streaming`; bad specs get one
/// line and exit 2.
/// </summary>
public sealed class SparseCliTests
{
    private static readonly string Text = Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "stories.txt");

    private static JsonElement Json(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    [Fact]
    public void EvalUnderASpecReportsItsDensityAndASpecThatKeepsEverythingEqualsDense()
    {
        var dense = Json(CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text-file", Text, "--json"));
        var full = Json(CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text-file", Text, "--attention", "window:1000,sinks:0", "--json"));
        Assert.Equal(dense.GetProperty("mean_nll").GetDouble(), full.GetProperty("mean_nll").GetDouble(), 1e-9);
        Assert.Equal(1.0, full.GetProperty("density").GetDouble());
        var sparse = Json(CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text-file", Text, "--attention", "window:16,sinks:4", "--json"));
        Assert.Equal("window:16,sinks:4", sparse.GetProperty("attention").GetString());
        Assert.InRange(sparse.GetProperty("density").GetDouble(), 0.05, 0.99);
        Assert.NotEqual(dense.GetProperty("mean_nll").GetDouble(), sparse.GetProperty("mean_nll").GetDouble(), 1e-6);
        var text = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text-file", Text, "--attention", "topk-blocks:16,2");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("attention    topk-blocks:16,2 (density", text.Stdout);
    }

    [Fact]
    public void GenerateWithAWindowRunsPastTheContext()
    {
        // the demo model's context is 128: 200 new tokens through a rolling cache of 4 sinks + 60 recent tokens
        var g = Json(CliRunner.Run("generate", "--model", CliRunner.DemoModel, "--prompt", "The", "--max-tokens", "200", "--no-eos",
            "--attention", "window:60,sinks:4", "--json"));
        Assert.Equal(200, g.GetProperty("ids").GetArrayLength());
        Assert.Equal("max_tokens", g.GetProperty("stopped").GetString());
        Assert.InRange(g.GetProperty("density").GetDouble(), 0.1, 0.9);
        var sparse = Json(CliRunner.Run("generate", "--model", CliRunner.DemoModel, "--prompt", "The", "--max-tokens", "20",
            "--attention", "topk-blocks:8,2", "--json"));
        Assert.Equal("topk-blocks:8,2", sparse.GetProperty("attention").GetString());
    }

    [Fact]
    public void HeadsReportAndCompareTakeASpec()
    {
        var h = Json(CliRunner.Run("heads", "--model", CliRunner.DemoModel, "--seq-len", "20", "--batch", "2", "--attention", "window:8,sinks:1", "--json"));
        Assert.Equal("window:8,sinks:1", h.GetProperty("attention").GetString());
        string out_ = Path.Combine(Path.GetTempPath(), "hw-sparse-report-" + Guid.NewGuid().ToString("N") + ".html");
        try
        {
            var r = Json(CliRunner.Run("report", "--model", CliRunner.DemoModel, "--out", out_, "--max-tokens", "24", "--attention", "chunks:8,2", "--json"));
            Assert.Equal("chunks:8,2", r.GetProperty("attention").GetString());
        }
        finally
        {
            File.Delete(out_);
        }
        var c = Json(CliRunner.Run("compare", "--model", CliRunner.DemoModel, "--model", CliRunner.DemoModel, "--text-file", Text,
            "--attention", "dense", "--attention", "window:16,sinks:4", "--no-speed", "--json"));
        var rows = c.GetProperty("models").EnumerateArray().ToArray();
        Assert.EndsWith("[window:16,sinks:4]", rows[1].GetProperty("model").GetString());
        Assert.Equal(0, rows[0].GetProperty("delta_nll").GetDouble());
        Assert.NotEqual(0, rows[1].GetProperty("delta_nll").GetDouble(), 1e-6);
        Assert.Equal(1.0, c.GetProperty("attention")[0].GetProperty("density").GetDouble());
    }

    [Fact]
    public void SparsityReportsDensityDeltaNllAndRecallNoBetterThanTheOracle()
    {
        var s = Json(CliRunner.Run("sparsity", "--model", CliRunner.DemoModel, "--text-file", Text,
            "--attention", "window:16,sinks:4", "--attention", "topk-blocks:16,2", "--attention", "topk-blocks:16,100", "--json"));
        var specs = s.GetProperty("specs").EnumerateArray().ToArray();
        Assert.Equal(3, specs.Length);
        foreach (var spec in specs)
        {
            var recall = spec.GetProperty("recall").EnumerateArray().SelectMany(r => r.EnumerateArray()).Select(x => x.GetDouble()).ToArray();
            var oracle = spec.GetProperty("oracle_recall").EnumerateArray().SelectMany(r => r.EnumerateArray()).Select(x => x.GetDouble()).ToArray();
            Assert.Equal(4 * 4, recall.Length); // the demo model: 4 layers × 4 heads
            for (int i = 0; i < recall.Length; i++)
            {
                Assert.InRange(recall[i], 0, oracle[i] + 1e-6);
            }
            Assert.True(spec.GetProperty("attention_speedup").GetDouble() > 0); // timed: dense ÷ the spec's attention part
        }
        Assert.True(specs[0].GetProperty("density").GetDouble() < 1);
        Assert.Equal(1.0, specs[2].GetProperty("density").GetDouble());
        Assert.Equal(0, specs[2].GetProperty("delta_nll").GetDouble(), 1e-9);
        Assert.Equal(1, specs[2].GetProperty("mean_recall").GetDouble(), 1e-5);
        var text = CliRunner.Run("sparsity", "--model", CliRunner.DemoModel, "--text-file", Text, "--attention", "chunks:16,2");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Matches(@"chunks:16,2 .* \d+\.\d\d×", text.Stdout);
    }

    [Fact]
    public void StreamingScoresOneCurvePerSinkCountAndDrawsThem()
    {
        string png = Path.Combine(Path.GetTempPath(), "hw-streaming-" + Guid.NewGuid().ToString("N") + ".png");
        try
        {
            var s = Json(CliRunner.Run("streaming", "--model", CliRunner.DemoModel, "--window", "30", "--length", "300", "--bucket", "100",
                "--png", png, "--json"));
            Assert.Equal(300, s.GetProperty("tokens").GetInt32());
            var curves = s.GetProperty("curves").EnumerateArray().ToArray();
            Assert.Equal([4, 0], curves.Select(c => c.GetProperty("sinks").GetInt32()));
            Assert.All(curves, c => Assert.Equal(3, c.GetProperty("perplexity").GetArrayLength()));
            Assert.True(new FileInfo(png).Length > 0);
        }
        finally
        {
            File.Delete(png);
        }
    }

    [Theory]
    [InlineData("eval", "window:0,sinks:4", "window W must be at least 1")]
    [InlineData("eval", "topk-blocks:0,4", "block size B must be at least 1")]
    [InlineData("eval", "topk-blocks:16,0", "blocks kept K must be at least 1")]
    [InlineData("eval", "blocks:16", "unknown kind 'blocks'")]
    [InlineData("generate", "window:200,sinks:4", "longer than the model's context of 128")]
    [InlineData("sparsity", "chunks:8", "expected chunks:B,K")]
    public void BadSpecsAreOneLineAndExit2(string command, string spec, string expected)
    {
        string[] input = command == "generate" ? ["--prompt", "The"] : ["--text-file", Text];
        var r = CliRunner.Run([command, "--model", CliRunner.DemoModel, .. input, "--attention", spec]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
