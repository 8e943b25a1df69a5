using Headwise.Analysis;
using Headwise.Analysis.Attribution;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Training.Experiments;

/// <summary>Settings of <see cref="FactualRecallExperiment"/>; the defaults train in well under a minute on 2 cores.</summary>
public sealed record FactualRecallOptions(int Steps = 2000, int Seed = 0, int Subjects = 48, int Attributes = 16, double StubbornRate = 0.2,
    double YieldingRate = 0.8, int DModel = 64, int Layers = 2, int Heads = 4, int Batch = 64, double LearningRate = 3e-3, int EvalEvery = 100,
    double InitStd = 0.02)
{
    /// <summary>The factors <c>scale</c> is swept over on the chosen head.</summary>
    public IReadOnlyList<double> Factors { get; init; } = [0, 0.25, 0.5, 1, 1.5, 2, 3, 4];
}

/// <summary>During training: loss on the held-out counterfactual prompts' in-context answers, accuracy on the facts (with an
/// irrelevant prefix), and how often the in-context answer beats the memorised one on the held-out prompts.</summary>
public sealed record FactualRecallPoint(int Step, double FactAccuracy, double InContextWins);

/// <summary>A head's mean direct logit attribution toward the in-context answer against the memorised one (held-out prompts).</summary>
public sealed record HeadAttribution(HeadId Head, double MeanLogitDifference);

/// <summary>
/// One factor of the sweep, on the held-out counterfactual prompts: which of the two answers has the larger logit
/// (<see cref="InContextWins"/> + <see cref="MemorisedWins"/> = 1), the same split for the stubborn and the yielding subjects,
/// the argmax over the whole vocabulary (in-context, memorised, anything else), the accuracy on the plain facts (irrelevant
/// prefix), and how often a fact is answered with the irrelevant prefix's attribute instead.
/// </summary>
public sealed record ScalePoint(double Factor, string Recipe, double InContextWins, double MemorisedWins, double InContextWinsStubborn,
    double InContextWinsYielding, double ArgmaxInContext, double ArgmaxMemorised, double ArgmaxOther, double FactAccuracy, double FactsAnsweredWithPrefix);

/// <summary>What <see cref="FactualRecallExperiment.Run"/> found.</summary>
public sealed record FactualRecallResult(FactualRecallOptions Options, int Parameters, IReadOnlyList<FactualRecallPoint> Curve, int HeldOutPrompts,
    IReadOnlyList<HeadAttribution> Attributions, HeadId Head, IReadOnlyList<ScalePoint> Sweep, double Seconds);

/// <summary>
/// Factual recall against a counterfactual context ("Characterizing Mechanisms for Factual Recall"): a small GPT-2 learns
/// memorised facts s r → a(s) and, from a prefix "s r a′ .", to answer a′ for some subjects and a(s) for others
/// (<see cref="FactualRecallTask"/>). The model is exported (DIR/model) and loaded in the engine; direct logit attribution
/// of logit(a′) − logit(a(s)) at the answer position, averaged over the held-out counterfactual prompts, picks the head
/// that carries the in-context answer; then a <c>scale</c> recipe on that head (its values' contribution) is swept over the
/// factors, each applied through <see cref="RecipeApplication"/>, counting how often the in-context vs the memorised answer wins.
/// </summary>
public static class FactualRecallExperiment
{
    public static TrainableConfig ModelConfig(FactualRecallOptions o, FactualRecallTask task) => new()
    {
        VocabSize = task.Vocab,
        DModel = o.DModel,
        NLayers = o.Layers,
        NHeads = o.Heads,
        SeqLen = FactualRecallTask.Length,
        InitStd = (float)o.InitStd,
    };

    public static FactualRecallResult Run(FactualRecallOptions o, string dir, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var task = new FactualRecallTask(o.Subjects, o.Attributes, o.StubbornRate, o.YieldingRate, o.Seed);
        const int T = FactualRecallTask.Length;
        var config = ModelConfig(o, task);
        config.Validate();
        var trainable = new TrainableTransformer(config, (ulong)o.Seed);
        var adam = new AdamW(trainable.ParameterCount) { WeightDecay = 0f };
        var heldOut = task.HeldOut();
        var facts = task.Facts();
        var curve = TokenTaskTraining.Run(trainable, adam, r => { var e = task.Sample(r); return (e.Tokens, e.Targets); }, new Random(o.Seed + 1),
            o.Batch, T, o.Steps, o.LearningRate, o.EvalEvery, step =>
            {
                var split = Split(Logits(trainable, heldOut.Select(h => h.Prompt)), task, heldOut);
                return new FactualRecallPoint(step, FactAccuracy(Logits(trainable, facts), facts), split.InContextWins);
            }, progress, ct);

        string modelDir = Path.Combine(dir, "model");
        trainable.SaveHf(modelDir);
        using var loaded = ModelLoader.Load(modelDir);
        var model = loaded.Model;

        // the head: largest mean DLA toward the in-context answer
        var sums = new double[o.Layers, o.Heads];
        foreach (var (prompt, subject, inContext) in heldOut)
        {
            ct.ThrowIfCancellationRequested();
            var dla = DirectLogitAttribution.Run(model, prompt.Tokens, task.AttributeToken(inContext), task.AttributeToken(task.Memorised[subject]), cancel: ct);
            for (int l = 0; l < o.Layers; l++)
            {
                for (int h = 0; h < o.Heads; h++)
                {
                    sums[l, h] += dla.Heads[new HeadId(l, h)];
                }
            }
        }
        var attributions = new List<HeadAttribution>();
        for (int l = 0; l < o.Layers; l++)
        {
            for (int h = 0; h < o.Heads; h++)
            {
                attributions.Add(new HeadAttribution(new HeadId(l, h), sums[l, h] / heldOut.Count));
            }
        }
        var head = attributions.MaxBy(a => a.MeanLogitDifference)!.Head;

        // the sweep: one scale recipe per factor, written to DIR/recipes and read back as `headwise eval --intervene` would
        string recipeDir = Path.Combine(dir, "recipes");
        Directory.CreateDirectory(recipeDir);
        var sweep = new List<ScalePoint>();
        foreach (double factor in o.Factors)
        {
            ct.ThrowIfCancellationRequested();
            string file = Path.Combine(recipeDir, $"scale-{factor.ToString(System.Globalization.CultureInfo.InvariantCulture)}.json");
            new Recipe($"scale {head} × {factor.ToString(System.Globalization.CultureInfo.InvariantCulture)}", [new ScaleHeads([head], factor)]).Save(file);
            using var applied = RecipeApplication.Apply(Recipe.Load(file), model);
            sweep.Add(Score(applied.Model, applied.CreateHooks(), task, heldOut, facts, factor, Path.GetRelativePath(dir, file)));
        }
        return new FactualRecallResult(o, trainable.ParameterCount, curve, heldOut.Count, attributions, head, sweep, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The sweep's measurements for one model run (with <paramref name="hooks"/>, e.g. a recipe's).</summary>
    public static ScalePoint Score(TransformerModel model, Hooks.HookSet? hooks, FactualRecallTask task,
        IReadOnlyList<(TokenExample Prompt, int Subject, int InContext)> heldOut, IReadOnlyList<TokenExample> facts, double factor, string recipe)
    {
        var split = Split(EngineLogits(model, hooks, heldOut.Select(h => h.Prompt)), task, heldOut);
        var factLogits = EngineLogits(model, hooks, facts);
        double fromPrefix = (double)facts.Select((e, i) => Generation.Sampler.ArgMax(factLogits[i]) == e.Tokens[3] ? 1 : 0).Sum() / facts.Count;
        return new ScalePoint(factor, recipe, split.InContextWins, 1 - split.InContextWins, split.Stubborn, split.Yielding,
            split.ArgmaxInContext, split.ArgmaxMemorised, split.ArgmaxOther, FactAccuracy(factLogits, facts), fromPrefix);
    }

    // answer-position logits (N, V) of the trainable model on the examples, one batched forward
    private static float[][] Logits(TrainableTransformer model, IEnumerable<TokenExample> examples)
    {
        var set = examples.ToArray();
        const int T = FactualRecallTask.Length;
        int V = model.Config.VocabSize;
        model.Forward([.. set.SelectMany(e => e.Tokens)], [.. set.SelectMany(e => e.Targets)], set.Length, T);
        var rows = new float[set.Length][];
        for (int b = 0; b < set.Length; b++)
        {
            rows[b] = model.Logits.Slice(((b * T) + T - 1) * V, V).ToArray();
        }
        return rows;
    }

    // the same through the engine (and a recipe's hooks)
    private static float[][] EngineLogits(TransformerModel model, Hooks.HookSet? hooks, IEnumerable<TokenExample> examples)
    {
        var set = examples.ToArray();
        const int T = FactualRecallTask.Length;
        int V = model.Config.VocabSize;
        var logits = model.Forward(new ModelInput([.. set.SelectMany(e => e.Tokens)], set.Length, T), hooks); // (B, T, V)
        return [.. Enumerable.Range(0, set.Length).Select(b => logits.AsSpan(((b * T) + T - 1) * V, V).ToArray())];
    }

    private static double FactAccuracy(float[][] logits, IReadOnlyList<TokenExample> facts) =>
        (double)facts.Select((e, i) => Generation.Sampler.ArgMax(logits[i]) == e.Targets[^1] ? 1 : 0).Sum() / facts.Count;

    private static (double InContextWins, double Stubborn, double Yielding, double ArgmaxInContext, double ArgmaxMemorised, double ArgmaxOther) Split(float[][] logits,
        FactualRecallTask task, IReadOnlyList<(TokenExample Prompt, int Subject, int InContext)> heldOut)
    {
        int wins = 0, argIn = 0, argMem = 0, argOther = 0;
        int[] groupWins = new int[2], groupCount = new int[2];
        for (int i = 0; i < heldOut.Count; i++)
        {
            var (_, s, a) = heldOut[i];
            int inTok = task.AttributeToken(a), memTok = task.AttributeToken(task.Memorised[s]);
            bool inContext = logits[i][inTok] > logits[i][memTok];
            int g = task.Stubborn[s] ? 0 : 1;
            groupCount[g]++;
            if (inContext)
            {
                wins++;
                groupWins[g]++;
            }
            int best = Generation.Sampler.ArgMax(logits[i]);
            argIn += best == inTok ? 1 : 0;
            argMem += best == memTok ? 1 : 0;
            argOther += best != inTok && best != memTok ? 1 : 0;
        }
        double n = heldOut.Count;
        return (wins / n, groupCount[0] == 0 ? double.NaN : (double)groupWins[0] / groupCount[0],
            groupCount[1] == 0 ? double.NaN : (double)groupWins[1] / groupCount[1], argIn / n, argMem / n, argOther / n);
    }
}
