using Headwise.Compute;
using Headwise.Evaluation;
using Headwise.Models;

namespace Headwise.Sparse;

/// <summary>One spec judged against dense attention on one text.</summary>
/// <param name="Density">query–key pairs computed ÷ causal pairs, over every layer and head</param>
/// <param name="MeanNll">mean nll of the text under the spec (nats/token)</param>
/// <param name="DeltaNll">MeanNll − dense's</param>
/// <param name="Recall">[layer][head]: the share of the dense pattern's mass on the keys the spec kept, mean over queries</param>
/// <param name="OracleRecall">[layer][head]: the same share for an oracle that keeps, in each query's row, as many keys as the
/// spec kept there — the ones with the most dense attention</param>
public sealed record SparsitySpecResult(string Spec, double Density, double MeanNll, double DeltaNll, double[][] Recall, double[][] OracleRecall)
{
    public double MeanRecall => Recall.SelectMany(r => r).Average();
    public double MeanOracleRecall => OracleRecall.SelectMany(r => r).Average();
}

/// <summary>What <see cref="SparsityAnalysis.Run"/> found: the dense mean nll and one result per spec.</summary>
public sealed record SparsityResult(int Tokens, double DenseMeanNll, IReadOnlyList<SparsitySpecResult> Specs);

/// <summary>
/// Judges sparse-attention specs on a text: density, ΔNLL against dense, and attention-mass recall per layer and head against an
/// oracle top-k at the same density (docs/sparse.md). One forward per spec over the first min(tokens, context) tokens.
/// </summary>
public static class SparsityAnalysis
{
    public static SparsityResult Run(TransformerModel model, int[] ids, IReadOnlyList<AttentionPolicy> specs, CancellationToken cancel = default)
    {
        int T = Math.Min(ids.Length, model.Config.MaxPositions);
        if (T < 2)
        {
            throw new InvalidInputException($"need at least 2 tokens to score a prediction (got {ids.Length})");
        }
        if (model.Config.Bidirectional)
        {
            throw new InvalidInputException("sparse attention specs are causal; this model attends bidirectionally");
        }
        var input = ModelInput.Single(ids[..T]);
        var saved = model.SparseAttention;
        try
        {
            model.SparseAttention = null;
            var (_, cache) = model.RunWithCache(input, name => name.EndsWith(".attn.hook_pattern", StringComparison.Ordinal));
            // the nll from an unobserved forward, as the specs' are: observers move attention onto another kernel
            double denseNll = MeanNll(model.Forward(input), ids, T, model.Config.VocabSize);
            int L = model.Config.NLayers, NH = model.Config.NHeads;
            var patterns = Enumerable.Range(0, L).Select(l => cache[$"blocks.{l}.attn.hook_pattern"].Data).ToArray(); // (1, NH, T, T)
            var results = new List<SparsitySpecResult>();
            foreach (var policy in specs)
            {
                cancel.ThrowIfCancellationRequested();
                var kept = new AttentionSparsity?[L];
                policy.ResetCounts();
                policy.Observer = (l, _, s) => kept[l] = s;
                model.SparseAttention = policy;
                var logits = model.Forward(input);
                model.SparseAttention = null;
                policy.Observer = null;
                var recall = new double[L][];
                var oracle = new double[L][];
                for (int l = 0; l < L; l++)
                {
                    (recall[l], oracle[l]) = Recall(patterns[l], kept[l] ?? AttentionSparsity.Dense, NH, T);
                }
                double nll = MeanNll(logits, ids, T, model.Config.VocabSize);
                results.Add(new SparsitySpecResult(policy.Spec, policy.Density, nll, nll - denseNll, recall, oracle));
            }
            return new SparsityResult(T, denseNll, results);
        }
        finally
        {
            model.SparseAttention = saved;
        }
    }

    /// <summary>Per head: the mean over queries of the dense mass on kept keys, and of an oracle's keeping as many keys per row.</summary>
    // pattern: (NH, T, T) dense softmax rows
    public static (double[] Recall, double[] Oracle) Recall(ReadOnlySpan<float> pattern, AttentionSparsity sparsity, int NH, int T)
    {
        var recall = new double[NH];
        var oracle = new double[NH];
        var row = new float[T];
        for (int h = 0; h < NH; h++)
        {
            for (int t = 0; t < T; t++)
            {
                var p = pattern.Slice((h * T + t) * T, t + 1);
                double mass = 0;
                int count = 0;
                for (int s = 0; s <= t; s++)
                {
                    if (sparsity.Keeps(h, t, s))
                    {
                        mass += p[s];
                        count++;
                    }
                }
                p.CopyTo(row);
                var best = row.AsSpan(0, t + 1);
                best.Sort((a, b) => b.CompareTo(a));
                double top = 0;
                for (int j = 0; j < count; j++)
                {
                    top += best[j];
                }
                recall[h] += mass / T;
                oracle[h] += top / T;
            }
        }
        return (recall, oracle);
    }

    private static double MeanNll(float[] logits, int[] ids, int T, int V)
    {
        double sum = 0;
        for (int t = 0; t + 1 < T; t++)
        {
            sum -= Perplexity.LogSoftmaxAt(logits.AsSpan(t * V, V), ids[t + 1]);
        }
        return sum / (T - 1);
    }
}
