using Headwise.Analysis;

namespace Headwise.Training.Experiments;

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
    /// <summary>The experiment's model: one layer, one head of width vocab, attention only, fixed one-hot embeddings, no
    /// positions, norms or biases; W_OV factored (W_O·W_V) or combined.</summary>
    public static TrainableConfig ModelConfig(int vocab, bool factoredOv, double initStd) => new()
    {
        VocabSize = vocab,
        DModel = vocab,
        NLayers = 1,
        NHeads = 1,
        DHead = vocab,
        SeqLen = 2,
        AttentionOnly = true,
        UseNorm = false,
        UseBias = false,
        UsePositions = false,
        OneHotEmbeddings = true,
        CombinedOV = !factoredOv,
        InitStd = (float)initStd,
        ScaleResidualInit = false,
    };

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
        var model = new TrainableTransformer(ModelConfig(v, factoredOv, o.InitStd), (ulong)o.Seed);
        var curve = new List<OcrPoint>();
        string name = factoredOv ? "factored" : "combined";
        float lr = (float)o.LearningRate;
        for (int step = 0; step <= o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            bool eval = step % o.EvalEvery == 0 || step == o.Steps;
            // full batch: every training prompt in one forward
            model.ZeroGrad();
            var (trainAcc, loss) = Score(model, train);
            if (step < o.Steps)
            {
                // plain gradient descent (its implicit bias on the factorization is what the experiment is about)
                model.Backward();
                var p = model.Params;
                var g = model.Grads;
                for (int i = 0; i < p.Length; i++)
                {
                    p[i] -= lr * g[i];
                }
            }

            if (eval)
            {
                var (acc, tloss) = Score(model, test);
                curve.Add(new OcrPoint(step, loss, trainAcc, acc, tloss, Linalg.NuclearNorm(model.OvMatrix(0, 0), v, v)));
                progress?.Report(new AnalysisProgress(name, step, o.Steps));
            }
        }

        return new OcrRun(name, model.ParameterCount, curve, curve[^1]);
    }

    // One forward over the prompts [s, r] (B × 2); accuracy of the argmax at position 1 and the mean loss there.
    private static (double Accuracy, double Loss) Score(TrainableTransformer model, IReadOnlyList<TokenExample> set)
    {
        var tokens = set.SelectMany(e => e.Tokens).ToArray();
        var targets = set.SelectMany(e => e.Targets).ToArray();
        double loss = model.Forward(tokens, targets, set.Count, 2);
        int n = model.Config.VocabSize;
        var logits = model.Logits;
        int correct = 0;
        for (int b = 0; b < set.Count; b++)
        {
            int best = Generation.Sampler.ArgMax(logits.Slice(((b * 2) + 1) * n, n));
            correct += best == set[b].Targets[1] ? 1 : 0;
        }

        return ((double)correct / set.Count, loss);
    }
}
