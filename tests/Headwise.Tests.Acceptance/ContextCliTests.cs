using System.Text.Json;
using Headwise.Analysis.Interventions;
using Headwise.Loading;

namespace Headwise.Tests.Acceptance;

/// <summary>`headwise context`: scores equal the library's, and replacing the context by itself changes nothing (score 0).</summary>
public class ContextCliTests
{
    private static readonly int[] Prompt = [5, 9, 13, 2, 7, 30, 44, 1, 17, 23];

    [Fact]
    public void JsonEqualsTheLibraryAndHasOneScorePerHead()
    {
        string model = CliRunner.Golden("llama_gqa");
        var r = CliRunner.Run("context", "--model", model, "--tokens", string.Join(",", Prompt), "--final", "2", "--keep-prefix", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var scores = doc.RootElement.GetProperty("scores").Deserialize<float[][]>()!;
        using var loaded = ModelLoader.Load(model);
        var expected = ContextSensitivity.Compute(loaded.Model, Prompt, 2, keepPrefix: 1);
        Assert.Equal(loaded.Config.NLayers, scores.Length);
        for (int l = 0; l < scores.Length; l++)
        {
            Assert.Equal(expected.Values[l], scores[l]);
        }
        // removing seven context tokens changes attention heads' outputs on the last tokens
        Assert.Contains(scores.SelectMany(x => x), s => s > 0.01f);
    }

    [Fact]
    public void ReplacingTheContextByItselfScoresZero()
    {
        using var loaded = ModelLoader.Load(CliRunner.Golden("gpt2_tied"));
        var same = ContextSensitivity.Compute(loaded.Model, Prompt, 3, replacementContext: Prompt[1..^3], keepPrefix: 1);
        Assert.All(same.Values.SelectMany(x => x), s => Assert.Equal(0f, s));
    }

    [Fact]
    public void ImpossibleSplitIsExit2()
    {
        var r = CliRunner.Run("context", "--model", CliRunner.Golden("gpt2_tied"), "--tokens", "1,2,3", "--final", "3");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("context", r.Stderr);
    }
}
