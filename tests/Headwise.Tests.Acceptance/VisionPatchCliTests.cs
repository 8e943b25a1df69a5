using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>patterns and report with --query-patch on the tiny ViT golden (4×4 patches): a chosen patch's attention row,
/// its overlay, and the one-line refusal of a patch outside the grid.</summary>
public class VisionPatchCliTests
{
    private static string Vit => CliRunner.Golden("vit_cls");
    private static string Image => Path.Combine(Vit, "image.png");

    [Fact]
    public void AChosenPatchsRowIsPrintedAndDrawn()
    {
        var all = CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--json");
        Assert.True(all.ExitCode == 0, all.Stderr);
        using var full = JsonDocument.Parse(all.Stdout);
        var r = CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "1,2", "--head", "1.3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        // patch (1, 2) of a 4×4 grid is position 1 + 1·4 + 2 = 7: its row of head 1.3's whole pattern
        Assert.Equal(7, doc.RootElement.GetProperty("query").GetInt32());
        var row = doc.RootElement.GetProperty("attention").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var pattern = full.RootElement.GetProperty("patterns")[1][3].EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(pattern[(7 * 17)..(8 * 17)], row);
        // every head's row without --head; centre = (2, 2) = position 11
        using var centre = JsonDocument.Parse(CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "centre", "--json").Stdout);
        Assert.Equal(11, centre.RootElement.GetProperty("query").GetInt32());
        Assert.Equal(4, centre.RootElement.GetProperty("attention")[1].GetArrayLength());
        var text = CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "1,2");
        Assert.Contains("attention of patch 1,2 (position 7)", text.Stdout);

        string dir = Directory.CreateTempSubdirectory("hw-patch-overlay-").FullName;
        try
        {
            string png = Path.Combine(dir, "patch.png");
            var drawn = CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "1,2", "--overlay", png);
            Assert.True(drawn.ExitCode == 0, drawn.Stderr);
            using var bitmap = SkiaSharp.SKBitmap.Decode(png);
            Assert.True(bitmap.Width >= 160);

            var report = CliRunner.Run("report", "--model", Vit, "--image", Image, "--query-patch", "centre", "--clusters", "2",
                "--out", Path.Combine(dir, "r.html"), "--png-dir", Path.Combine(dir, "png"), "--json");
            Assert.True(report.ExitCode == 0, report.Stderr);
            using var rj = JsonDocument.Parse(report.Stdout);
            Assert.Equal(8 + 8 + 1 + 2, rj.RootElement.GetProperty("images").GetInt32()); // CLS and patch overlays, rollout, prototypes
            var pngs = rj.RootElement.GetProperty("pngs").EnumerateArray().Select(e => Path.GetFileName(e.GetString()!)).ToHashSet();
            Assert.Contains("patch-overlay-1.3.png", pngs);
            Assert.Contains("cls-overlay-1.3.png", pngs);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void APatchOutsideTheGridIsRefused()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "4,0"), "--query-patch");
        CliRunner.AssertOneLineError(CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "0,7"), "--query-patch");
        CliRunner.AssertOneLineError(CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "left"), "--query-patch");
        CliRunner.AssertOneLineError(CliRunner.Run("patterns", "--model", Vit, "--image", Image, "--query-patch", "1,1", "--rollout"), "--query-patch");
        CliRunner.AssertOneLineError(CliRunner.Run("report", "--model", Vit, "--image", Image, "--query-patch", "9,9", "--out", Path.Combine(Path.GetTempPath(), "never.html")), "--query-patch");
    }
}
