using Headwise.Analysis;

namespace Headwise.Training.Tasks;

/// <summary>Settings of <see cref="OcrExperiment"/>.</summary>
public sealed record OcrOptions(int Steps = 1500, int Seed = 0, int Subjects = 60, int Objects = 6, double TrainFraction = 0.5,
    double LearningRate = 0.5, double InitStd = 0.01, int EvalEvery = 50);

/// <summary>One evaluation of one model variant.</summary>
public sealed record OcrPoint(int Step, double TrainLoss, double TrainAccuracy, double HeldOutAccuracy, double HeldOutLoss, double OvNuclearNorm);

/// <summary>One model variant's training run.</summary>
public sealed record OcrRun(string Variant, int Parameters, IReadOnlyList<OcrPoint> Curve, OcrPoint Final);

/// <summary>What <see cref="OcrExperiment.Run"/> found: the factored and the combined model on the same data.</summary>
public sealed record OcrResult(OcrOptions Options, int TrainExamples, int HeldOutExamples, double ChanceAccuracy,
    OcrRun Factored, OcrRun Combined, double Seconds);

/// <summary>
/// Out-of-context reasoning: one-layer, single-head, attention-only models with fixed one-hot embeddings, trained by full-batch
/// gradient descent from a small initialization on every fact and some implications, tested on held-out implications.
/// The model with factored W_O·W_V generalizes to the held-out implications (gradient descent on the factorization is biased
/// to a low nuclear norm of W_OV, which fills in the missing implications); the combined W_OV gets no gradient toward them.
/// </summary>
public static class OcrExperiment
{
    public static OcrResult Run(OcrOptions o, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var task = new OcrTask(o.Subjects, o.Objects, o.TrainFraction, o.Seed);
        var train = task.Train();
        var test = task.Test();
        var factored = Train(task, train, test, factoredOv: true, o, progress, ct);
        var combined = Train(task, train, test, factoredOv: false, o, progress, ct);
        return new OcrResult(o, train.Count, test.Count, 1.0 / o.Objects, factored, combined, sw.Elapsed.TotalSeconds);
    }

    private static OcrRun Train(OcrTask task, IReadOnlyList<TokenExample> train, IReadOnlyList<TokenExample> test, bool factoredOv,
        OcrOptions o, IProgress<AnalysisProgress>? progress, CancellationToken ct)
    {
        int v = task.Vocab;
        var model = new AttentionOnlyModel(new AttentionOnlyConfig(v, v, 1, 1, v, 0, factoredOv, OneHotEmbeddings: true, InitStd: o.InitStd), o.Seed);
        var opt = new TaskOptimizer(model.Parameters, o.LearningRate, adam: false);
        var curve = new List<OcrPoint>();
        string name = factoredOv ? "factored" : "combined";
        for (int step = 0; step <= o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            bool eval = step % o.EvalEvery == 0 || step == o.Steps;
            double loss = 0;
            int correct = 0;
            foreach (var ex in train)
            {
                var tr = model.Forward(ex.Tokens);
                loss += model.Loss(tr, ex.Targets, backward: step < o.Steps, weight: 1.0 / train.Count);
                correct += ArgMax(tr.Logits, 1, v) == ex.Targets[1] ? 1 : 0;
            }

            if (eval)
            {
                var (acc, tloss) = Score(model, test);
                curve.Add(new OcrPoint(step, loss / train.Count, (double)correct / train.Count, acc, tloss,
                    Linalg.NuclearNorm(model.OvMatrix(0, 0), v, v)));
                progress?.Report(new AnalysisProgress(name, step, o.Steps));
            }

            if (step < o.Steps)
            {
                opt.Step();
            }
        }

        return new OcrRun(name, model.Parameters.Where(p => p.Trainable).Sum(p => p.W.Length), curve, curve[^1]);
    }

    private static (double Accuracy, double Loss) Score(AttentionOnlyModel model, IReadOnlyList<TokenExample> set)
    {
        int correct = 0;
        double loss = 0;
        foreach (var ex in set)
        {
            var tr = model.Forward(ex.Tokens);
            loss += model.Loss(tr, ex.Targets, backward: false);
            correct += ArgMax(tr.Logits, 1, model.Config.Vocab) == ex.Targets[1] ? 1 : 0;
        }

        return ((double)correct / set.Count, loss / set.Count);
    }

    private static int ArgMax(double[] logits, int row, int n)
    {
        int best = 0;
        for (int j = 1; j < n; j++)
        {
            if (logits[(row * n) + j] > logits[(row * n) + best])
            {
                best = j;
            }
        }

        return best;
    }
}
