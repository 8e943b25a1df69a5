using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>headwise export: the exported checkpoint evaluates as the model under the recipe; activation kinds and an
/// occupied --out exit 2 with one line.</summary>
public class ExportCliTests
{
    private static string TempDir() => Path.Combine(Path.GetTempPath(), $"headwise-export-{Guid.NewGuid():N}");

    [Fact]
    public void ExportedCheckpointEvaluatesAsTheIntervenedModel()
    {
        const string text = "The cat sat on the small boat near the sea and";
        string recipe = Path.Combine(Path.GetTempPath(), $"headwise-recipe-{Guid.NewGuid():N}.json");
        File.WriteAllText(recipe, """
            {"name": "baked", "interventions": [
              {"kind": "scale", "heads": ["1.1"], "factor": 2.5},
              {"kind": "ablate", "heads": ["2.0", "0.3"], "method": "zero"},
              {"kind": "edit_ov", "head": "3.0", "remove": [0]},
              {"kind": "edit_qk", "head": "2.1", "scale": {"0": 0.5}}
            ]}
            """);
        string dir = TempDir();
        try
        {
            var r = CliRunner.Run("export", "--model", CliRunner.DemoModel, "--intervene", recipe, "--out", dir, "--json");
            Assert.Equal(0, r.ExitCode);
            using var doc = JsonDocument.Parse(r.Stdout);
            Assert.Equal(dir, doc.RootElement.GetProperty("out").GetString());
            Assert.Equal("baked", doc.RootElement.GetProperty("recipe").GetString());
            Assert.Equal(4, doc.RootElement.GetProperty("baked").GetInt32());
            Assert.True(File.Exists(Path.Combine(dir, "tokenizer.json")));

            var exported = CliRunner.Run("eval", "--model", dir, "--text", text, "--json");
            var intervened = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", text, "--intervene", recipe, "--json");
            var plain = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", text, "--json");
            Assert.Equal(0, exported.ExitCode);
            using var e = JsonDocument.Parse(exported.Stdout);
            using var i = JsonDocument.Parse(intervened.Stdout);
            using var p = JsonDocument.Parse(plain.Stdout);
            double nll = e.RootElement.GetProperty("mean_nll").GetDouble();
            Assert.Equal(i.RootElement.GetProperty("mean_nll").GetDouble(), nll, 1e-5);
            Assert.NotEqual(p.RootElement.GetProperty("mean_nll").GetDouble(), nll, 1e-3);
            // the text output prints the same 4 decimals
            Assert.Contains(CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", text, "--intervene", recipe).Stdout.Split('\n').Single(l => l.StartsWith("mean nll", StringComparison.Ordinal)),
                CliRunner.Run("eval", "--model", dir, "--text", text).Stdout);
        }
        finally
        {
            File.Delete(recipe);
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void ActivationKindsAndAnOccupiedOutExit2()
    {
        string dir = TempDir();
        var soften = CliRunner.Run("export", "--model", CliRunner.DemoModel, "--intervene", CliRunner.ExampleRecipe("soften"), "--out", dir);
        Assert.Equal(2, soften.ExitCode);
        Assert.Contains("interventions[0] (soften): changes the attention pattern", soften.Stderr);
        Assert.Contains("run it with --intervene instead", soften.Stderr);
        Assert.False(Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any());

        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "mine");
        try
        {
            var occupied = CliRunner.Run("export", "--model", CliRunner.DemoModel, "--intervene", CliRunner.ExampleRecipe("edit_ov"), "--out", dir);
            Assert.Equal(2, occupied.ExitCode);
            Assert.Contains($"--out {dir} already exists and is not an empty directory", occupied.Stderr);
            Assert.Equal(["notes.txt"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
