using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Tests.Models.Interventions;

/// <summary>Recipes baked into weights: the model built from the baked weights runs as the intervened model does, and the
/// kinds that act on a run's activations are refused naming the item.</summary>
public class RecipeExportTests
{
    private static readonly int[] Ids = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6, 14, 27];

    private static Recipe R(string items) => Recipe.Parse($$"""{"name": "test", "interventions": [{{items}}]}""", "test.json");

    // scale and ablate zero on different heads, edits on a scaled head (OV through W_O too) and on another layer (QK)
    private const string Bakeable = """
        {"kind": "scale", "heads": ["1.1", "0.2"], "factor": 1.75},
        {"kind": "ablate", "heads": ["0.3"], "method": "zero"},
        {"kind": "edit_ov", "head": "1.1", "remove": [0], "scale": {"2": 0.5}},
        {"kind": "edit_qk", "head": "0.1", "remove": [1]},
        {"kind": "scale", "heads": ["1.1"], "factor": -0.5}
        """;

    private static void BakedEqualsIntervened(TransformerModel model, Recipe recipe, int[] ids)
    {
        using var applied = RecipeApplication.Apply(recipe, model);
        var expected = applied.Forward(ModelInput.Single(ids));
        using var baked = TransformerModel.Create(RecipeExport.Bake(recipe, model));
        var actual = baked.Forward(ModelInput.Single(ids));
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        }
        Assert.True(max <= 1e-5f, $"max |Δ| = {max} > 1e-5");
        // the recipe does change the model: the comparison is not between two plain runs
        var plain = model.Forward(ModelInput.Single(ids));
        Assert.Contains(plain.Zip(actual), p => Math.Abs(p.First - p.Second) > 1e-3f);
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    public void BakedWeightsGiveTheIntervenedLogits(string name)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));
        BakedEqualsIntervened(m.Model, R(Bakeable), Ids);
    }

    [Fact]
    public void BakedWeightsGiveTheIntervenedLogitsOnStories260K()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var recipe = R("""
            {"kind": "scale", "heads": ["2.3", "4.0"], "factor": 2},
            {"kind": "ablate", "heads": ["1.5", "3.7"], "method": "zero"},
            {"kind": "edit_ov", "head": "2.3", "remove": [0, 1]},
            {"kind": "edit_qk", "head": "4.6", "scale": {"0": 0.25}}
            """);
        int[] ids = [1, 403, 407, 261, 378, 304, 280, 431, 282, 270, 263, 289];
        BakedEqualsIntervened(m.Model, recipe, ids);

        // written as a Hugging Face checkpoint (interleaved RoPE rewritten as rotate-half) and loaded back: the same logits up to
        // float rounding (the rotate-half kernel sums in another order; ~1e-5 on logits of magnitude ~5)
        string dir2 = Path.Combine(Path.GetTempPath(), $"headwise-export-{Guid.NewGuid():N}");
        try
        {
            RecipeExport.Bake(recipe, m.Model).SaveHf(dir2);
            using var exported = ModelLoader.Load(dir2);
            using var applied = RecipeApplication.Apply(recipe, m.Model);
            var expected = applied.Forward(ModelInput.Single(ids));
            var actual = exported.Model.Forward(ModelInput.Single(ids));
            Assert.Equal(expected.Length, actual.Length);
            Assert.All(expected.Zip(actual), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-4f, $"{p.First} vs {p.Second}"));
        }
        finally
        {
            Directory.Delete(dir2, recursive: true);
        }
    }

    [Fact]
    public void BakingLeavesTheModelsWeightsAlone()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        var before = m.Model.Forward(ModelInput.Single(Ids));
        _ = RecipeExport.Bake(R(Bakeable), m.Model);
        Assert.Equal(before, m.Model.Forward(ModelInput.Single(Ids)));
    }

    [Theory]
    [InlineData("""{"kind": "ablate", "heads": ["0.1"], "method": "mean"}""", "interventions[1] (ablate): method mean")]
    [InlineData("""{"kind": "soften", "heads": ["0.1"], "strength": 0.5}""", "interventions[1] (soften): changes the attention pattern")]
    [InlineData("""{"kind": "redistribute_sink", "heads": ["1.0"], "fraction": 0.5, "sinks": [0]}""", "interventions[1] (redistribute_sink): changes the attention pattern")]
    [InlineData("""{"kind": "inject", "heads": ["1.0"], "component": "v", "source": {"tokens": [1, 2, 3]}}""", "interventions[1] (inject): takes the head's activations from a run on another input")]
    public void ActivationKindsAreRefusedNamingTheItem(string item, string expected)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        var e = Assert.Throws<InvalidInputException>(() => RecipeExport.Bake(R("""{"kind": "scale", "heads": ["0.0"], "factor": 2}, """ + item), m.Model));
        Assert.Contains("test.json: " + expected, e.Message);
        Assert.Contains("no weight of a Hugging Face checkpoint can express; run it with --intervene instead", e.Message);
    }

    [Fact]
    public void AHeadTheModelLacksIsRefused()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var e = Assert.Throws<InvalidInputException>(() => RecipeExport.Bake(R("""{"kind": "scale", "heads": ["5.0"], "factor": 2}"""), m.Model));
        Assert.Contains("interventions[0] (scale): heads 5.0 does not exist", e.Message);
    }
}
