using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>`headwise experiment talking-heads | factual-recall` end to end, at a few training steps (the findings need the
/// defaults; docs/interventions.md has their numbers): exit codes, the printed table against result.json, and the recipe files
/// that `headwise eval --intervene` runs.</summary>
public sealed class FindingsCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-findings-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TalkingHeadsWritesRecipesThatEvalRuns()
    {
        string outDir = Path.Combine(_dir, "th");
        var r = CliRunner.Run("experiment", "talking-heads", "--out", outDir, "--steps", "30");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "result.json")));
        var edits = doc.RootElement.GetProperty("Edits").EnumerateArray().ToArray();
        Assert.Equal(8, edits.Length);
        string[] lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var e in edits)
        {
            string name = e.GetProperty("Name").GetString()!;
            double accuracy = e.GetProperty("Score").GetProperty("Accuracy").GetDouble();
            Assert.Contains(lines, l => l.StartsWith(name + " ", StringComparison.Ordinal)
                && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] == accuracy.ToString("F3", System.Globalization.CultureInfo.InvariantCulture));
        }
        string recipe = Path.Combine(outDir, edits[0].GetProperty("Recipe").GetString()!);
        var eval = CliRunner.Run("eval", "--model", Path.Combine(outDir, "model"), "--tokens", "16,1,2,3,4,5,17,2,5,1,4,18", "--intervene", recipe);
        Assert.Equal(0, eval.ExitCode);
        Assert.Contains("edit_ov", eval.Stdout);
    }

    [Fact]
    public void FactualRecallPrintsTheSweep()
    {
        string outDir = Path.Combine(_dir, "fr");
        var r = CliRunner.Run("experiment", "factual-recall", "--out", outDir, "--steps", "30", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var sweep = doc.RootElement.GetProperty("Sweep").EnumerateArray().ToArray();
        Assert.Equal([0, 0.25, 0.5, 1, 1.5, 2, 3, 4], sweep.Select(p => p.GetProperty("Factor").GetDouble()));
        Assert.All(sweep, p => Assert.True(File.Exists(Path.Combine(outDir, p.GetProperty("Recipe").GetString()!))));
        Assert.True(File.Exists(Path.Combine(outDir, "scale-sweep.png")));
    }

    [Fact]
    public void TalkingHeadsRefusesTrainingOptionsItDoesNotTake()
    {
        var r = CliRunner.Run("experiment", "talking-heads", "--out", Path.Combine(_dir, "bad"), "--lr", "0.1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("only --steps and --seed", r.Stderr);
    }
}
