using Headwise.Analysis;

namespace Headwise.Training.Experiments;

/// <summary>Settings of <see cref="ListRecallExperiment"/>; defaults run in well under a minute on 2 cores.</summary>
public sealed record ListRecallOptions(int Steps = 1500, int Seed = 0, int Items = 16, int ListLength = 5, int DModel = 64,
    int Layers = 2, int Heads = 4, int Batch = 32, double LearningRate = 3e-3, int EvalEvery = 50, int EvalSamples = 256, double InitStd = 0.02);

/// <summary>Held-out loss and accuracy (answer position) at one step.</summary>
public sealed record ListRecallPoint(int Step, double Loss, double Accuracy);

/// <summary>
/// Where one head of the trained model looks from the answer position: its mean attention on the left-out item's place in
/// the first list, on each other first-list item, and on each item of the repeated list (means over evaluation samples).
/// </summary>
public sealed record ListRecallHead(int Layer, int Head, double OnMissingItem, double OnOtherFirstListItem, double OnSecondListItem);

/// <summary>What <see cref="ListRecallExperiment.Run"/> found.</summary>
public sealed record ListRecallResult(ListRecallOptions Options, int Parameters, double ChanceAccuracy, IReadOnlyList<ListRecallPoint> Curve,
    IReadOnlyList<ListRecallHead> Heads, double FinalAccuracy, double Seconds);

/// <summary>
/// Recall from a list [Talking Heads' "Laundry List" task, in tokens]: [BOS, i₁…i_n, SEP, the list again without one item,
/// shuffled, ANS] → the left-out item. A small GPT-2 (<see cref="TrainableTransformer"/>) is trained on the answer token
/// only (every other target ignored); the result is held-out accuracy against chance (1/n when the model answers from the
/// list) and, per head, how the answer position's attention splits between the left-out item, the other listed items and
/// the repeated list — the read-out that answers the task (the sum of the first list minus the sum of the second is the
/// missing item) shows up as attention on both lists.
/// </summary>
public static class ListRecallExperiment
{
    public static TrainableConfig ModelConfig(ListRecallOptions o, ListRecallTask task) => new()
    {
        VocabSize = task.Vocab,
        DModel = o.DModel,
        NLayers = o.Layers,
        NHeads = o.Heads,
        SeqLen = task.Length,
        InitStd = (float)o.InitStd,
    };

    public static ListRecallResult Run(ListRecallOptions o, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default) =>
        Train(o, progress, ct).Result;

    /// <summary><see cref="Run"/>, also returning the trained model (the Talking Heads experiment edits it); the model's attention
    /// variant can be chosen (docs/variants.md).</summary>
    public static (ListRecallResult Result, TrainableTransformer Model) Train(ListRecallOptions o, IProgress<AnalysisProgress>? progress = null,
        CancellationToken ct = default, string attentionVariant = AttentionVariants.Softmax)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var task = new ListRecallTask(o.Items, o.ListLength);
        int T = task.Length;
        var config = ModelConfig(o, task) with { AttentionVariant = attentionVariant };
        config.Validate();
        var model = new TrainableTransformer(config, (ulong)o.Seed);
        var adam = new AdamW(model.ParameterCount) { WeightDecay = 0f };
        var rng = new Random(o.Seed + 1);
        var evalSet = Enumerable.Range(0, o.EvalSamples).Select(i => task.Sample(new Random(o.Seed + 1_000_003 + i))).ToArray();
        var curve = TokenTaskTraining.Run(model, adam, r => { var e = task.Sample(r); return (e.Tokens, e.Targets); }, rng, o.Batch, T,
            o.Steps, o.LearningRate, o.EvalEvery, step => Evaluate(model, evalSet, step), progress, ct);

        // the last forward was the final evaluation: read every head's attention from the answer position
        var heads = new List<ListRecallHead>();
        int n = o.ListLength, answerPos = T - 1;
        for (int l = 0; l < o.Layers; l++)
        {
            var att = model.AttentionPattern(l); // (B, NH, T, T)
            for (int h = 0; h < o.Heads; h++)
            {
                double missing = 0, others = 0, second = 0;
                for (int b = 0; b < evalSet.Length; b++)
                {
                    var row = att.Slice((((b * o.Heads) + h) * T + answerPos) * T, T);
                    var ex = evalSet[b];
                    int answer = ex.Targets[^1];
                    for (int p = 1; p <= n; p++)
                    {
                        if (ex.Tokens[p] == answer)
                        {
                            missing += row[p];
                        }
                        else
                        {
                            others += row[p] / (n - 1);
                        }
                    }
                    for (int p = n + 2; p < n + 2 + (n - 1); p++)
                    {
                        second += row[p] / (n - 1);
                    }
                }
                heads.Add(new ListRecallHead(l, h, missing / evalSet.Length, others / evalSet.Length, second / evalSet.Length));
            }
        }
        return (new ListRecallResult(o, model.ParameterCount, 1.0 / n, curve, heads, curve[^1].Accuracy, sw.Elapsed.TotalSeconds), model);
    }

    // One batched forward over the evaluation set: mean loss and accuracy of the answer token.
    private static ListRecallPoint Evaluate(TrainableTransformer model, TokenExample[] set, int step)
    {
        int T = set[0].Tokens.Length, V = model.Config.VocabSize;
        var tokens = set.SelectMany(e => e.Tokens).ToArray();
        var targets = set.SelectMany(e => e.Targets).ToArray();
        double loss = model.Forward(tokens, targets, set.Length, T);
        var logits = model.Logits;
        int correct = 0;
        for (int b = 0; b < set.Length; b++)
        {
            int best = Generation.Sampler.ArgMax(logits.Slice(((b * T) + T - 1) * V, V));
            correct += best == set[b].Targets[^1] ? 1 : 0;
        }
        return new ListRecallPoint(step, loss, (double)correct / set.Length);
    }
}
