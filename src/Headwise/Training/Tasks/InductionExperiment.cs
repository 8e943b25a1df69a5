using Headwise.Analysis;

namespace Headwise.Training.Tasks;

/// <summary>Settings of <see cref="InductionExperiment"/>; defaults run in about a minute on 2 cores.</summary>
public sealed record InductionOptions(int Steps = 3000, int Seed = 0, int Vocab = 24, int Half = 12, int DModel = 32,
    int Heads = 2, int HeadDim = 16, int Batch = 8, double LearningRate = 1e-2, int EvalEvery = 25, int EvalSamples = 32, double InitStd = 0.1);

/// <summary>Loss on the unpredictable first copy and the predictable second copy at one step.</summary>
public sealed record InductionPoint(int Step, double LossFirstCopy, double LossRepeat);

/// <summary>Induction and previous-token scores of one head of the trained model (mean over evaluation samples).</summary>
public sealed record InductionHeadScore(int Layer, int Head, double Induction, double PreviousToken);

/// <summary>What <see cref="InductionExperiment.Run"/> found.</summary>
public sealed record InductionResult(InductionOptions Options, int Parameters, double ChanceLoss, IReadOnlyList<InductionPoint> Curve,
    IReadOnlyList<InductionHeadScore> Heads, InductionHeadScore TopInductionHead, InductionHeadScore TopPreviousTokenHead,
    int? DropStep, double FinalLossFirstCopy, double FinalLossRepeat, double Seconds);

/// <summary>
/// Trains a two-layer attention-only transformer on repeated random sequences and looks for induction heads: the loss on
/// the second copy falls far below chance (ln(V−1)) when a layer-0 previous-token head and a layer-1 induction head form;
/// the induction score (attention from a repeated token to the token after its first occurrence) picks out the head.
/// </summary>
public static class InductionExperiment
{
    public static InductionResult Run(InductionOptions o, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var task = new InductionTask(o.Vocab, o.Half);
        var model = new AttentionOnlyModel(new AttentionOnlyConfig(o.Vocab, o.DModel, 2, o.Heads, o.HeadDim, task.Length, InitStd: o.InitStd), o.Seed);
        var opt = new TaskOptimizer(model.Parameters, o.LearningRate, adam: true);
        var rng = new Random(o.Seed + 1);
        var evalSet = Enumerable.Range(0, o.EvalSamples).Select(_ => task.Sample(new Random(o.Seed + 1_000_003 + _))).ToArray();
        var curve = new List<InductionPoint>();
        for (int step = 0; step <= o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            if (step % o.EvalEvery == 0 || step == o.Steps)
            {
                curve.Add(Evaluate(model, evalSet, step));
                progress?.Report(new AnalysisProgress("train", step, o.Steps));
            }

            if (step == o.Steps)
            {
                break;
            }

            for (int b = 0; b < o.Batch; b++)
            {
                var ex = task.Sample(rng);
                model.Loss(model.Forward(ex.Tokens), ex.Targets, backward: true, weight: 1.0 / o.Batch);
            }

            opt.Step();
        }

        var heads = new List<InductionHeadScore>();
        var traces = evalSet.Select(e => model.Forward(e.Tokens)).ToArray();
        for (int l = 0; l < 2; l++)
        {
            for (int h = 0; h < o.Heads; h++)
            {
                double ind = 0;
                double prev = 0;
                foreach (var tr in traces)
                {
                    var (i, p) = InductionTask.Scores(evalSet[Array.IndexOf(traces, tr)], tr.Pattern(l, h, o.Heads));
                    ind += i;
                    prev += p;
                }

                heads.Add(new InductionHeadScore(l, h, ind / traces.Length, prev / traces.Length));
            }
        }

        double chance = Math.Log(o.Vocab - 1);
        var last = curve[^1];
        // The drop: first evaluation where the repeat loss is below halfway between chance and its final value.
        double half = (chance + last.LossRepeat) / 2;
        int? drop = last.LossRepeat < chance * 0.75 ? curve.First(p => p.LossRepeat < half).Step : null;
        return new InductionResult(o, model.Parameters.Where(p => p.Trainable).Sum(p => p.W.Length), chance, curve, heads,
            heads.MaxBy(h => h.Induction)!, heads.MaxBy(h => h.PreviousToken)!, drop, last.LossFirstCopy, last.LossRepeat,
            sw.Elapsed.TotalSeconds);
    }

    private static InductionPoint Evaluate(AttentionOnlyModel model, InductionExample[] set, int step)
    {
        double first = 0;
        double rep = 0;
        foreach (var ex in set)
        {
            var tr = model.Forward(ex.Tokens);
            var firstT = ex.Targets.Select((y, i) => InductionTask.IsRandomTarget(ex, i) ? y : -1).ToArray();
            var repT = ex.Targets.Select((y, i) => InductionTask.IsRepeatTarget(ex, i) ? y : -1).ToArray();
            first += model.Loss(tr, firstT, backward: false);
            rep += model.Loss(tr, repT, backward: false);
        }

        return new InductionPoint(step, first / set.Length, rep / set.Length);
    }
}
