using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Statistics;

/// <summary>Agreement between two rankings of the context tokens.</summary>
public sealed record RankAgreement(double KendallTauB, double SpearmanRho);

/// <summary>
/// Does attention explain the prediction? Three importances of each context token for the model's predicted next token,
/// and how their rankings agree.
/// </summary>
/// <param name="PredictedToken">argmax of the logits at the last position.</param>
/// <param name="Attention">Last layer's attention from the last position, averaged over heads.</param>
/// <param name="Rollout">Row T−1 of the attention rollout Â_{L−1}·…·Â_0, Â = row-normalised 0.5·A + 0.5·I (A head-averaged).</param>
/// <param name="LeaveOneOut">log p(predicted | prompt) − log p(predicted | prompt without token k): how much removing it hurts.</param>
public sealed record AttentionExplanationResult(int[] Tokens, int PredictedToken, double LogProb, double[] Attention, double[] Rollout,
    double[] LeaveOneOut, RankAgreement AttentionVsLeaveOneOut, RankAgreement RolloutVsLeaveOneOut);

public static class AttentionExplanation
{
    public static AttentionExplanationResult Compute(TransformerModel model, int[] tokens, ActivationCache cache,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        model.Config.RequireUniformHeads("the explanation analysis");
        int L = model.Config.NLayers, H = model.Config.NHeads, T = tokens.Length, V = model.Config.VocabSize;
        if (T < 3)
        {
            throw new InvalidInputException($"--tokens: explain needs a prompt of at least 3 tokens (got {T}) to rank the context");
        }
        var last = PatternCache.LayerAverage(cache, L - 1, H);
        var attention = Enumerable.Range(0, T).Select(k => last[T - 1, k]).ToArray();
        var rollout = Rollout(Enumerable.Range(0, L).Select(l => PatternCache.LayerAverage(cache, l, H)).ToArray());
        var rolloutRow = Enumerable.Range(0, T).Select(k => rollout[T - 1, k]).ToArray();

        var full = LastLogProbs(model, tokens, V, baseHooks);
        int predicted = Array.IndexOf(full, full.Max());
        var loo = new double[T];
        for (int k = 0; k < T; k++)
        {
            cancel.ThrowIfCancellationRequested();
            var without = tokens.Where((_, i) => i != k).ToArray();
            loo[k] = full[predicted] - LastLogProbs(model, without, V, baseHooks)[predicted];
            progress?.Report(new AnalysisProgress("leave-one-out", k + 1, T));
        }
        return new AttentionExplanationResult(tokens, predicted, full[predicted], attention, rolloutRow, loo,
            new RankAgreement(RankCorrelation.KendallTauB(attention, loo), RankCorrelation.SpearmanRho(attention, loo)),
            new RankAgreement(RankCorrelation.KendallTauB(rolloutRow, loo), RankCorrelation.SpearmanRho(rolloutRow, loo)));
    }

    /// <summary>Abnar and Zuidema's rollout: R = Â_{L−1}·…·Â_0 with Â_l = rownorm(0.5·A_l + 0.5·I).</summary>
    public static double[,] Rollout(IReadOnlyList<double[,]> layers)
    {
        int T = layers[0].GetLength(0);
        var r = new double[T, T];
        for (int i = 0; i < T; i++)
        {
            r[i, i] = 1;
        }
        foreach (var a in layers)
        {
            var hat = new double[T, T];
            for (int q = 0; q < T; q++)
            {
                double sum = 0;
                for (int k = 0; k < T; k++)
                {
                    hat[q, k] = 0.5 * a[q, k] + (q == k ? 0.5 : 0);
                    sum += hat[q, k];
                }
                for (int k = 0; k < T; k++)
                {
                    hat[q, k] /= sum;
                }
            }
            var next = new double[T, T];
            for (int q = 0; q < T; q++)
            {
                for (int m = 0; m < T; m++)
                {
                    if (hat[q, m] == 0)
                    {
                        continue;
                    }
                    for (int k = 0; k < T; k++)
                    {
                        next[q, k] += hat[q, m] * r[m, k];
                    }
                }
            }
            r = next;
        }
        return r;
    }

    private static double[] LastLogProbs(TransformerModel model, int[] tokens, int V, Action<HookSet>? baseHooks)
    {
        var logits = model.Forward(ModelInput.Single(tokens), HookSet.Of(model.Config.NLayers, baseHooks));
        var row = logits.AsSpan((tokens.Length - 1) * V, V);
        double lse = Kernels.LogSumExp(row);
        var result = new double[V];
        for (int i = 0; i < V; i++)
        {
            result[i] = row[i] - lse;
        }
        return result;
    }
}
