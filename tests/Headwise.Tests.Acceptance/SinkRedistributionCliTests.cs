using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>headwise experiment sink-redistribution: fraction 0 is the plain model's loss exactly, and a fraction's row is
/// what eval --intervene reports under the recipe the experiment wrote for it.</summary>
public class SinkRedistributionCliTests
{
    private static string Text => Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "address.txt");

    private static double EvalNll(params string[] extra)
    {
        var r = CliRunner.Run(["eval", "--model", CliRunner.DemoModel, "--text-file", Text, "--json", .. extra]);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty("mean_nll").GetDouble();
    }

    [Fact]
    public void RowsEqualEvalUnderTheirRecipes()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"headwise-sinks-{Guid.NewGuid():N}");
        try
        {
            var r = CliRunner.Run("experiment", "sink-redistribution", "--out", dir, "--model", CliRunner.DemoModel, "--text-file", Text);
            Assert.Equal(0, r.ExitCode);
            Assert.True(File.Exists(Path.Combine(dir, "report.md")));
            Assert.True(File.Exists(Path.Combine(dir, "loss-change.png")));
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "result.json")));
            var model = Assert.Single(doc.RootElement.GetProperty("Models").EnumerateArray());
            var rows = model.GetProperty("Rows").EnumerateArray().ToArray();
            Assert.Equal(11, rows.Length);
            Assert.NotEmpty(model.GetProperty("Targets").EnumerateArray());

            // fraction 0 redistributes nothing: the plain loss, exactly
            Assert.Equal(0.0, rows[0].GetProperty("Fraction").GetDouble());
            Assert.Equal(EvalNll(), rows[0].GetProperty("Loss").GetDouble());
            Assert.Equal(0.0, rows[0].GetProperty("Change").GetDouble());

            // fraction 0.5: eval --intervene with the recipe written for it
            var half = rows[5];
            Assert.Equal(0.5, half.GetProperty("Fraction").GetDouble());
            double expected = EvalNll("--intervene", Path.Combine(dir, "recipes", "demo-f0.5.json"));
            Assert.Equal(expected, half.GetProperty("Loss").GetDouble(), 1e-9);
            Assert.NotEqual(rows[0].GetProperty("Loss").GetDouble(), half.GetProperty("Loss").GetDouble());
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
