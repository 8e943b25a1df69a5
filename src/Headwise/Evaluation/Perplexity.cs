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
        if (ids.Length < 2)
        {
            throw new InvalidInputException($"need at least 2 tokens to score a prediction (got {ids.Length})");
        }
        CheckWindow(ids.Length, window, stride, model.Config.MaxPositions);
        new ModelInput(ids, 1, ids.Length).Validate(model.Config.VocabSize);
        int n = ids.Length, V = model.Config.VocabSize;
        var nll = new float[n - 1];
        int scoredUpTo = 1; // targets 1..scoredUpTo-1 are done
        int windows = 0;
        for (int begin = 0; scoredUpTo < n; begin += stride)
        {
            cancel.ThrowIfCancellationRequested();
            int end = Math.Min(begin + window, n);
            var chunk = ids[begin..end];
            var logits = model.Forward(ModelInput.Single(chunk), hooks);
            windows++;
            for (int target = Math.Max(scoredUpTo, begin + 1); target < end; target++)
            {
                int row = target - 1 - begin;
                nll[target - 1] = (float)-LogSoftmaxAt(logits.AsSpan(row * V, V), ids[target]);
            }
            scoredUpTo = end;
            progress?.Report((scoredUpTo - 1, n - 1));
        }
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
