using Headwise.Compute;
using Headwise.Models;

namespace Headwise.Evaluation;

/// <summary>Per-token negative log-likelihood of a sequence, and the perplexity exp(mean nll).</summary>
public sealed record PerplexityResult(float[] Nll, double MeanNll, double Perplexity, int Windows);

public static class Perplexity
{
    /// <summary>
    /// nll[i] = −log softmax(logits at i)[ids[i + 1]] for i in 0..n−2. Sequences longer than <paramref name="window"/> are scored
    /// window by window, each advancing by <paramref name="stride"/>; a window scores only the targets no earlier window scored.
    /// <paramref name="hooks"/> fire in every window's forward (e.g. an intervention recipe's).
    /// </summary>
    public static PerplexityResult Evaluate(TransformerModel model, int[] ids, int window, int stride, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancel = default, Hooks.HookSet? hooks = null)
    {
        Check(model, ids, window, stride);
        int V = model.Config.VocabSize;
        var nll = new float[ids.Length - 1];
        int windows = 0;
        float[]? logits = null; // reused by every window of the same length
        foreach (var w in Windows(ids.Length, window, stride))
        {
            cancel.ThrowIfCancellationRequested();
            logits = model.Forward(ModelInput.Single(ids[w.Begin..w.End]), hooks, logits);
            windows++;
            ScoreWindow(logits.AsSpan(0, (w.End - w.Begin) * V), V, ids, w, nll);
            progress?.Report((w.End - 1, ids.Length - 1));
        }
        return Result(nll, windows);
    }

    /// <summary>Refuses what <see cref="Evaluate"/> cannot score: fewer than 2 tokens, a window or stride out of range, ids
    /// outside the vocabulary.</summary>
    public static void Check(TransformerModel model, int[] ids, int window, int stride)
    {
        if (ids.Length < 2)
        {
            throw new InvalidInputException($"need at least 2 tokens to score a prediction (got {ids.Length})");
        }
        CheckWindow(ids.Length, window, stride, model.Config.MaxPositions);
        new ModelInput(ids, 1, ids.Length).Validate(model.Config.VocabSize);
    }

    /// <summary>One forward of the sliding window: tokens [Begin, End) go in, and targets [FirstTarget, End) are scored (the
    /// ones no earlier window scored).</summary>
    public readonly record struct Window(int Begin, int End, int FirstTarget);

    /// <summary>The windows <see cref="Evaluate"/> runs over <paramref name="n"/> tokens, in order: each advances by
    /// <paramref name="stride"/> and scores only targets no earlier window scored; the last ends at <paramref name="n"/>.</summary>
    public static List<Window> Windows(int n, int window, int stride)
    {
        var list = new List<Window>();
        int scoredUpTo = 1; // targets 1..scoredUpTo-1 are done
        for (int begin = 0; scoredUpTo < n; begin += stride)
        {
            int end = Math.Min(begin + window, n);
            list.Add(new Window(begin, end, Math.Max(scoredUpTo, begin + 1)));
            scoredUpTo = end;
        }
        return list;
    }

    /// <summary>nll[target − 1] for the targets of window <paramref name="w"/>, from its logits [End − Begin, V] (row r predicts
    /// ids[Begin + r + 1]) — a row of a padded batch works the same, as padding after a sequence leaves its logits unchanged.</summary>
    public static void ScoreWindow(ReadOnlySpan<float> logits, int V, int[] ids, Window w, Span<float> nll) =>
        ScoreTargets(logits[((w.FirstTarget - 1 - w.Begin) * V)..], V, ids, w, nll);

    /// <summary>As <see cref="ScoreWindow"/>, from the logits of the window's scored rows only ([End − FirstTarget, V]: row r
    /// predicts ids[FirstTarget + r]) — what a forward with <see cref="TargetRows"/> returns.</summary>
    public static void ScoreTargets(ReadOnlySpan<float> targetLogits, int V, int[] ids, Window w, Span<float> nll)
    {
        for (int target = w.FirstTarget; target < w.End; target++)
        {
            int row = target - w.FirstTarget;
            nll[target - 1] = (float)-LogSoftmaxAt(targetLogits.Slice(row * V, V), ids[target]);
        }
    }

    /// <summary>The rows of window <paramref name="w"/>'s forward whose logits it scores: (first row, count).</summary>
    public static (int Start, int Count) TargetRows(Window w) => (w.FirstTarget - 1 - w.Begin, w.End - w.FirstTarget);

    /// <summary>The mean and perplexity of per-token nll, as <see cref="Evaluate"/> reports them.</summary>
    public static PerplexityResult Result(float[] nll, int windows)
    {
        double mean = nll.Average(x => (double)x);
        return new PerplexityResult(nll, mean, Math.Exp(mean), windows);
    }

    /// <summary>The sliding window's rules, shared by every command that slides one: window in [2, context], stride in
    /// [1, window]; and when a text needs more than one window, stride below the window — a window that starts where the last
    /// one ended has no row to predict its own first token from, which would leave that target unscored.</summary>
    internal static void CheckWindow(int tokens, int window, int stride, int context)
    {
        if (window < 2 || window > context)
        {
            throw new InvalidInputException($"window must be in [2, {context}] (got {window})");
        }
        if (stride < 1 || stride > window)
        {
            throw new InvalidInputException($"stride must be in [1, {window}] (got {stride})");
        }
        if (stride == window && tokens > window)
        {
            throw new InvalidInputException($"stride {stride} equals the window: the first token of every later window would go unscored; use a stride below {window} (the default is {window / 2})");
        }
    }

    /// <summary>log softmax(logits)[index] = logits[index] − log Σ exp(logits), stably (<see cref="Kernels.LogSumExp"/>).</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> logits, int index) => logits[index] - Kernels.LogSumExp(logits);
}
