using System.Diagnostics;
using Headwise.Analysis.Interventions;
using Headwise.Interventions;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>An importance scan timed against the naive cost: one full forward per head.</summary>
/// <param name="Ratio">ScanSeconds / (Heads × ForwardSeconds): below 1 is what reusing the clean layers buys.</param>
public sealed record ImportanceScanResult(string Shape, int Tokens, int Heads, double ForwardSeconds, double ScanSeconds, double Ratio);

/// <summary>One recipe timed against a plain forward in the same rounds.</summary>
/// <param name="Ratio">Median over rounds of (recipe forward ÷ that round's plain forward); RecipeMs = PlainMs × Ratio.</param>
/// <param name="PlainChecksum">Sum of the logits of the last timed plain forward.</param>
/// <param name="RecipeChecksum">Sum of the logits of the last timed recipe forward: differs from PlainChecksum when the
/// recipe really intervened (equal for the empty recipe).</param>
public sealed record RecipeCost(string Recipe, double PlainMs, double RecipeMs, double Ratio, double PlainChecksum, double RecipeChecksum);

/// <summary>A greedy head search (<see cref="HeadSearch"/>) timed against one plain forward on the same input.</summary>
/// <param name="Ratio">SearchSeconds / ForwardSeconds: what the whole search costs in plain forwards, as measured.</param>
/// <param name="ForwardEquivalents">The search's own count of the work (each resumed forward weighed by the blocks it ran).</param>
public sealed record SearchCost(string Search, int Tokens, int Heads, int Budget, double ForwardSeconds, double SearchSeconds, double Ratio,
    int Forwards, double ForwardEquivalents);

public static class InterventionBenchmarks
{
    /// <summary>
    /// `search` with <paramref name="budget"/> over every head of <paramref name="model"/> (soften s = 1, objective loss, up) on
    /// <paramref name="tokens"/> random tokens: the median of 3 searches after a warm-up one (JIT); the plain forward is the
    /// median of 5, timed before and after the searches and averaged (the machine may be shared).
    /// </summary>
    public static SearchCost Search(TransformerModel model, int tokens, int budget = 3, CancellationToken cancel = default)
    {
        var rng = new Random(23);
        var ids = Enumerable.Range(0, tokens).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        var input = ModelInput.Single(ids);
        var target = InterventionTarget.FromTokens(ids);
        var kind = new SoftenHeads([], 1);
        // warm-up: the same search once, so every path has run often enough for the JIT's optimized tier (a budget-1 search on
        // a few tokens left the timed one half in unoptimized code: 115× instead of about 25× on the demo model)
        var r = HeadSearch.Run(model, target, kind, MetricKind.Loss, SearchDirection.Up, budget, cancel: cancel);
        double forward = ModelBenchmarks.Median(5, () => model.Forward(input), cancel);
        double search = ModelBenchmarks.Median(3, () => HeadSearch.Run(model, target, kind, MetricKind.Loss, SearchDirection.Up, budget, cancel: cancel), cancel);
        forward = (forward + ModelBenchmarks.Median(5, () => model.Forward(input), cancel)) / 2;
        return new SearchCost($"soften s=1, loss up, budget {budget}", tokens, model.Config.NLayers * model.Config.NHeads, budget,
            forward, search, search / forward, r.Forwards, r.ForwardEquivalents);
    }

    /// <summary>The recipes `bench --recipes` times on <paramref name="config"/>: an empty one, then head 0 of the middle
    /// layer softened, scaled and sink-redistributed (name, recipe JSON).</summary>
    public static IReadOnlyList<(string Name, string Json)> StandardRecipes(ModelConfig config)
    {
        string head = $"{config.NLayers / 2}.0";
        return
        [
            ("empty", """{"name": "empty", "interventions": []}"""),
            ($"soften {head} s=0.5", $$"""{"name": "soften", "interventions": [{"kind": "soften", "heads": ["{{head}}"], "strength": 0.5}]}"""),
            ($"scale {head} ×2", $$"""{"name": "scale", "interventions": [{"kind": "scale", "heads": ["{{head}}"], "factor": 2.0}]}"""),
            ($"redistribute_sink {head} f=0.5", $$"""{"name": "sink", "interventions": [{"kind": "redistribute_sink", "heads": ["{{head}}"], "fraction": 0.5, "sinks": [0]}]}"""),
        ];
    }

    /// <summary>
    /// Each recipe's forward against a plain one (no hooks) over <paramref name="tokens"/> random tokens, batch 1. The machine
    /// may be shared and drifts between seconds: each round times a plain forward, then every recipe's forward, and each
    /// ratio is the median over rounds of (recipe ÷ that round's plain forward), as <see cref="ModelBenchmarks.Hooks"/> does.
    /// The recipes' hooks are built once, outside the timing; the logits of the last timed runs are summed so a caller can
    /// see that the recipe forwards really intervened.
    /// </summary>
    public static IReadOnlyList<RecipeCost> Recipes(TransformerModel model, int tokens, IReadOnlyList<(string Name, string Json)>? recipes = null,
        int rounds = 15, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        recipes ??= StandardRecipes(model.Config);
        var rng = new Random(19);
        var input = ModelInput.Single(Enumerable.Range(0, tokens).Select(_ => rng.Next(model.Config.VocabSize)).ToArray());
        var applied = new List<RecipeApplication>();
        try
        {
            foreach (var (name, json) in recipes)
            {
                applied.Add(RecipeApplication.Apply(Recipe.Parse(json, name), model));
            }
            var hooks = applied.Select(a => a.CreateHooks()).ToArray();
            float[] plainLogits = model.Forward(input); // warm-up (JIT) of every path
            var recipeLogits = new float[applied.Count][];
            for (int k = 0; k < applied.Count; k++)
            {
                recipeLogits[k] = applied[k].Model.Forward(input, hooks[k]);
            }
            rounds = Math.Max(rounds, 1);
            var plain = new double[rounds];
            var ratios = new double[applied.Count][];
            for (int k = 0; k < applied.Count; k++)
            {
                ratios[k] = new double[rounds];
            }
            for (int i = 0; i < rounds; i++)
            {
                cancel.ThrowIfCancellationRequested();
                plain[i] = GemmBenchmark.Seconds(() => plainLogits = model.Forward(input));
                for (int k = 0; k < applied.Count; k++)
                {
                    ratios[k][i] = GemmBenchmark.Seconds(() => recipeLogits[k] = applied[k].Model.Forward(input, hooks[k])) / plain[i];
                }
            }
            double plainMs = 1000 * GemmBenchmark.MedianOf(plain);
            double plainSum = Checksum(plainLogits);
            return recipes.Select((r, k) =>
            {
                double ratio = GemmBenchmark.MedianOf(ratios[k]);
                return new RecipeCost(r.Name, plainMs, plainMs * ratio, ratio, plainSum, Checksum(recipeLogits[k]));
            }).ToArray();
        }
        finally
        {
            foreach (var a in applied)
            {
                a.Dispose();
            }
        }
    }

    private static double Checksum(float[] logits)
    {
        double sum = 0;
        foreach (float x in logits)
        {
            sum += x;
        }
        return sum;
    }

    /// <summary>
    /// Zero-ablation importance scan (metric: loss) over every head of a GPT-2-small-shaped random model on 1,000 tokens, or with
    /// <paramref name="quick"/> a 2-layer, 4096-token-vocabulary model on 128 tokens. The full forward is timed in the same run
    /// (median of 3 after a warm-up, before and after the scan, averaged).
    /// </summary>
    public static ImportanceScanResult ImportanceScan(bool quick = false, CancellationToken cancel = default)
    {
        var config = quick ? ModelConfig.Gpt2Small with { NLayers = 2, VocabSize = 4096 } : ModelConfig.Gpt2Small;
        int tokens = quick ? 128 : 1000;
        using var model = ModelBenchmarks.RandomModel(config);
        var rng = new Random(17);
        var ids = Enumerable.Range(0, tokens).Select(_ => rng.Next(config.VocabSize)).ToArray();
        var input = ModelInput.Single(ids);
        double forward = ModelBenchmarks.Median(3, () => model.Forward(input), cancel);
        var target = InterventionTarget.FromTokens(ids);
        Ablation.Importance(model, InterventionTarget.FromTokens(ids[..16]), AblationMethod.Zero, MetricKind.Loss, cancel: cancel); // warm-up (JIT)
        var sw = Stopwatch.StartNew();
        Ablation.Importance(model, target, AblationMethod.Zero, MetricKind.Loss, cancel: cancel);
        double scan = sw.Elapsed.TotalSeconds;
        // the machine may be shared: time the forward again after the scan and take the mean of the two medians
        forward = (forward + ModelBenchmarks.Median(3, () => model.Forward(input), cancel)) / 2;
        int heads = config.NLayers * config.NHeads;
        return new ImportanceScanResult(quick ? "gpt2-small, 2 layers, vocab 4096" : "gpt2-small", tokens, heads, forward, scan, scan / (heads * forward));
    }
}
