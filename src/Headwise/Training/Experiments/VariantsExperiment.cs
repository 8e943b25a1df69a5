using Headwise.Analysis;

namespace Headwise.Training.Experiments;

/// <summary>Settings of <see cref="VariantsExperiment"/>: the task, the step budget every variant gets, the seed.</summary>
/// <param name="Steps">null: the task experiment's default (or the quick budget).</param>
/// <param name="LearningRates">null: the task experiment's own learning rate; else every variant is trained once per rate (a sweep).</param>
public sealed record VariantsOptions(string Task = "induction", bool Quick = false, int? Steps = null, int Seed = 0, IReadOnlyList<string>? Variants = null,
    IReadOnlyList<double>? LearningRates = null)
{
    public static readonly string[] Tasks = ["induction", "list-recall", "icl-regression"];

    /// <summary>--quick budgets: every variant in a few minutes on 2 quiet cores (docs/variants.md has the measured run).</summary>
    public int StepBudget => Steps ?? (Task, Quick) switch
    {
        ("induction", true) => 2000,
        ("induction", false) => new InductionOptions().Steps,
        ("icl-regression", true) => 1000,
        ("icl-regression", false) => new IclOptions().Steps,
        (_, true) => 800,
        _ => new ListRecallOptions().Steps,
    };
}

/// <summary>
/// One trained variant: held-out loss and accuracy on the task's predictable targets (induction: the repeated copy;
/// list-recall: the answer), the trainable parameter count, the training time, and for induction the best head's induction
/// and previous-token scores (null elsewhere). TrainingOnly: this model's variant has no inference-engine equivalent (its checkpoint would be training-only).
/// </summary>
public sealed record VariantRun(string Variant, double HeldoutLoss, double? HeldoutAccuracy, int Parameters, double Seconds,
    double? InductionScore, double? PreviousTokenScore, string? InductionHead, string? PreviousTokenHead, bool TrainingOnly, double LearningRate = double.NaN);

/// <summary>What <see cref="VariantsExperiment.Run"/> found; ChanceLoss: ln(V−1) for induction, ln(list length) for list-recall,
/// for icl-regression the mean squared error of predicting 0 (BaselineLoss: of the least-squares solution on each prompt's
/// context; the accuracies are null there).</summary>
public sealed record VariantsResult(string Task, double ChanceLoss, double? ChanceAccuracy, int Steps, int HeldoutSamples, IReadOnlyList<VariantRun> Variants,
    double? BaselineLoss = null);

/// <summary>
/// Trains every attention variant (<see cref="AttentionVariants.All"/>) on one token task with the same model shape, seed,
/// data and step budget — the task experiments' own training (<see cref="InductionExperiment"/>, <see cref="ListRecallExperiment"/>)
/// with only the attention swapped — and scores each on a held-out set drawn with another seed.
/// </summary>
public static class VariantsExperiment
{
    private const int HeldoutSamples = 256;

    public static VariantsResult Run(VariantsOptions o, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default)
    {
        if (!VariantsOptions.Tasks.Contains(o.Task))
        {
            throw new InvalidInputException($"--task: unknown task '{o.Task}' (known: {string.Join(", ", VariantsOptions.Tasks)})");
        }
        var variants = o.Variants ?? AttentionVariants.All;
        int steps = o.StepBudget;
        var runs = new List<VariantRun>();
        double chanceLoss;
        double? chanceAccuracy;
        if (o.Task == "icl-regression")
        {
            return IclRegression(o, variants, steps, progress, ct);
        }
        if (o.Task == "induction")
        {
            var options = new InductionOptions(Steps: steps, Seed: o.Seed, EvalEvery: Math.Max(1, steps / 10));
            var task = new InductionTask(options.Vocab, options.Half);
            var heldout = Enumerable.Range(0, HeldoutSamples).Select(i => task.Sample(new Random(o.Seed + 7_000_003 + i))).ToArray();
            chanceLoss = Math.Log(options.Vocab - 1);
            chanceAccuracy = 1.0 / (options.Vocab - 1);
            foreach (var (v, lr) in Grid(variants, o.LearningRates, options.LearningRate))
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var (r, model) = InductionExperiment.Train(options with { LearningRate = lr }, progress, ct, v);
                double seconds = sw.Elapsed.TotalSeconds;
                var (loss, acc) = Score(model, heldout.Select(e => (e.Tokens, e.Targets)).ToArray(), (b, i) => InductionTask.IsRepeatTarget(heldout[b], i));
                runs.Add(new VariantRun(v, loss, acc, model.ParameterCount, seconds, r.TopInductionHead.Induction, r.TopPreviousTokenHead.PreviousToken,
                    $"{r.TopInductionHead.Layer}.{r.TopInductionHead.Head}", $"{r.TopPreviousTokenHead.Layer}.{r.TopPreviousTokenHead.Head}",
                    model.VariantExportBlocker is not null, lr));
            }
        }
        else
        {
            var options = new ListRecallOptions(Steps: steps, Seed: o.Seed, EvalEvery: Math.Max(1, steps / 10), EvalSamples: 64);
            var task = new ListRecallTask(options.Items, options.ListLength);
            var heldout = Enumerable.Range(0, HeldoutSamples).Select(i => task.Sample(new Random(o.Seed + 7_000_003 + i))).ToArray();
            chanceLoss = Math.Log(options.ListLength);
            chanceAccuracy = 1.0 / options.ListLength;
            foreach (var (v, lr) in Grid(variants, o.LearningRates, options.LearningRate))
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var (_, model) = ListRecallExperiment.Train(options with { LearningRate = lr }, progress, ct, v);
                double seconds = sw.Elapsed.TotalSeconds;
                var (loss, acc) = Score(model, heldout.Select(e => (e.Tokens, e.Targets)).ToArray(), (b, i) => heldout[b].Targets[i] >= 0);
                runs.Add(new VariantRun(v, loss, acc, model.ParameterCount, seconds, null, null, null, null, model.VariantExportBlocker is not null, lr));
            }
        }
        return new VariantsResult(o.Task, chanceLoss, chanceAccuracy, steps, HeldoutSamples, runs);
    }

    // icl-regression: IclRegressionExperiment's prompts (x_i, y_i) … (x_q, 0) fed as continuous inputs to a one-layer
    // attention-only TrainableTransformer (d_model = dx + 1, its heads and head size, no norms, biases or positions);
    // the prediction is the query row's y coordinate of the output (the attention's write, the input there being 0),
    // trained on the squared error with Adam and the experiment's learning-rate warm-down
    private static VariantsResult IclRegression(VariantsOptions o, IReadOnlyList<string> variants, int steps, IProgress<AnalysisProgress>? progress,
        CancellationToken ct)
    {
        var io = new IclOptions(Steps: steps, Seed: o.Seed);
        var task = new IclRegressionTask(io.Dx, io.Context, io.Noise);
        int T = io.Context + 1, C = task.Dim;
        var heldout = Enumerable.Range(0, HeldoutSamples).Select(i => task.Sample(new Random(o.Seed + 7_000_003 + i))).ToArray();
        double chance = heldout.Average(e => e.Y * e.Y);
        double baseline = heldout.Average(e => Math.Pow(task.RidgePredict(e.Context, e.Query, 1e-6) - e.Y, 2));
        void Fill(float[] x, int b, (double[] Context, double[] Query, double Y, double[] W) e)
        {
            for (int i = 0; i < io.Context * C; i++) x[b * T * C + i] = (float)e.Context[i];
            for (int i = 0; i < C; i++) x[(b * T + io.Context) * C + i] = (float)e.Query[i];
        }
        float Prediction(ReadOnlySpan<float> output, int b) => output[(b * T + io.Context) * C + io.Dx];
        var runs = new List<VariantRun>();
        foreach (var (v, lr) in Grid(variants, o.LearningRates, io.LearningRate))
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var model = new TrainableTransformer(new TrainableConfig
            {
                VocabSize = 1,
                DModel = C,
                NLayers = 1,
                NHeads = io.Heads,
                DHead = io.HeadDim,
                SeqLen = T,
                AttentionOnly = true,
                UseNorm = false,
                UseBias = false,
                UsePositions = false,
                InitStd = (float)io.InitStd,
                ScaleResidualInit = false,
                AttentionVariant = v,
                FeatureSeed = o.Seed,
            }, (ulong)o.Seed);
            var adam = new AdamW(model.ParameterCount) { WeightDecay = 0 };
            var rng = new Random(o.Seed + 1);
            var x = new float[io.Batch * T * C];
            var dOut = new float[x.Length];
            var ys = new double[io.Batch];
            for (int step = 0; step < steps; step++)
            {
                ct.ThrowIfCancellationRequested();
                if (step % Math.Max(1, steps / 20) == 0) progress?.Report(new AnalysisProgress($"train {v}", step, steps));
                for (int b = 0; b < io.Batch; b++)
                {
                    var e = task.Sample(rng);
                    Fill(x, b, e);
                    ys[b] = e.Y;
                }
                model.ZeroGrad();
                var output = model.ForwardInputs(x, io.Batch, T);
                Array.Clear(dOut);
                for (int b = 0; b < io.Batch; b++) dOut[(b * T + io.Context) * C + io.Dx] = (float)(2 * (Prediction(output, b) - ys[b]) / io.Batch);
                model.BackwardInputs(dOut);
                double frac = (double)step / steps;
                adam.Step(model.Params, model.Grads, model.Parameters, (float)(lr * (frac < 0.5 ? 1 : 2 * (1 - frac) + 0.02)), step + 1);
            }
            double seconds = sw.Elapsed.TotalSeconds;
            var all = new float[HeldoutSamples * T * C];
            for (int b = 0; b < HeldoutSamples; b++) Fill(all, b, heldout[b]);
            var outAll = model.ForwardInputs(all, HeldoutSamples, T);
            double mse = 0;
            for (int b = 0; b < HeldoutSamples; b++) mse += Math.Pow(Prediction(outAll, b) - heldout[b].Y, 2) / HeldoutSamples;
            runs.Add(new VariantRun(v, mse, null, model.ParameterCount, seconds, null, null, null, null, model.VariantExportBlocker is not null, lr));
        }
        return new VariantsResult(o.Task, chance, null, steps, HeldoutSamples, runs, baseline);
    }

    // every variant at every learning rate of the sweep (or at the task's own rate), variant by variant
    private static IEnumerable<(string Variant, double LearningRate)> Grid(IReadOnlyList<string> variants, IReadOnlyList<double>? rates, double taskRate)
        => variants.SelectMany(v => (rates ?? [taskRate]).Select(lr => (v, lr)));

    // Mean cross-entropy and argmax accuracy over the scored targets of one batched forward.
    private static (double Loss, double Accuracy) Score(TrainableTransformer model, (int[] Tokens, int[] Targets)[] set, Func<int, int, bool> scored)
    {
        int T = set[0].Tokens.Length, V = model.Config.VocabSize;
        model.Forward(set.SelectMany(e => e.Tokens).ToArray(), set.SelectMany(e => e.Targets).ToArray(), set.Length, T);
        var losses = model.TokenLosses;
        var logits = model.Logits;
        double loss = 0;
        int n = 0, correct = 0;
        for (int b = 0; b < set.Length; b++)
        {
            for (int i = 0; i < T; i++)
            {
                if (!scored(b, i)) continue;
                loss += losses[b * T + i];
                correct += Generation.Sampler.ArgMax(logits.Slice((b * T + i) * V, V)) == set[b].Targets[i] ? 1 : 0;
                n++;
            }
        }
        return (loss / n, (double)correct / n);
    }
}
