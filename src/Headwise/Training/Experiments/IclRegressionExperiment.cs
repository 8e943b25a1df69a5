using Headwise.Analysis;

namespace Headwise.Training.Experiments;

/// <summary>Settings of <see cref="IclRegressionExperiment"/>: H heads of width dh against one head of width H·dh.</summary>
public sealed record IclOptions(int Steps = 2000, int Seed = 0, int Dx = 4, int Context = 16, int Heads = 2, int HeadDim = 5,
    int Batch = 32, double LearningRate = 1e-2, double Noise = 0, int EvalEvery = 50, int EvalPrompts = 1000, double InitStd = 0.1);

/// <summary>In-context squared error of both models at one step (same evaluation prompts).</summary>
public sealed record IclPoint(int Step, double MultiHeadMse, double SingleHeadMse);

/// <summary>Structure of a trained head: KQ on the x block and the OV path into the prediction.</summary>
/// <param name="KqDiagonalMean">mean of the diagonal of KQ's x-block (dx×dx)</param>
/// <param name="KqDiagonality">mean |diagonal| / mean |off-diagonal| of the x-block (large: diagonal)</param>
/// <param name="KqDiagonalSpread">std / |mean| of the x-block diagonal (small: homogeneous)</param>
/// <param name="OvLastEntry">OV[y→y]: the weight from the input's y coordinate to the prediction</param>
/// <param name="OvLastEntryShare">|OV[y→y]| / ‖OV[:, y]‖ (1: only the last entry is used)</param>
public sealed record IclHeadStructure(int Head, double KqDiagonalMean, double KqDiagonality, double KqDiagonalSpread,
    double OvLastEntry, double OvLastEntryShare);

/// <summary>What <see cref="IclRegressionExperiment.Run"/> found.</summary>
/// <param name="OvZeroSum">|Σ_h OV_h[y→y]| / Σ_h |OV_h[y→y]| of the multi-head model (0: the heads cancel, as in the paper)</param>
public sealed record IclResult(IclOptions Options, int MultiHeadParameters, int SingleHeadParameters, IReadOnlyList<IclPoint> Curve,
    double MultiHeadMse, double SingleHeadMse, double RidgeMse, double ZeroMse, IReadOnlyList<IclHeadStructure> MultiHeads,
    IReadOnlyList<IclHeadStructure> SingleHead, double OvZeroSum, double Seconds)
{
    /// <summary>The trained models (for heatmaps); not serialized.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SoftmaxRegressionAttention? MultiHeadModel { get; init; }

    [System.Text.Json.Serialization.JsonIgnore]
    public SoftmaxRegressionAttention? SingleHeadModel { get; init; }
}

/// <summary>
/// In-context linear regression with one layer of softmax attention: H heads of width dh against one head of width H·dh
/// (same parameter count), both trained with Adam on the same prompts. Multi-head reaches the lower in-context error; its
/// heads learn KQ ≈ ω_h·I on the x block (diagonal, homogeneous) and OV using only the y entry, with opposite signs that
/// sum to about zero — together a debiased gradient-descent step.
/// </summary>
public static class IclRegressionExperiment
{
    public static IclResult Run(IclOptions o, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var task = new IclRegressionTask(o.Dx, o.Context, o.Noise);
        var multi = new SoftmaxRegressionAttention(task.Dim, o.Heads, o.HeadDim, o.Seed, o.InitStd);
        var single = new SoftmaxRegressionAttention(task.Dim, 1, o.Heads * o.HeadDim, o.Seed + 7, o.InitStd);
        var optM = new TaskOptimizer(multi.Parameters, o.LearningRate, adam: true);
        var optS = new TaskOptimizer(single.Parameters, o.LearningRate, adam: true);
        var rng = new Random(o.Seed + 1);
        var evalRng = new Random(o.Seed + 999_983);
        var evalSet = Enumerable.Range(0, o.EvalPrompts).Select(_ => task.Sample(evalRng)).ToArray();
        var curve = new List<IclPoint>();
        for (int step = 0; step <= o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            if (step % o.EvalEvery == 0 || step == o.Steps)
            {
                var few = evalSet.Take(Math.Min(200, evalSet.Length)).ToArray();
                curve.Add(new IclPoint(step, Mse(multi, few, o.Context), Mse(single, few, o.Context)));
                progress?.Report(new AnalysisProgress("train", step, o.Steps));
            }

            if (step == o.Steps)
            {
                break;
            }

            // linear warm-down of the learning rate over the last half
            double frac = (double)step / o.Steps;
            optM.LearningRate = optS.LearningRate = o.LearningRate * (frac < 0.5 ? 1 : 2 * (1 - frac) + 0.02);
            for (int b = 0; b < o.Batch; b++)
            {
                var (ctx, q, y, _) = task.Sample(rng);
                double pm = multi.Predict(ctx, o.Context, q);
                multi.Predict(ctx, o.Context, q, dPred: 2 * (pm - y) / o.Batch);
                double ps = single.Predict(ctx, o.Context, q);
                single.Predict(ctx, o.Context, q, dPred: 2 * (ps - y) / o.Batch);
            }

            optM.Step();
            optS.Step();
        }

        double lambda = Math.Max(o.Noise * o.Noise * o.Dx, 1e-6);
        double ridge = evalSet.Average(e => Math.Pow(task.RidgePredict(e.Context, e.Query, lambda) - e.Y, 2));
        double zero = evalSet.Average(e => e.Y * e.Y);
        var mh = Enumerable.Range(0, o.Heads).Select(h => Structure(multi, h, o.Dx)).ToArray();
        double sumOv = mh.Sum(s => s.OvLastEntry);
        double sumAbs = mh.Sum(s => Math.Abs(s.OvLastEntry));
        return new IclResult(o, multi.ParameterCount, single.ParameterCount, curve, Mse(multi, evalSet, o.Context),
            Mse(single, evalSet, o.Context), ridge, zero, mh, [Structure(single, 0, o.Dx)],
            sumAbs > 0 ? Math.Abs(sumOv) / sumAbs : 0, sw.Elapsed.TotalSeconds)
        { MultiHeadModel = multi, SingleHeadModel = single };
    }

    private static double Mse(SoftmaxRegressionAttention m, (double[] Context, double[] Query, double Y, double[] W)[] set, int n) =>
        set.Average(e => Math.Pow(m.Predict(e.Context, n, e.Query) - e.Y, 2));

    /// <summary>KQ and OV statistics of one head (D = dx + 1; the last coordinate is y).</summary>
    public static IclHeadStructure Structure(SoftmaxRegressionAttention m, int h, int dx)
    {
        int dd = m.Dim;
        var kq = m.KqMatrix(h);
        var ov = m.OvMatrix(h);
        var diag = Enumerable.Range(0, dx).Select(i => kq[(i * dd) + i]).ToArray();
        double off = 0;
        int nOff = 0;
        for (int i = 0; i < dx; i++)
        {
            for (int j = 0; j < dx; j++)
            {
                if (i != j)
                {
                    off += Math.Abs(kq[(i * dd) + j]);
                    nOff++;
                }
            }
        }

        double mean = diag.Average();
        double spread = Math.Sqrt(diag.Average(v => (v - mean) * (v - mean))) / Math.Max(Math.Abs(mean), 1e-12);
        double diagonality = diag.Average(Math.Abs) / Math.Max(nOff > 0 ? off / nOff : 0, 1e-12);
        double last = ov[((dd - 1) * dd) + dd - 1];
        double colNorm = Math.Sqrt(Enumerable.Range(0, dd).Sum(r => ov[(r * dd) + dd - 1] * ov[(r * dd) + dd - 1]));
        return new IclHeadStructure(h, mean, diagonality, spread, last, colNorm > 0 ? Math.Abs(last) / colNorm : 0);
    }
}
