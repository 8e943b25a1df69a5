using System.Text.Json;
using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Statistics;
using Headwise.Analysis.Tasks;
using Headwise.Hooks;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Tests.Acceptance;

/// <summary>
/// --intervene FILE on the analysis commands (heads, patterns, dla, ablate, importance, patch, report, and the statistics
/// commands): each prints the intervened model's numbers — checked against an independent computation on
/// <see cref="RecipeApplication"/> (its cache, or a full hooked forward per head with no resumption) — and differs from
/// the plain run where the recipe must change it. Bad recipes exit 2 with one line, as on eval.
/// </summary>
public class RecipeEverywhereCliTests
{
    private const string Text = "The cat sat on the mat and the dog sat on the";

    private static JsonElement Json(params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    private static float[][] Grid(JsonElement e) =>
        e.EnumerateArray().Select(row => row.EnumerateArray().Select(x => x.GetSingle()).ToArray()).ToArray();

    private static int[] Ids(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    // a full forward under the recipe with head h's z zeroed after the recipe's hooks: no cache, no resumption
    private static float[] ZeroAblatedForward(RecipeApplication applied, int[] ids, HeadId head)
    {
        var hooks = applied.CreateHooks();
        hooks.Add(new HookPoint(head.Layer, HookKind.Z), a =>
        {
            int NH = a.Shape[2], HD = a.Shape[3];
            var z = a.Data.Span;
            for (int r = 0; r < z.Length / (NH * HD); r++)
            {
                z.Slice((r * NH + head.Head) * HD, HD).Clear();
            }
        });
        return applied.Model.Forward(ModelInput.Single(ids), hooks);
    }

    [Fact]
    public void HeadsUnderARecipeScoreThePatternsOfTheIntervenedRun()
    {
        string[] common = ["heads", "--model", CliRunner.DemoModel, "--seq-len", "8", "--batch", "2", "--json"];
        var plain = Json(common);
        var r = Json([.. common, "--intervene", CliRunner.ExampleRecipe("soften")]);
        Assert.Equal("soften 3.2", r.GetProperty("recipe").GetString());

        using var m = ModelLoader.Load(CliRunner.DemoModel);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("soften")), m.Model);
        var options = new HeadDetectorOptions(8, 2, 0);
        bool bos = r.GetProperty("bos").GetBoolean();
        var seqs = HeadDetectors.RepeatedSequences(m.Config, options, bos);
        int offset = bos ? 1 : 0;
        var induction = Grid(r.GetProperty("scores").GetProperty("induction"));
        var prev = Grid(r.GetProperty("scores").GetProperty("prev_token"));
        for (int l = 0; l < m.Config.NLayers; l++)
        {
            for (int h = 0; h < m.Config.NHeads; h++)
            {
                double ind = 0, pt = 0;
                foreach (var seq in seqs)
                {
                    var (_, cache) = applied.RunWithCache(ModelInput.Single(seq));
                    int T = seq.Length;
                    var p = cache[$"blocks.{l}.attn.hook_pattern"].Data.AsSpan(h * T * T, T * T);
                    ind += HeadDetectors.InductionScore(p, T, offset, 8);
                    pt += HeadDetectors.PrevTokenScore(p, T);
                }
                Assert.Equal(ind / seqs.Length, induction[l][h], 1e-5);
                Assert.Equal(pt / seqs.Length, prev[l][h], 1e-5);
            }
        }
        // softening 3.2 by 0.5 moves half of each row onto the diagonal: its previous-token score drops, other layers stay
        var plainPrev = Grid(plain.GetProperty("scores").GetProperty("prev_token"));
        Assert.True(prev[3][2] < plainPrev[3][2] - 0.01, $"{prev[3][2]} vs {plainPrev[3][2]}");
        Assert.Equal(plainPrev[0], prev[0]);

        var textOut = CliRunner.Run([.. common[..^1], "--intervene", CliRunner.ExampleRecipe("soften")]);
        Assert.StartsWith("recipe       soften 3.2 (", textOut.Stdout);
    }

    [Fact]
    public void PatternsUnderARecipeAreTheIntervenedPatterns()
    {
        var r = Json("patterns", "--model", CliRunner.DemoModel, "--text", Text, "--head", "3.2", "--intervene", CliRunner.ExampleRecipe("soften"), "--json");
        var plain = Json("patterns", "--model", CliRunner.DemoModel, "--text", Text, "--head", "3.2", "--json");
        using var m = ModelLoader.Load(CliRunner.DemoModel);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("soften")), m.Model);
        var ids = Ids(r.GetProperty("token_ids"));
        var (_, cache) = applied.RunWithCache(ModelInput.Single(ids));
        int T = ids.Length;
        var expected = cache["blocks.3.attn.hook_pattern"].Data.AsSpan(2 * T * T, T * T).ToArray();
        var got = r.GetProperty("pattern").EnumerateArray().Select(x => x.GetSingle()).ToArray();
        Assert.Equal(expected, got);
        Assert.NotEqual(plain.GetProperty("pattern").EnumerateArray().Select(x => x.GetSingle()).ToArray(), got);
        Assert.Equal("soften 3.2", r.GetProperty("recipe").GetString());
    }

    [Fact]
    public void DlaUnderAWeightEditAttributesTheEditedModelsLogit()
    {
        string[] common = ["dla", "--model", CliRunner.DemoModel, "--text", Text, "--answer", " mat", "--wrong", " the", "--json"];
        var plain = Json(common);
        var r = Json([.. common, "--intervene", CliRunner.ExampleRecipe("combined")]);
        using var m = ModelLoader.Load(CliRunner.DemoModel);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("combined")), m.Model);
        var ids = Ids(r.GetProperty("token_ids"));
        int V = m.Config.VocabSize, T = ids.Length, answer = r.GetProperty("answer").GetInt32(), wrong = r.GetProperty("wrong").GetInt32();
        var logits = applied.Forward(ModelInput.Single(ids));
        double expected = logits[(T - 1) * V + answer] - logits[(T - 1) * V + wrong];
        Assert.Equal(expected, r.GetProperty("logit").GetDouble(), 1e-4);
        // the terms still add up to the intervened logit difference
        Assert.Equal(expected - r.GetProperty("norm_bias_term").GetDouble(), r.GetProperty("sum").GetDouble(), 1e-3);
        Assert.NotEqual(plain.GetProperty("logit").GetDouble(), r.GetProperty("logit").GetDouble(), 1e-3);
    }

    [Fact]
    public void AblateUnderScaleOneIsThePlainAblationAndUnderARecipeAFullHookedForward()
    {
        string scale1 = CliRunner.TempRecipe("""{"name": "identity", "interventions": [{"kind": "scale", "heads": ["2.1", "0.3"], "factor": 1}]}""");
        try
        {
            foreach (string method in new[] { "zero", "mean" })
            {
                string[] common = ["ablate", "--model", CliRunner.DemoModel, "--heads", "1.0,2.1", "--text", Text, "--method", method, "--json"];
                var plain = Json(common);
                var same = Json([.. common, "--intervene", scale1]);
                Assert.Equal(plain.GetProperty("clean").GetDouble(), same.GetProperty("clean").GetDouble());
                Assert.Equal(plain.GetProperty("ablated").GetDouble(), same.GetProperty("ablated").GetDouble());
                Assert.Equal("identity", same.GetProperty("recipe").GetString());
            }
        }
        finally
        {
            File.Delete(scale1);
        }

        var r = Json("ablate", "--model", CliRunner.DemoModel, "--heads", "1.0", "--text", Text, "--intervene", CliRunner.ExampleRecipe("combined"), "--json");
        var plainR = Json("ablate", "--model", CliRunner.DemoModel, "--heads", "1.0", "--text", Text, "--json");
        using var m = ModelLoader.Load(CliRunner.DemoModel);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("combined")), m.Model);
        var ids = m.RequireTokenizer().Encode(Text);
        var target = InterventionTarget.FromTokens(ids);
        int V = m.Config.VocabSize;
        double clean = target.Score(MetricKind.Loss, 0, applied.Forward(ModelInput.Single(ids)), null, V);
        double ablated = target.Score(MetricKind.Loss, 0, ZeroAblatedForward(applied, ids, new HeadId(1, 0)), null, V);
        Assert.Equal(clean, r.GetProperty("clean").GetDouble(), 1e-5);
        Assert.Equal(ablated, r.GetProperty("ablated").GetDouble(), 1e-4);
        Assert.NotEqual(plainR.GetProperty("clean").GetDouble(), r.GetProperty("clean").GetDouble(), 1e-4);
    }

    [Fact]
    public void ImportanceUnderARecipeEqualsAFullForwardPerHeadWithTheRecipesHooks()
    {
        // combined: an OV edit in layer 0, softening in 1, scaling in 2 — so resumed runs start below, at and above each
        var r = Json("importance", "--model", CliRunner.DemoModel, "--text", Text, "--intervene", CliRunner.ExampleRecipe("combined"), "--json");
        var plain = Json("importance", "--model", CliRunner.DemoModel, "--text", Text, "--json");
        Assert.Equal("three kinds on three heads", r.GetProperty("recipe").GetString());
        var values = Grid(r.GetProperty("values"));

        using var m = ModelLoader.Load(CliRunner.DemoModel);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("combined")), m.Model);
        var ids = m.RequireTokenizer().Encode(Text);
        var target = InterventionTarget.FromTokens(ids);
        int V = m.Config.VocabSize;
        double clean = target.Score(MetricKind.Loss, 0, applied.Forward(ModelInput.Single(ids)), null, V);
        for (int l = 0; l < m.Config.NLayers; l++)
        {
            for (int h = 0; h < m.Config.NHeads; h++)
            {
                double ablated = target.Score(MetricKind.Loss, 0, ZeroAblatedForward(applied, ids, new HeadId(l, h)), null, V);
                Assert.Equal(ablated - clean, values[l][h], 1e-4);
            }
        }
        Assert.NotEqual(Grid(plain.GetProperty("values"))[1][3], values[1][3]);
    }

    [Fact]
    public void PatchUnderARecipeRunsCleanCorruptedAndPatchedWithItsHooks()
    {
        string[] common = ["patch", "--model", CliRunner.DemoModel, "--clean", "The cat sat on the mat and the", "--corrupted", "The dog sat on the mat and the",
            "--answer", " cat", "--wrong", " dog", "--json"];
        var r = Json([.. common, "--intervene", CliRunner.ExampleRecipe("combined")]);
        var plain = Json(common);
        var values = Grid(r.GetProperty("values"));

        using var m = ModelLoader.Load(CliRunner.DemoModel);
        var tok = m.RequireTokenizer();
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("combined")), m.Model);
        // the prompts and the metric as the command reads them; the runs below are plain full forwards under the recipe
        var task = TaskLibrary.Tokenize(new PromptTask("prompt", "", TaskMetric.LogitDifference, "", 0,
            [new TaskPrompt("The cat sat on the mat and the", "The dog sat on the mat and the", [" cat"], [" dog"])]), tok);
        int[] clean = task.Prompts[0].Clean, corrupted = task.Prompts[0].Corrupted!;
        int V = m.Config.VocabSize;
        Func<float[], double> metric = logits => task.Score(0, logits, V);
        var (cleanLogits, cleanCache) = applied.RunWithCache(ModelInput.Single(clean));
        double cl = metric(cleanLogits), co = metric(applied.Forward(ModelInput.Single(corrupted)));
        Assert.Equal(cl, r.GetProperty("clean").GetDouble(), 1e-4);
        Assert.Equal(co, r.GetProperty("corrupted").GetDouble(), 1e-4);
        for (int l = 0; l < m.Config.NLayers; l++)
        {
            var cleanZ = cleanCache[$"blocks.{l}.attn.hook_z"].Data;
            for (int h = 0; h < m.Config.NHeads; h++)
            {
                var hooks = applied.CreateHooks();
                int head = h;
                hooks.Add(new HookPoint(l, HookKind.Z), a =>
                {
                    int NH = a.Shape[2], HD = a.Shape[3];
                    for (int t = 0; t < a.Shape[1]; t++)
                    {
                        cleanZ.AsSpan((t * NH + head) * HD, HD).CopyTo(a.Data.Span.Slice((t * NH + head) * HD, HD));
                    }
                });
                double patched = metric(applied.Model.Forward(ModelInput.Single(corrupted), hooks));
                bool normalized = cl - co >= 1 && cl > 0; // else the command shows raw differences (with a warning)
                Assert.Equal(normalized, r.GetProperty("normalized").GetBoolean());
                Assert.Equal(normalized ? (patched - co) / (cl - co) : patched - co, values[l][h], 1e-3);
            }
        }
        Assert.NotEqual(plain.GetProperty("clean").GetDouble(), r.GetProperty("clean").GetDouble(), 1e-4);
    }

    [Fact]
    public void ReportUnderARecipeStatesItAndComputesUnderIt()
    {
        string html = Path.Combine(Path.GetTempPath(), $"headwise-report-{Guid.NewGuid():N}.html");
        try
        {
            var r = Json("report", "--model", CliRunner.DemoModel, "--out", html, "--max-tokens", "12", "--intervene", CliRunner.ExampleRecipe("soften"), "--json");
            Assert.Equal("soften 3.2", r.GetProperty("recipe").GetString());
            string page = File.ReadAllText(html);
            Assert.Contains("soften 3.2", page);
            Assert.Contains("\"recipe\":{\"name\":\"soften 3.2\"", page);
            Assert.Contains("soften 3.2: pattern (1 \\u2212 s)\\u00B7A \\u002B s\\u00B7I, s = 0.5", page); // the page escapes non-ASCII and +

            var text = CliRunner.Run("report", "--model", CliRunner.DemoModel, "--out", html, "--max-tokens", "12", "--intervene", CliRunner.ExampleRecipe("soften"));
            Assert.Equal(0, text.ExitCode);
            Assert.StartsWith("recipe       soften 3.2 (", text.Stdout);
        }
        finally
        {
            File.Delete(html);
        }
    }

    [Fact]
    public void StatisticsCommandsReadTheIntervenedPatternsAndCircuitsTheEditedWeights()
    {
        var r = Json("centrality", "--model", CliRunner.DemoModel, "--text", Text, "--intervene", CliRunner.ExampleRecipe("soften"), "--json");
        var plain = Json("centrality", "--model", CliRunner.DemoModel, "--text", Text, "--json");
        using var m = ModelLoader.Load(CliRunner.DemoModel);
        using var applied = RecipeApplication.Apply(Recipe.Load(CliRunner.ExampleRecipe("soften")), m.Model);
        var ids = Ids(r.GetProperty("tokens"));
        var (_, cache) = applied.RunWithCache(ModelInput.Single(ids));
        var expected = TokenCentrality.Compute(applied.Model, ids, cache, 0.85);
        var got = r.GetProperty("centrality").EnumerateArray().Select(l => l.EnumerateArray().Select(x => x.GetDouble()).ToArray()).ToArray();
        for (int l = 0; l < expected.Centrality.Length; l++)
        {
            Assert.Equal(expected.Centrality[l], got[l], (a, b) => Math.Abs(a - b) < 1e-9);
        }
        Assert.NotEqual(plain.GetProperty("centrality")[3].ToString(), r.GetProperty("centrality")[3].ToString());
        Assert.Equal(plain.GetProperty("centrality")[0].ToString(), r.GetProperty("centrality")[0].ToString());

        foreach (string command in new[] { "sinks", "stats", "explain" })
        {
            Assert.Equal("soften 3.2", Json(command, "--model", CliRunner.DemoModel, "--text", Text, "--intervene", CliRunner.ExampleRecipe("soften"), "--json").GetProperty("recipe").GetString());
        }
        Assert.Equal("soften 3.2", Json("context", "--model", CliRunner.DemoModel, "--text", Text, "--final", "2", "--intervene", CliRunner.ExampleRecipe("soften"), "--json")
            .GetProperty("recipe").GetString());

        // circuits reads weights: the OV edit of 3.0 changes that head's OV singular values, and nothing of head 0.0
        var c = Json("circuits", "--model", CliRunner.DemoModel, "--head", "3.0,0.0", "--intervene", CliRunner.ExampleRecipe("edit_ov"), "--json");
        var cPlain = Json("circuits", "--model", CliRunner.DemoModel, "--head", "3.0,0.0", "--json");
        string Ov(JsonElement e, string head) => e.GetProperty("heads").EnumerateArray()
            .Single(x => x.GetProperty("head").GetString() == head).GetProperty("ov_singular_values").ToString();
        Assert.NotEqual(Ov(cPlain, "3.0"), Ov(c, "3.0"));
        Assert.Equal(Ov(cPlain, "0.0"), Ov(c, "0.0"));
    }

    [Fact]
    public void BadRecipesExit2OnEveryCommandWithOneLine()
    {
        string bad = CliRunner.TempRecipe("""{"name": "bad", "interventions": [{"kind": "soften", "heads": ["1.1"], "strength": 1.5}]}""");
        string missing = CliRunner.TempRecipe("""{"name": "bad", "interventions": [{"kind": "scale", "heads": ["7.0"], "factor": 2}]}""");
        string inject = CliRunner.TempRecipe("""{"name": "short", "interventions": [{"kind": "inject", "heads": ["1.1"], "component": "v", "source": {"tokens": [10, 20, 30, 40, 50, 60]}}]}""");
        try
        {
            foreach (var (args, expected) in new (string[], string)[]
            {
                (["heads", "--model", CliRunner.DemoModel, "--intervene", bad], "interventions[0] (soften): strength 1.5 is outside [0, 1]"),
                (["importance", "--model", CliRunner.DemoModel, "--text", Text, "--intervene", missing], "interventions[0] (scale): heads 7.0 does not exist"),
                (["report", "--model", CliRunner.DemoModel, "--out", Path.Combine(Path.GetTempPath(), "never.html"), "--intervene", bad], "strength 1.5 is outside [0, 1]"),
                (["patch", "--model", CliRunner.DemoModel, "--clean", "The cat", "--corrupted", "The dog", "--answer", " mat", "--wrong", " the", "--intervene", missing],
                    "heads 7.0 does not exist"),
                (["dla", "--model", CliRunner.DemoModel, "--tokens", "1,2,3", "--answer", "5", "--intervene", inject], "interventions[0] (inject): source has 6 tokens, the input 3"),
                (["ablate", "--model", CliRunner.DemoModel, "--heads", "1.0", "--tokens", "1,2,3", "--intervene", inject], "source has 6 tokens, the input 3"),
                (["heads", "--model", CliRunner.DemoModel, "--intervene", inject], "interventions[0] (inject): source has 6 tokens"),
                (["report", "--model", CliRunner.DemoModel, "--out", Path.Combine(Path.GetTempPath(), "never.html"), "--intervene", inject],
                    "interventions[0] (inject): the report runs inputs of several lengths"),
                (["patterns", "--model", CliRunner.DemoModel, "--tokens", "1,2,3", "--intervene", "/nonexistent/r.json"], "/nonexistent/r.json"),
            })
            {
                var r = CliRunner.Run(args);
                Assert.True(r.ExitCode == 2, $"{args[0]}: exit {r.ExitCode}: {r.Stderr}");
                Assert.Contains(expected, r.Stderr);
                Assert.Single(r.Stderr.Trim().Split('\n'));
            }
            // a source as long as the input runs
            Assert.Equal(0, CliRunner.Run("patterns", "--model", CliRunner.DemoModel, "--tokens", "1,2,3,4,5,6", "--intervene", inject, "--json").ExitCode);
        }
        finally
        {
            File.Delete(bad);
            File.Delete(missing);
            File.Delete(inject);
        }
    }
}
