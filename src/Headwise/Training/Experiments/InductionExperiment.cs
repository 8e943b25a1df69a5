using Headwise.Analysis;

namespace Headwise.Training.Experiments;

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
    /// <summary>The experiment's model: two attention-only layers, learned positions, untied embeddings, no norms, no biases.</summary>
    public static TrainableConfig ModelConfig(InductionOptions o, int seqLen) => new()
    {
        VocabSize = o.Vocab,
        DModel = o.DModel,
        NLayers = 2,
        NHeads = o.Heads,
        DHead = o.HeadDim,
        SeqLen = seqLen,
        AttentionOnly = true,
        UseNorm = false,
        UseBias = false,
        TiedEmbeddings = false,
        InitStd = (float)o.InitStd,
        ScaleResidualInit = false,
    };

    public static InductionResult Run(InductionOptions o, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default) =>
        Train(o, progress, ct).Result;

    /// <summary><see cref="Run"/> with the model's attention variant (docs/variants.md), also returning the trained model.</summary>
    public static (InductionResult Result, TrainableTransformer Model) Train(InductionOptions o, IProgress<AnalysisProgress>? progress = null,
        CancellationToken ct = default, string attentionVariant = AttentionVariants.Softmax)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var task = new InductionTask(o.Vocab, o.Half);
        int T = task.Length;
        var model = new TrainableTransformer(ModelConfig(o, T) with { AttentionVariant = attentionVariant }, (ulong)o.Seed);
        // Adam without weight decay, constant learning rate
        var adam = new AdamW(model.ParameterCount) { Beta2 = 0.999f, WeightDecay = 0f };
        var rng = new Random(o.Seed + 1);
        var evalSet = Enumerable.Range(0, o.EvalSamples).Select(i => task.Sample(new Random(o.Seed + 1_000_003 + i))).ToArray();
        var curve = TokenTaskTraining.Run(model, adam, r => { var e = task.Sample(r); return (e.Tokens, e.Targets); }, rng, o.Batch, T,
            o.Steps, o.LearningRate, o.EvalEvery, step => Evaluate(model, evalSet, step), progress, ct);

        // the last forward was the evaluation at the final step: its attention patterns give the head scores
        var heads = new List<InductionHeadScore>();
        for (int l = 0; l < 2; l++)
        {
            var att = model.AttentionPattern(l);
            for (int h = 0; h < o.Heads; h++)
            {
                double ind = 0;
                double prev = 0;
                for (int b = 0; b < evalSet.Length; b++)
                {
                    var pattern = new double[T * T];
                    var a = att.Slice(((b * o.Heads) + h) * T * T, T * T);
                    for (int i = 0; i < pattern.Length; i++)
                    {
                        pattern[i] = a[i];
                    }

                    var (si, sp) = InductionTask.Scores(evalSet[b], pattern);
                    ind += si;
                    prev += sp;
                }

                heads.Add(new InductionHeadScore(l, h, ind / evalSet.Length, prev / evalSet.Length));
            }
        }

        double chance = Math.Log(o.Vocab - 1);
        var last = curve[^1];
        // The drop: first evaluation where the repeat loss is below halfway between chance and its final value.
        double half = (chance + last.LossRepeat) / 2;
        int? drop = last.LossRepeat < chance * 0.75 ? curve.First(p => p.LossRepeat < half).Step : null;
        return (new InductionResult(o, model.ParameterCount, chance, curve, heads,
            heads.MaxBy(h => h.Induction)!, heads.MaxBy(h => h.PreviousToken)!, drop, last.LossFirstCopy, last.LossRepeat,
            sw.Elapsed.TotalSeconds), model);
    }

    // One batched forward over the evaluation set; per-sample mean losses on the random part and on the repeated copy.
    private static InductionPoint Evaluate(TrainableTransformer model, InductionExample[] set, int step)
    {
        int T = set[0].Tokens.Length;
        var tokens = set.SelectMany(e => e.Tokens).ToArray();
        var targets = set.SelectMany(e => e.Targets).ToArray();
        model.Forward(tokens, targets, set.Length, T);
        var losses = model.TokenLosses;
        double first = 0;
        double rep = 0;
        for (int b = 0; b < set.Length; b++)
        {
            var ex = set[b];
            double f = 0, r = 0;
            int nf = 0, nr = 0;
            for (int i = 0; i < T; i++)
            {
                if (InductionTask.IsRandomTarget(ex, i))
                {
                    f += losses[(b * T) + i];
                    nf++;
                }
                else if (InductionTask.IsRepeatTarget(ex, i))
                {
                    r += losses[(b * T) + i];
                    nr++;
                }
            }

            first += nf > 0 ? f / nf : 0;
            rep += nr > 0 ? r / nr : 0;
        }

        return new InductionPoint(step, first / set.Length, rep / set.Length);
    }
}
