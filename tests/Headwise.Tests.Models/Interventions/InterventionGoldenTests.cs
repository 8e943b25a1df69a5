using System.Text.Json;
using Headwise.Evaluation;
using Headwise.Interventions;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Models.Interventions;

/// <summary>
/// Recipes against an independent implementation: dev/reference/make_intervention_goldens.py applies every kind by hand
/// from its definition (issue 11) in its own float64 PyTorch forward and writes, per model, the recipes and the per-token
/// NLL with none and with each (tests/goldens/interventions/&lt;model&gt;/). The engine must agree within 1e-4 per token.
/// </summary>
public class InterventionGoldenTests(ITestOutputHelper output)
{
    private static string Root => Path.Combine(TestPaths.Goldens, "interventions");

    /// <summary>One model's expected.json: the input, the inject source and the reference NLL per recipe name.</summary>
    private sealed record Expected(string ModelPath, int[] Tokens, int[] SourceTokens, double Tolerance, Dictionary<string, double[]> Nll)
    {
        public static Expected Read(string model)
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, model, "expected.json")));
            var r = doc.RootElement;
            var nll = r.GetProperty("nll").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Deserialize<double[]>()!, StringComparer.Ordinal);
            return new Expected(Path.GetFullPath(Path.Combine(TestPaths.RepoRoot, r.GetProperty("model").GetString()!)),
                r.GetProperty("tokens").Deserialize<int[]>()!, r.GetProperty("source_tokens").Deserialize<int[]>()!,
                r.GetProperty("tolerance").GetDouble(), nll);
        }

        /// <summary>Models from ../shared are absent when the project is cloned alone.</summary>
        public bool ModelPresent => File.Exists(ModelPath) || File.Exists(Path.Combine(ModelPath, "config.json"));
    }

    private static string[] ModelNames() =>
        Directory.GetDirectories(Root).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal).ToArray();

    public static TheoryData<string> Models()
    {
        var data = new TheoryData<string>();
        foreach (var model in ModelNames())
        {
            data.Add(model);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void PlainNllMatchesReference(string model)
    {
        var expected = Expected.Read(model);
        Assert.SkipUnless(expected.ModelPresent, $"{expected.ModelPath} is absent (../shared is not beside the project)");
        using var loaded = ModelLoader.Load(expected.ModelPath);
        int T = expected.Tokens.Length;
        var nll = Perplexity.Evaluate(loaded.Model, expected.Tokens, window: T, stride: T).Nll.Select(x => (double)x).ToArray();
        AssertClose(expected.Nll["none"], nll, expected.Tolerance, $"{model}/none");
    }

    /// <summary>Every recipe file has an NLL line in expected.json and vice versa, and is named after its file.</summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void EveryRecipeHasReferenceNll(string model)
    {
        var expected = Expected.Read(model);
        var files = Directory.GetFiles(Path.Combine(Root, model), "*.json").Select(f => Path.GetFileNameWithoutExtension(f))
            .Where(n => n != "expected").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected.Nll.Keys.Where(k => k != "none").Order(StringComparer.Ordinal), files);
        foreach (var name in files)
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, model, name + ".json")));
            Assert.Equal(name, doc.RootElement.GetProperty("name").GetString());
            Assert.Equal(expected.Tokens.Length - 1, expected.Nll[name].Length);
        }
    }

    private void AssertClose(double[] want, double[] got, double tolerance, string what)
    {
        Assert.Equal(want.Length, got.Length);
        double worst = want.Zip(got, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{what}: max |Δnll| = {worst:E2} (tolerance {tolerance:E0}) {(worst <= tolerance ? "OK" : "NOT OK")}");
        Assert.True(worst <= tolerance, $"{what}: max |Δnll| {worst} > {tolerance}");
    }

    public static TheoryData<string, string> Recipes()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in ModelNames())
        {
            foreach (var file in Directory.GetFiles(Path.Combine(Root, model), "*.json").Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileNameWithoutExtension(file);
                if (name != "expected")
                {
                    data.Add(model, name);
                }
            }
        }
        return data;
    }

    /// <summary>Every kind (scale 2 and 0, ablate zero and mean, soften, redistribute_sink, inject q/k/v, edit_ov remove and
    /// scale, edit_qk) and one recipe combining three kinds, each loaded from its file and applied by the library.</summary>
    [Theory]
    [MemberData(nameof(Recipes))]
    public void RecipeNllMatchesReference(string model, string recipeName)
    {
        var expected = Expected.Read(model);
        Assert.SkipUnless(expected.ModelPresent, $"{expected.ModelPath} is absent (../shared is not beside the project)");
        using var loaded = ModelLoader.Load(expected.ModelPath);
        var recipe = Recipe.Load(Path.Combine(Root, model, recipeName + ".json"));
        var logits = IntervenedLogits(loaded.Model, recipe, expected.Tokens);
        int V = loaded.Config.VocabSize, T = expected.Tokens.Length;
        Assert.Equal(T * V, logits.Length);
        var nll = new double[T - 1];
        for (int t = 0; t < T - 1; t++)
        {
            nll[t] = -Perplexity.LogSoftmaxAt(logits.AsSpan(t * V, V), expected.Tokens[t + 1]);
        }
        AssertClose(expected.Nll[recipeName], nll, expected.Tolerance, $"{model}/{recipeName}");
    }

    // The one call into the recipe library: logits [T, V] of one sequence with the recipe applied (inject sources run on the
    // source tokens the recipe file holds; edit_ov/edit_qk through an edited model).
    private static float[] IntervenedLogits(TransformerModel model, Recipe recipe, int[] tokens)
    {
        using var applied = RecipeApplication.Apply(recipe, model);
        return applied.Forward(ModelInput.Single(tokens));
    }
}
