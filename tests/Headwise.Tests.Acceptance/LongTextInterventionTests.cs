using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>ablate, importance and search on a text longer than the model's context slide a window as eval does, so their
/// losses are exactly eval's and eval --intervene's on the same text.</summary>
public sealed class LongTextInterventionTests : IDisposable
{
    // 201 tokens with the demo model's tokenizer: longer than its 128-token context
    private static string Story => Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "story.txt");
    private readonly string _recipe = Path.Combine(Path.GetTempPath(), $"headwise-long-{Guid.NewGuid():N}.json");

    public void Dispose() => File.Delete(_recipe);

    private static double MeanNll(params string[] args)
    {
        var r = CliRunner.Run(["eval", "--model", CliRunner.DemoModel, "--text-file", Story, .. args, "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.True(doc.RootElement.GetProperty("tokens").GetArrayLength() > 128, "the text must be longer than the context");
        return doc.RootElement.GetProperty("mean_nll").GetDouble();
    }

    [Fact]
    public void AblateAndImportanceOnALongTextAreEvalsSlidingWindowLoss()
    {
        File.WriteAllText(_recipe, """{"name": "zero 1.0 and 2.3", "interventions": [{"kind": "ablate", "heads": ["1.0", "2.3"], "method": "zero"}]}""");
        double plain = MeanNll(), ablatedByEval = MeanNll("--intervene", _recipe);

        var r = CliRunner.Run("ablate", "--model", CliRunner.DemoModel, "--heads", "1.0,2.3", "--method", "zero", "--text-file", Story, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(plain, doc.RootElement.GetProperty("clean").GetDouble(), 1e-5);
        Assert.Equal(ablatedByEval, doc.RootElement.GetProperty("ablated").GetDouble(), 1e-5);
        Assert.Contains("windows of 128", doc.RootElement.GetProperty("target").GetString());

        File.WriteAllText(_recipe, """{"name": "zero 3.1", "interventions": [{"kind": "ablate", "heads": ["3.1"], "method": "zero"}]}""");
        double oneHead = MeanNll("--intervene", _recipe) - plain;
        var imp = CliRunner.Run("importance", "--model", CliRunner.DemoModel, "--method", "zero", "--text-file", Story, "--json");
        Assert.True(imp.ExitCode == 0, imp.Stderr);
        using var impDoc = JsonDocument.Parse(imp.Stdout);
        double scanned = impDoc.RootElement.GetProperty("values")[3][1].GetDouble();
        Assert.Equal(oneHead, scanned, 1e-5);
        Assert.NotEqual(0, scanned);
    }
}
