using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Hooks;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Tests.Models.Interventions;

/// <summary>
/// The analyses under a recipe (their <c>baseHooks</c>): the importance scan and activation patching resume their forwards
/// from cached activations, and under a recipe those must equal a full forward with the recipe's hooks plus the ablation's or
/// patch's — on a GPT-2, a grouped-query Llama (with a k/v injection into one query head, recomputed at hook_z) and a
/// parallel-residual GPT-NeoX (resumed from resid_post), with items in layers below, at and above each resumed layer.
/// </summary>
public class RecipeAnalysisTests
{
    private static readonly int[] Ids = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6, 14, 27];
    private static readonly int[] Other = [40, 7, 5, 12, 22, 61, 8, 19, 30, 2, 50, 6, 33, 27];

    private const string Items = """
        {"kind": "edit_ov", "head": "0.1", "remove": [0]},
        {"kind": "soften", "heads": ["1.2"], "strength": 0.3},
        {"kind": "scale", "heads": ["0.3", "1.0"], "factor": 1.5},
        {"kind": "inject", "heads": ["1.1"], "component": "v", "source": {"tokens": [40, 7, 5, 12, 22, 61, 8, 19, 30, 2, 50, 6, 33, 27]}},
        {"kind": "ablate", "heads": ["0.0"], "method": "mean"}
        """;

    private static RecipeApplication Apply(TransformerModel model) =>
        RecipeApplication.Apply(Recipe.Parse($$"""{"name": "mix", "interventions": [{{Items}}]}""", "mix.json"), model);

    // recipe hooks, then `after` on top, then a plain full forward
    private static float[] Full(RecipeApplication applied, int[] ids, HookPoint point, HookFunction after)
    {
        var hooks = applied.CreateHooks();
        hooks.Add(point, after);
        return applied.Model.Forward(ModelInput.Single(ids), hooks);
    }

    private static HookFunction ZeroHead(int head) => a =>
    {
        int NH = a.Shape[2], HD = a.Shape[3];
        var z = a.Data.Span;
        for (int r = 0; r < z.Length / (NH * HD); r++)
        {
            z.Slice((r * NH + head) * HD, HD).Clear();
        }
    };

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    public void ImportanceUnderARecipeEqualsAFullForwardPerHead(string name)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));
        using var applied = Apply(m.Model);
        var target = InterventionTarget.FromTokens(Ids);
        int V = m.Config.VocabSize;
        var scores = Ablation.Importance(applied.Model, target, AblationMethod.Zero, MetricKind.Loss, baseHooks: h => applied.AddHooks(h));
        double clean = target.Score(MetricKind.Loss, 0, applied.Forward(ModelInput.Single(Ids)), null, V);
        for (int l = 0; l < m.Config.NLayers; l++)
        {
            for (int h = 0; h < m.Config.NHeads; h++)
            {
                double ablated = target.Score(MetricKind.Loss, 0, Full(applied, Ids, new HookPoint(l, HookKind.Z), ZeroHead(h)), null, V);
                Assert.Equal(ablated - clean, scores.Values[l][h], 1e-4);
            }
        }
        var plain = Ablation.Importance(m.Model, target, AblationMethod.Zero, MetricKind.Loss);
        Assert.Contains(Enumerable.Range(0, m.Config.NLayers * m.Config.NHeads),
            i => Math.Abs(plain.Values[i / m.Config.NHeads][i % m.Config.NHeads] - scores.Values[i / m.Config.NHeads][i % m.Config.NHeads]) > 1e-4);
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    public void AblationUnderARecipeResumedEqualsRecomputed(string name)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));
        using var applied = Apply(m.Model);
        var target = InterventionTarget.FromTokens(Ids);
        HeadId[] heads = [new(0, 2), new(1, 1)];
        foreach (var method in new[] { AblationMethod.Zero, AblationMethod.Mean })
        {
            var resumed = Ablation.Ablate(applied.Model, target, heads, method, MetricKind.Kl, baseHooks: h => applied.AddHooks(h));
            var full = Ablation.Ablate(applied.Model, target, heads, method, MetricKind.Kl, reuseClean: false, baseHooks: h => applied.AddHooks(h));
            Assert.Equal(full.Ablated, resumed.Ablated, 1e-5);
            Assert.True(resumed.Ablated > 0, "ablating two heads changes the next-token distributions");
        }
        // an identity recipe changes nothing, bit for bit
        using var identity = RecipeApplication.Apply(Recipe.Parse("""{"name": "id", "interventions": [{"kind": "scale", "heads": ["1.0"], "factor": 1}]}"""), m.Model);
        var a = Ablation.Ablate(identity.Model, target, heads, AblationMethod.Mean, MetricKind.Loss, baseHooks: h => identity.AddHooks(h));
        var b = Ablation.Ablate(m.Model, target, heads, AblationMethod.Mean, MetricKind.Loss);
        Assert.Equal(b.Clean, a.Clean);
        Assert.Equal(b.Ablated, a.Ablated);
    }

    [Theory]
    [InlineData("gpt2_tied", PatchSite.Z)]
    [InlineData("llama_gqa", PatchSite.Z)]
    [InlineData("llama_gqa", PatchSite.K)]
    [InlineData("neox_parallel", PatchSite.Pattern)]
    public void PatchingUnderARecipeEqualsAFullForwardPerHead(string name, PatchSite site)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));
        using var applied = Apply(m.Model);
        int V = m.Config.VocabSize;
        var metric = ActivationPatching.LogitDifference(V, 7, 11);
        // the corrupted prompt is the inject source itself: both runs must be as long as it
        var pairs = new[] { new PatchPair(Ids, Other, metric) };
        var r = ActivationPatching.Run(applied.Model, pairs, site, baseHooks: h => applied.AddHooks(h));

        var kind = site switch { PatchSite.Z => HookKind.Z, PatchSite.K => HookKind.K, _ => HookKind.Pattern };
        var (cleanLogits, cache) = applied.RunWithCache(ModelInput.Single(Ids));
        double clean = metric(cleanLogits), corrupted = metric(applied.Forward(ModelInput.Single(Other)));
        Assert.Equal(clean, r.CleanMetric, 1e-5);
        Assert.Equal(corrupted, r.CorruptedMetric, 1e-5);
        for (int l = 0; l < m.Config.NLayers; l++)
        {
            var from = cache[new HookPoint(l, kind).Name];
            for (int u = 0; u < ActivationPatching.Units(m.Config, site); u++)
            {
                int unit = u;
                HookFunction copy = a =>
                {
                    if (site == PatchSite.Pattern)
                    {
                        int T = a.Shape[2], S = a.Shape[3];
                        from.Data.AsSpan(unit * T * S, T * S).CopyTo(a.Data.Span.Slice(unit * T * S, T * S));
                        return;
                    }
                    int U = a.Shape[2], D = a.Shape[3];
                    for (int t = 0; t < a.Shape[1]; t++)
                    {
                        from.Data.AsSpan((t * U + unit) * D, D).CopyTo(a.Data.Span.Slice((t * U + unit) * D, D));
                    }
                };
                double patched = metric(Full(applied, Other, new HookPoint(l, kind), copy));
                // normalized only on a clean run that beats the corrupted one by a logit and prefers the answer
                Assert.Equal(clean - corrupted >= 1 && clean > 0, r.Normalized);
                Assert.Equal(r.Normalized ? (patched - corrupted) / (clean - corrupted) : patched - corrupted, r.Scores.Values[l][u], 1e-3);
            }
        }
    }
}
