using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>headwise search: the recipe it writes reproduces, under eval --intervene, the objective it printed; bad input
/// exits 2 naming the option.</summary>
public class SearchCliTests
{
    private const string Text = "The cat sat on the mat. The dog sat on the log. The cat sat on the mat.";

    [Fact]
    public void TheWrittenRecipeReproducesTheFinalLossUnderEval()
    {
        string output = Path.Combine(Path.GetTempPath(), $"headwise-search-{Guid.NewGuid():N}.json");
        try
        {
            var r = CliRunner.Run("search", "--model", CliRunner.DemoModel, "--text", Text, "--intervention", "soften", "--strength", "0.8",
                "--objective", "loss", "--direction", "up", "--budget", "2", "--out", output, "--json");
            Assert.Equal(0, r.ExitCode);
            using var doc = JsonDocument.Parse(r.Stdout);
            var root = doc.RootElement;
            var steps = root.GetProperty("steps").EnumerateArray().ToArray();
            Assert.Equal(2, steps.Length);
            double final = root.GetProperty("final").GetDouble();
            Assert.Equal(steps[1].GetProperty("objective").GetDouble(), final);
            Assert.True(final > root.GetProperty("baseline").GetDouble());
            Assert.False(File.Exists(output + ".partial"));

            var eval = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", Text, "--intervene", output, "--json");
            Assert.Equal(0, eval.ExitCode);
            using var evalDoc = JsonDocument.Parse(eval.Stdout);
            Assert.Equal(final, evalDoc.RootElement.GetProperty("mean_nll").GetDouble(), 1e-5);

            // the text output names each added head (L.H) with the objective after it
            var text = CliRunner.Run("search", "--model", CliRunner.DemoModel, "--text", Text, "--intervention", "soften", "--strength", "0.8",
                "--budget", "2", "--out", output);
            Assert.Equal(0, text.ExitCode);
            foreach (var s in steps)
            {
                Assert.Contains($"+ {s.GetProperty("head").GetString(),-6} loss {s.GetProperty("objective").GetDouble():F4}", text.Stdout);
            }
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Theory]
    [InlineData("--strength", "--intervention", "soften", "--strength", "1.5")]
    [InlineData("--factor", "--intervention", "scale")]
    [InlineData("--task", "--intervention", "ablate", "--objective", "task")]
    [InlineData("--budget", "--intervention", "ablate", "--budget", "0")]
    [InlineData("--intervention", "--intervention", "inject")]
    [InlineData("--method", "--intervention", "ablate", "--method", "resample")]
    public void BadInputExitsTwoNamingTheOption(string option, params string[] extra)
    {
        var r = CliRunner.Run(["search", "--model", CliRunner.DemoModel, "--text", Text, .. extra]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(option, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
