using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Interventions;

/// <summary>Whether a search maximises (<see cref="Up"/>) or minimises (<see cref="Down"/>) its objective.</summary>
public enum SearchDirection { Up, Down }

/// <summary>One round of a search: the head it added and the objective with every head chosen so far.</summary>
public sealed record SearchStep(HeadId Head, double Objective);

/// <summary>
/// What <see cref="HeadSearch.Run"/> found. <see cref="Steps"/>[i] is round i + 1; <see cref="Recipe"/> applies the final set.
/// <see cref="Forwards"/> counts every forward run (full and resumed, per input); <see cref="ForwardEquivalents"/> weighs each by
/// the share of the blocks it ran ((NL − L)/NL for one resumed at layer L), so it says what the search cost in plain forwards.
/// </summary>
public sealed record HeadSearchResult(string Intervention, MetricKind Objective, SearchDirection Direction, string Target,
    double Baseline, SearchStep[] Steps, int Forwards, double ForwardEquivalents, Recipe Recipe)
{
    public HeadId[] Heads => Steps.Select(s => s.Head).ToArray();

    public double Final => Steps.Length == 0 ? Baseline : Steps[^1].Objective;
}

/// <summary>
/// Greedy forward selection of a head set under one intervention kind [HeadHunter, Fine-Grained Perturbation Guidance via
/// Attention Head Selection; head-set attribution, On the Role of Attention Heads in LLM Safety]: start from the empty set; in
/// each of K rounds try adding every remaining head, score the objective with the set ∪ {h} applied (as a <see cref="Recipe"/>),
/// and keep the best head (highest for <see cref="SearchDirection.Up"/>, lowest for Down; ties go to the first in layer order).
/// <para>Speed: each round runs the inputs once under the current set, caching <c>hook_resid_pre</c> of every layer. A candidate
/// in layer L resumes there (<see cref="TransformerModel.ForwardFrom"/>): the set's heads below L are already in the cached
/// residual, and the candidate recipe's hooks on layers ≥ L (the set's and the candidate's) fire as the resumed forward passes
/// them. Resuming at the layer's start serves every kind: scale and ablate act on hook_z, soften and redistribute_sink on the
/// layer's pattern. The numbers equal a full forward under <see cref="RecipeApplication"/> (checked by the tests).</para>
/// </summary>
public static class HeadSearch
{
    /// <summary>
    /// Searches <paramref name="budget"/> heads (at most every head of the model) for <paramref name="kind"/> — a
    /// <see cref="ScaleHeads"/>, <see cref="AblateHeads"/>, <see cref="SoftenHeads"/> or <see cref="RedistributeSink"/> whose
    /// heads are ignored (the search fills them in). The objective is the mean over the target's inputs of
    /// <see cref="InterventionTarget.Score"/>: loss, KL(clean ‖ intervened) or the task's metric. <paramref name="onStep"/> hears
    /// each round's result as it is decided; <paramref name="progress"/> counts candidates.
    /// </summary>
    public static HeadSearchResult Run(TransformerModel model, InterventionTarget target, Intervention kind, MetricKind objective,
        SearchDirection direction, int budget, IProgress<AnalysisProgress>? progress = null, Action<SearchStep>? onStep = null,
        CancellationToken cancel = default)
    {
        var c = model.Config;
        c.RequireUniformHeads("head search");
        int NL = c.NLayers, all = NL * c.NHeads, n = target.Items.Count;
        if (budget < 1)
        {
            throw new InvalidInputException($"budget {budget}: a search adds at least 1 head");
        }
        if (objective == MetricKind.Task && target.Task is null)
        {
            throw new InvalidInputException("the task objective needs a task (its prompts and metric)");
        }
        // the kind is checked once, on one head, as a recipe item is
        RecipeApplication.CheckFields(RecipeFor(kind, [new HeadId(0, 0)]));
        int rounds = Math.Min(budget, all);
        string name = Describe(kind);

        var set = new List<HeadId>();
        var steps = new List<SearchStep>();
        var cleanLogits = new float[n][];
        var residPre = new float[n][][]; // per input, per layer: hook_resid_pre [pos, d_model] under the current set
        var logits = new float[n][];     // per input: the candidate's logits, one buffer reused by every resumed forward
        var inputs = target.Items.Select(ModelInput.Single).ToArray();
        double baseline = 0, equivalents = 0;
        int forwards = 0, total = Enumerable.Range(0, rounds).Sum(r => all - r), done = 0;
        progress?.Report(new AnalysisProgress("searching heads", 0, total));
        for (int round = 0; round < rounds; round++)
        {
            // the run under the current set (the clean run in round 0) that every candidate of this round resumes from
            using (var current = RecipeApplication.Apply(RecipeFor(kind, set), model))
            {
                for (int i = 0; i < n; i++)
                {
                    cancel.ThrowIfCancellationRequested();
                    var (full, cache) = current.RunWithCache(inputs[i], IsResidPre);
                    residPre[i] = Enumerable.Range(0, NL).Select(l => cache[ResidPre(l)].Data).ToArray();
                    if (round == 0)
                    {
                        cleanLogits[i] = full;
                        baseline += target.Weight(i) * target.Score(objective, i, full, full, c.VocabSize);
                    }
                }
            }
            forwards += n;
            equivalents += n;

            HeadId? best = null;
            double bestValue = 0;
            for (int l = 0; l < NL; l++)
            {
                for (int h = 0; h < c.NHeads; h++)
                {
                    var head = new HeadId(l, h);
                    if (set.Contains(head))
                    {
                        continue;
                    }
                    using var candidate = RecipeApplication.Apply(RecipeFor(kind, [.. set, head]), model);
                    var hooks = candidate.CreateHooks();
                    double value = 0;
                    for (int i = 0; i < n; i++)
                    {
                        cancel.ThrowIfCancellationRequested();
                        logits[i] = model.ForwardFrom(l, residPre[i][l], inputs[i], hooks, logits[i]);
                        value += target.Weight(i) * target.Score(objective, i, logits[i], cleanLogits[i], c.VocabSize);
                    }
                    forwards += n;
                    equivalents += n * (double)(NL - l) / NL;
                    if (best is null || (direction == SearchDirection.Up ? value > bestValue : value < bestValue))
                    {
                        (best, bestValue) = (head, value);
                    }
                    progress?.Report(new AnalysisProgress("searching heads", ++done, total));
                }
            }
            set.Add(best!.Value);
            var step = new SearchStep(best.Value, bestValue);
            steps.Add(step);
            onStep?.Invoke(step);
        }
        var recipe = RecipeFor(kind, set) with { Name = $"search: {name}, {Objective(objective)} {direction.ToString().ToLowerInvariant()}, {set.Count} heads" };
        return new HeadSearchResult(name, objective, direction, target.Description, baseline, [.. steps], forwards, equivalents, recipe);
    }

    /// <summary>The recipe applying <paramref name="kind"/> to <paramref name="heads"/> (no item for an empty set).</summary>
    public static Recipe RecipeFor(Intervention kind, IReadOnlyList<HeadId> heads)
    {
        if (heads.Count == 0)
        {
            return new Recipe("search", []) { Source = "search" };
        }
        HeadId[] hs = [.. heads];
        Intervention item = kind switch
        {
            ScaleHeads s => s with { Heads = hs },
            AblateHeads a => a with { Heads = hs },
            SoftenHeads s => s with { Heads = hs },
            RedistributeSink r => r with { Heads = hs },
            _ => throw new InvalidInputException($"a search applies scale, ablate, soften or redistribute_sink to heads, not {kind.Kind}"),
        };
        return new Recipe("search", [item]) { Source = "search" };
    }

    /// <summary>"loss", "kl" or "task", as the CLI names the objectives.</summary>
    public static string Objective(MetricKind m) => m switch { MetricKind.Loss => "loss", MetricKind.Kl => "kl", _ => "task" };

    private static string Describe(Intervention kind) => kind switch
    {
        ScaleHeads s => string.Create(CultureInfo.InvariantCulture, $"scale ×{s.Factor:G4}"),
        AblateHeads a => $"ablate {(a.Mean ? "mean" : "zero")}",
        SoftenHeads s => string.Create(CultureInfo.InvariantCulture, $"soften {s.Strength:G4}"),
        RedistributeSink r => string.Create(CultureInfo.InvariantCulture, $"redistribute_sink {r.Fraction:G4}"),
        _ => kind.Kind,
    };

    private static string ResidPre(int layer) => new HookPoint(layer, HookKind.ResidPre).Name;

    private static bool IsResidPre(string name) => name.EndsWith(".hook_resid_pre", StringComparison.Ordinal);
}
