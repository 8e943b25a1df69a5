using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>tasks, ablate, importance and patch, each run once on the real model stories260K.</summary>
public class InterventionCliTests
{
    private static string[] Model(string dir) => ["--model", Path.Combine(dir, "stories260K.bin"), "--tokenizer", Path.Combine(dir, "tok512.bin")];

    [Fact]
    public void TasksListsAndPrintsPrompts()
    {
        var r = CliRunner.Run("tasks");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("greater-than", r.Stdout);
        var j = CliRunner.Run("tasks", "ioi", "--count", "3", "--json");
        Assert.Equal(0, j.ExitCode);
        using var doc = JsonDocument.Parse(j.Stdout);
        Assert.Equal(3, doc.RootElement.GetProperty("prompts").GetArrayLength());
        Assert.Equal(2, CliRunner.Run("tasks", "nope").ExitCode);
    }

    [Fact]
    public void AblateImportanceAndPatchRunOnStories260K()
    {
        string dir = CliRunner.RequireStories260K();
        var a = CliRunner.Run(["ablate", .. Model(dir), "--heads", "1.2,3.0", "--text", "Once upon a time there was a little girl", "--json"]);
        Assert.Equal(0, a.ExitCode);
        using (var doc = JsonDocument.Parse(a.Stdout))
        {
            var root = doc.RootElement;
            Assert.Equal(root.GetProperty("ablated").GetDouble() - root.GetProperty("clean").GetDouble(), root.GetProperty("change").GetDouble(), 1e-9);
        }

        string outFile = Path.Combine(Path.GetTempPath(), $"headwise-importance-{Guid.NewGuid():N}.json");
        var i = CliRunner.Run(["importance", .. Model(dir), "--task", "induction", "--count", "2", "--metric", "logit-diff", "--out", outFile, "--json"]);
        Assert.Equal(0, i.ExitCode);
        using (var doc = JsonDocument.Parse(File.ReadAllText(outFile)))
        {
            Assert.Equal(5, doc.RootElement.GetProperty("values").GetArrayLength());
        }
        File.Delete(outFile);

        var p = CliRunner.Run(["patch", .. Model(dir), "--clean", "Tom gave the ball to Sue. Sue gave the ball to", "--corrupted", "Tom gave the ball to Amy. Sue gave the ball to",
            "--answer", " Tom", "--wrong", " Sue", "--json"]);
        Assert.Equal(0, p.ExitCode);
        using (var doc = JsonDocument.Parse(p.Stdout))
        {
            Assert.Equal("z", doc.RootElement.GetProperty("site").GetString());
            Assert.Equal(5, doc.RootElement.GetProperty("values").GetArrayLength());
        }
        var bad = CliRunner.Run(["patch", .. Model(dir), "--clean", "a b", "--corrupted", "a b c", "--answer", "x", "--wrong", "y"]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("equal length", bad.Stderr);
    }
}
