using System.Text.Json;
using Headwise.Reports;

namespace Headwise.Tests.Acceptance.Report;

/// <summary><c>headwise report</c> end to end: the JSON summary, the page and PNGs on disk, bad arguments.</summary>
public sealed class ReportCliTests
{
    [Fact]
    public void ReportWritesThePageAndPngsAndPrintsThePath()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hw-report-cli-" + Guid.NewGuid().ToString("N"));
        try
        {
            string html = Path.Combine(dir, "r.html"), pngDir = Path.Combine(dir, "png");
            var r = CliRunner.Run("report", "--model", CliRunner.Golden("gpt2_tied"), "--out", html, "--png-dir", pngDir, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            var root = doc.RootElement;
            Assert.Equal(Path.GetFullPath(html), root.GetProperty("path").GetString());
            Assert.Equal(2, root.GetProperty("layers").GetInt32());
            Assert.Equal(4, root.GetProperty("heads").GetInt32());
            string[] names = ["previous-token", "induction", "duplicate-token", "sink", "entropy", "attention distance",
                "importance", "induction patching", "context-sensitivity", "OV copying", "effective rank", "row kurtosis"];
            Assert.Equal(names, root.GetProperty("scores").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(["r.html"], Directory.GetFiles(dir).Select(Path.GetFileName)); // no temporary file left behind

            // one figure per score grid (cells of 4 heads × 24 px wide, 2 layers × 24 px high, plus title, ticks, names and
            // colour bar: HeatmapFigureTests checks the cells pixel for pixel) and per top head
            Assert.NotNull(FigureFont.Typeface); // .ci/run's Chromium packages bring fonts-dejavu-core: the labels are drawn
            foreach (var name in names)
            {
                using var png = SkiaSharp.SKBitmap.Decode(Path.Combine(pngDir, $"scores-{name.Replace(' ', '-').ToLowerInvariant()}.png"));
                Assert.True(png.Width > 96 + 40 && png.Height > 48 + 40, $"{name}: {png.Width} × {png.Height}");
            }
            var pngs = root.GetProperty("pngs").EnumerateArray().Select(e => e.GetString()!).ToList();
            Assert.Contains(pngs, p => Path.GetFileName(p).StartsWith("pattern-", StringComparison.Ordinal));
            Assert.All(pngs, p => Assert.True(File.Exists(p), p));

            using var data = JsonDocument.Parse(HtmlReport.ExtractDataJson(File.ReadAllText(html)));
            Assert.Equal(2 * 4, data.RootElement.GetProperty("patterns").GetProperty("heads").GetArrayLength());

            // --heads picks the pattern PNGs: T × T cells of 12 px
            int T = data.RootElement.GetProperty("patterns").GetProperty("tokens").GetArrayLength();
            var chosen = CliRunner.Run("report", "--model", CliRunner.Golden("gpt2_tied"), "--out", html, "--png-dir", Path.Combine(dir, "chosen"), "--heads", "1.3,0.2", "--json");
            Assert.True(chosen.ExitCode == 0, chosen.Stderr);
            var patternPngs = Directory.GetFiles(Path.Combine(dir, "chosen"), "pattern-*.png").Select(f => Path.GetFileName(f)).Order().ToList();
            Assert.Equal(new List<string> { "pattern-0.2.png", "pattern-1.3.png" }, patternPngs);
            using var p13 = SkiaSharp.SKBitmap.Decode(Path.Combine(dir, "chosen", "pattern-1.3.png"));
            Assert.True(p13.Width > 12 * T && p13.Height > 12 * T, $"{p13.Width} × {p13.Height} for {T} tokens");
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>A ViT report's --png-dir: the score-grid figures, bidirectional pattern figures (no cell greyed: every patch
    /// sees every other) and the page's own pictures, byte for byte.</summary>
    [Fact]
    public void AVisionReportWritesItsFiguresAndPictures()
    {
        string dir = Directory.CreateTempSubdirectory("hw-report-vit-").FullName;
        try
        {
            string vit = CliRunner.Golden("vit_cls"), html = Path.Combine(dir, "r.html"), pngDir = Path.Combine(dir, "png");
            var r = CliRunner.Run("report", "--model", vit, "--image", Path.Combine(vit, "image.png"), "--clusters", "3", "--out", html,
                "--png-dir", pngDir, "--heads", "1.2", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            var pngs = doc.RootElement.GetProperty("pngs").EnumerateArray().Select(e => Path.GetFileName(e.GetString()!)).ToHashSet();
            Assert.Contains("scores-attention-distance.png", pngs);
            Assert.Contains("pattern-1.2.png", pngs);
            Assert.Contains("cls-overlay-0.0.png", pngs);
            Assert.Contains("rollout.png", pngs);
            Assert.Contains("cluster-2.png", pngs);
            Assert.Equal(pngs.Order(), Directory.GetFiles(pngDir).Select(Path.GetFileName).Order()); // and no temporary file

            // the pictures are the page's own (its data blob carries them as base64)
            using var data = JsonDocument.Parse(HtmlReport.ExtractDataJson(File.ReadAllText(html)));
            var sources = data.RootElement.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("src").GetString()).ToList();
            Assert.Contains("data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes(Path.Combine(pngDir, "rollout.png"))), sources);

            // the pattern figure is bidirectional: no cell in the causal grey (a causal 17 × 17 figure of 12 px cells would have
            // 136 grey cells, about 19,600 pixels; anti-aliased text may hit that grey in a few)
            using var pattern = SkiaSharp.SKBitmap.Decode(Path.Combine(pngDir, "pattern-1.2.png"));
            int grey = 0;
            for (int y = 0; y < pattern.Height; y++)
            {
                for (int x = 0; x < pattern.Width; x++)
                {
                    var c = pattern.GetPixel(x, y);
                    grey += (c.Red, c.Green, c.Blue) == Heatmap.Masked ? 1 : 0;
                }
            }
            Assert.True(grey < 200, $"{grey} pixels in the causal grey");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TextPrintsOnlyThePath()
    {
        string html = Path.Combine(Path.GetTempPath(), "hw-report-" + Guid.NewGuid().ToString("N") + ".html");
        try
        {
            var r = CliRunner.Run("report", "--model", CliRunner.Golden("neox_parallel"), "--out", html);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(Path.GetFullPath(html), r.Stdout.Trim());
        }
        finally
        {
            File.Delete(html);
        }
    }

    [Fact]
    public void BadArgumentsAreOneLineWithExitCode2()
    {
        var noTokenizer = CliRunner.Run("report", "--model", CliRunner.Golden("gpt2_tied"), "--text", "hello", "--out", Path.Combine(Path.GetTempPath(), "never.html"));
        Assert.Equal(2, noTokenizer.ExitCode);
        Assert.Contains("--text needs a tokenizer", noTokenizer.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(Path.GetTempPath(), "never.html")));

        var dirOut = CliRunner.Run("report", "--model", CliRunner.Golden("gpt2_tied"), "--out", Path.GetTempPath());
        Assert.Equal(2, dirOut.ExitCode);
        Assert.Contains("is a directory", dirOut.Stderr, StringComparison.Ordinal);

        var badHead = CliRunner.Run("report", "--model", CliRunner.Golden("gpt2_tied"), "--png-dir", Path.GetTempPath(), "--heads", "2.0");
        Assert.Equal(2, badHead.ExitCode);
        Assert.Contains("head 2.0 does not exist", badHead.Stderr, StringComparison.Ordinal);

        var typo = CliRunner.Run("report", "--model", CliRunner.Golden("gpt2_tied"), "--png", "x");
        Assert.Equal(2, typo.ExitCode);
        Assert.Contains("unknown option --png", typo.Stderr, StringComparison.Ordinal);
    }
}
