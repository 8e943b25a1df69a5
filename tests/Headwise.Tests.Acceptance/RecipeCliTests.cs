using System.Text.Json;
using Headwise.Evaluation;
using Headwise.Generation;
using Headwise.Interventions;

namespace Headwise.Tests.Acceptance;

/// <summary>--intervene FILE on eval and generate: the numbers are the library's under the recipe; bad recipes exit 2 with one line.</summary>
public class RecipeCliTests
{
    [Fact]
    public void EvalUnderARecipeReportsTheIntervenedModelsNll()
    {
        const string text = "The cat sat on the small boat near the sea and";
        var plain = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", text, "--json");
        var r = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", text, "--intervene", CliRunner.ExampleRecipe("soften"), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        using var plainDoc = JsonDocument.Parse(plain.Stdout);
        Assert.Equal("soften 3.2", doc.RootElement.GetProperty("recipe").GetString());

        using var m = ModelLoader.Load(CliRunner.DemoModel);
        var ids = m.RequireTokenizer().Encode(text);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("soften")), m.Model);
        var expected = Perplexity.Evaluate(applied.Model, ids, m.Config.MaxPositions, m.Config.MaxPositions / 2, hooks: applied.CreateHooks());
        double nll = doc.RootElement.GetProperty("mean_nll").GetDouble();
        Assert.Equal(expected.MeanNll, nll, 1e-9);
        Assert.NotEqual(plainDoc.RootElement.GetProperty("mean_nll").GetDouble(), nll, 1e-4);

        var textOut = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", text, "--intervene", CliRunner.ExampleRecipe("edit_ov"));
        Assert.Equal(0, textOut.ExitCode);
        Assert.Contains("recipe       drop the top OV direction of 3.0", textOut.Stdout);
    }

    [Fact]
    public void GenerateUnderARecipeUsesTheKvCacheWithTheRecipesHooks()
    {
        var r = CliRunner.Run("generate", "--model", CliRunner.DemoModel, "--prompt", "The dog", "--max-tokens", "10", "--intervene", CliRunner.ExampleRecipe("redistribute_sink"), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

        using var m = ModelLoader.Load(CliRunner.DemoModel);
        var prompt = doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("redistribute_sink")), m.Model);
        var expected = Generator.Generate(applied.Model, prompt, new GenerationOptions
        {
            MaxNewTokens = 10,
            EosId = m.Tokenizer?.EosId ?? m.Config.EosTokenId,
            Hooks = applied.CreateHooks(generation: true),
        }).ToArray();
        Assert.Equal(expected, ids);
        Assert.Equal("half the sink of layer 2", doc.RootElement.GetProperty("recipe").GetString());
    }

    [Fact]
    public void BadRecipesExit2WithOneLineNamingItemAndField()
    {
        string bad = CliRunner.TempRecipe("""{"name": "bad", "interventions": [{"kind": "scale", "heads": ["1.1"], "factor": 2}, {"kind": "soften", "heads": ["1.1"], "strength": 1.5}]}""");
        string missing = CliRunner.TempRecipe("""{"name": "bad", "interventions": [{"kind": "scale", "heads": ["7.0"], "factor": 2}]}""");
        string inject = CliRunner.TempRecipe("""{"name": "short", "interventions": [{"kind": "inject", "heads": ["1.1"], "component": "k", "source": {"tokens": [10, 20, 30, 40, 50, 60]}}]}""");
        try
        {
            foreach (var (args, expected) in new (string[], string)[]
            {
                (["eval", "--model", CliRunner.DemoModel, "--text", "hello there", "--intervene", bad], "interventions[1] (soften): strength 1.5 is outside [0, 1]"),
                (["generate", "--model", CliRunner.DemoModel, "--intervene", missing], "interventions[0] (scale): heads 7.0 does not exist"),
                (["eval", "--model", CliRunner.DemoModel, "--tokens", "1,2,3", "--intervene", inject], "interventions[0] (inject): source has 6 tokens, the input 3"),
                (["generate", "--model", CliRunner.DemoModel, "--tokens", "1,2,3", "--max-tokens", "10", "--intervene", inject], "inject beyond the source's length is refused"),
                (["eval", "--model", CliRunner.DemoModel, "--tokens", "1,2,3", "--intervene", "/nonexistent/r.json"], "/nonexistent/r.json"),
            })
            {
                var r = CliRunner.Run(args);
                Assert.Equal(2, r.ExitCode);
                Assert.Contains(expected, r.Stderr);
                Assert.Single(r.Stderr.Trim().Split('\n'));
            }
            // the source covers a short generation: prompt 3 + 4 new tokens reach position 5
            Assert.Equal(0, CliRunner.Run("generate", "--model", CliRunner.DemoModel, "--tokens", "1,2,3", "--max-tokens", "4", "--intervene", inject, "--json").ExitCode);
        }
        finally
        {
            File.Delete(bad);
            File.Delete(missing);
            File.Delete(inject);
        }
    }
}
