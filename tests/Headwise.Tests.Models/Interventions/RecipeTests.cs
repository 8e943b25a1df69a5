using Headwise.Interventions;

namespace Headwise.Tests.Models.Interventions;

/// <summary>Recipes on their own: the schema parses, saves canonically (load → save → load → save is the same file), and every
/// malformed item is refused with one message naming the item, its kind and the field.</summary>
public class RecipeTests
{
    private static string ExamplesDir => Path.Combine(TestPaths.RepoRoot, "docs", "examples", "recipes");

    [Fact]
    public void EveryExampleRecipeRoundTripsToAnIdenticalFile()
    {
        var files = Directory.GetFiles(ExamplesDir, "*.json");
        Assert.True(files.Length >= 8, $"{files.Length} example recipes");
        foreach (var file in files)
        {
            var recipe = Recipe.Load(file);
            string saved = recipe.ToJson();
            Assert.Equal(File.ReadAllText(file), saved); // the examples are kept in canonical form
            var again = Recipe.Parse(saved, file);
            Assert.Equal(saved, again.ToJson());
            Assert.Equal(recipe.Interventions.Select(i => i.Kind), again.Interventions.Select(i => i.Kind));
        }
    }

    [Fact]
    public void SaveWritesTheFileLoadReads()
    {
        var recipe = Recipe.Parse("""
            {"name": "all kinds", "interventions": [
              {"kind": "scale", "heads": ["3.6", "0.1"], "factor": -0.25},
              {"kind": "ablate", "heads": ["1.0"], "method": "zero"},
              {"kind": "soften", "heads": ["2.2"], "strength": 0.125},
              {"kind": "redistribute_sink", "heads": ["1.1"], "fraction": 1, "sinks": [0, 1]},
              {"kind": "inject", "heads": ["0.3"], "component": "k", "source": {"tokens": [1, 2, 3]}},
              {"kind": "inject", "heads": ["0.3"], "component": "q", "source": {"text": "Once \"upon\" a time"}},
              {"kind": "edit_qk", "head": "1.2", "remove": [3], "scale": {"10": 2.5, "0": 0}},
              {"kind": "edit_ov", "head": "1.2", "remove": []}
            ]}
            """);
        string path = Path.Combine(Path.GetTempPath(), $"headwise-recipe-{Guid.NewGuid():N}.json");
        try
        {
            recipe.Save(path);
            var loaded = Recipe.Load(path);
            Assert.Equal(recipe.ToJson(), File.ReadAllText(path));
            loaded.Save(path);
            Assert.Equal(recipe.ToJson(), File.ReadAllText(path));
            var edit = Assert.IsType<EditWeights>(loaded.Interventions[6]);
            Assert.Equal([0.0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 2.5], Enumerable.Range(0, 11).Select(edit.Gain));
            Assert.Equal("Once \"upon\" a time", Assert.IsType<InjectActivations>(loaded.Interventions[5]).Source.Text);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("""{"name": "r", "interventions": [{"kind": "blur", "heads": ["1.1"]}]}""", "interventions[0]: unknown kind 'blur'")]
    [InlineData("""{"name": "r", "interventions": [{"heads": ["1.1"]}]}""", "interventions[0]: \"kind\" is missing")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "factor": 2}]}""", "interventions[0] (scale): heads is missing")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": [], "factor": 2}]}""", "interventions[0] (scale): heads must be a non-empty list")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": ["1-1"], "factor": 2}]}""", "interventions[0] (scale): heads '1-1' is not a head")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": [3], "factor": 2}]}""", "interventions[0] (scale): heads 3 is not a head")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": ["1.1"], "factor": 1e999}]}""", "interventions[0] (scale): factor 1e999 is not a finite number")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": ["1.1"], "factor": "2"}]}""", "interventions[0] (scale): factor \"2\" is not a finite number")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": ["1.1"], "factor": 2, "layer": 3}]}""", "interventions[0] (scale): unknown field 'layer'")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "ablate", "heads": ["1.1"], "method": "resample"}]}""", "interventions[0] (ablate): method \"resample\" is not one of zero | mean")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "scale", "heads": ["1.1"], "factor": 1}, {"kind": "soften", "heads": ["1.1"], "strength": 1.5}]}""", "interventions[1] (soften): strength 1.5 is outside [0, 1]")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "soften", "heads": ["1.1"], "strength": -0.1}]}""", "interventions[0] (soften): strength -0.1 is outside [0, 1]")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "redistribute_sink", "heads": ["1.1"], "fraction": 2, "sinks": [0]}]}""", "interventions[0] (redistribute_sink): fraction 2 is outside [0, 1]")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "redistribute_sink", "heads": ["1.1"], "fraction": 0.5}]}""", "interventions[0] (redistribute_sink): sinks is missing")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "redistribute_sink", "heads": ["1.1"], "fraction": 0.5, "sinks": [-1]}]}""", "interventions[0] (redistribute_sink): sinks -1 is not a non-negative integer")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "inject", "heads": ["1.1"], "component": "z", "source": {"tokens": [1]}}]}""", "interventions[0] (inject): component \"z\" is not one of q | k | v")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "inject", "heads": ["1.1"], "component": "q", "source": {"tokens": [1], "text": "a"}}]}""", "interventions[0] (inject): source must be")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "inject", "heads": ["1.1"], "component": "q", "source": {"tokens": [1.5]}}]}""", "interventions[0] (inject): source.tokens 1.5 is not a non-negative integer")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "edit_ov", "head": "1.1"}]}""", "interventions[0] (edit_ov): give remove")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "edit_qk", "heads": ["1.1"], "remove": [0]}]}""", "interventions[0] (edit_qk): unknown field 'heads'")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "edit_qk", "head": "1.1", "scale": {"x": 2}}]}""", "interventions[0] (edit_qk): scale component 'x'")]
    [InlineData("""{"name": "r", "interventions": [{"kind": "edit_qk", "head": "1.1", "scale": {"0": 2}, "remove": [0]}]}""", "interventions[0] (edit_qk): component 0 appears twice")]
    [InlineData("""{"interventions": []}""", "\"name\" is missing")]
    [InlineData("""{"name": "r", "interventions": [], "extra": 1}""", "unknown field 'extra'")]
    [InlineData("""{"name": "r", "interventions": [""", "not valid JSON")]
    public void MalformedRecipesAreRefusedNamingItemKindAndField(string json, string expected)
    {
        var e = Assert.Throws<InvalidInputException>(() => Recipe.Parse(json, "recipe.json"));
        Assert.StartsWith("recipe.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AMissingFileIsNamed()
    {
        var e = Assert.Throws<InvalidInputException>(() => Recipe.Load("/nonexistent/recipe.json"));
        Assert.Contains("/nonexistent/recipe.json", e.Message);
    }
}
