using Headwise.Hooks;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Analysis.Statistics;

/// <summary>Per-head shape statistics of the attention patterns on one prompt, and how alike layers and heads attend.</summary>
/// <param name="EffectiveRank">exp(H(σ/Σσ)) of each head's T × T pattern (Roy and Vetterli): T for the identity, 1 for rank 1.</param>
/// <param name="Kurtosis">Mean over query rows (with ≥ 2 keys and non-constant weights) of the excess kurtosis of the row's
/// weights over its causal keys 0..q; NaN when no row qualifies.</param>
/// <param name="LayerSimilarity">L × L: similarity of the head-averaged patterns of two layers (see <see cref="Similarity"/>).</param>
/// <param name="HeadSimilarity">(L·H) × (L·H), heads in order 0.0, 0.1, …: similarity of two heads' patterns.</param>
/// <param name="Clusters">Groups of heads that attend alike: average-link agglomerative clustering on 1 − similarity, merging
/// while the two closest clusters' mean similarity is at least <see cref="ClusterThreshold"/>.</param>
public sealed record AttentionStatisticsResult(
    HeadScores EffectiveRank, HeadScores Kurtosis, double[][] LayerSimilarity, HeadId[] Heads, double[][] HeadSimilarity,
    HeadId[][] Clusters, double ClusterThreshold)
{
    public const string Similarity = "1 − Jensen–Shannon divergence (base 2, in [0, 1]) between the two patterns' query rows, averaged over rows 1..T−1 (row 0 attends only to itself in every head)";
}

public static class AttentionStatistics
{
    public static AttentionStatisticsResult Compute(TransformerModel model, int[] tokens, ActivationCache cache, double clusterThreshold = 0.8,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default)
    {
        model.Config.RequireUniformHeads("attention statistics");
        int L = model.Config.NLayers, H = model.Config.NHeads;
        var patterns = new double[L * H][,];
        var erank = new float[L][];
        var kurt = new float[L][];
        for (int l = 0; l < L; l++)
        {
            erank[l] = new float[H];
            kurt[l] = new float[H];
            for (int h = 0; h < H; h++)
            {
                cancel.ThrowIfCancellationRequested();
                var p = PatternCache.Pattern(cache, l, h);
                patterns[l * H + h] = p;
                erank[l][h] = (float)EffectiveRank(p);
                kurt[l][h] = (float)MeanRowKurtosis(p);
            }
            progress?.Report(new AnalysisProgress("statistics", l + 1, L));
        }
        var heads = Enumerable.Range(0, L * H).Select(i => new HeadId(i / H, i % H)).ToArray();
        var headSim = SimilarityMatrix(patterns, cancel);
        var layerSim = SimilarityMatrix(Enumerable.Range(0, L).Select(l => PatternCache.LayerAverage(cache, l, H)).ToArray(), cancel);
        var clusters = AverageLinkClusters(headSim, clusterThreshold).Select(c => c.Select(i => heads[i]).ToArray()).ToArray();
        return new AttentionStatisticsResult(
            new HeadScores("effective rank", "exp of the entropy of the pattern's normalised singular values (1 … T)", erank),
            new HeadScores("row kurtosis", "mean over query rows of the excess kurtosis of the row's weights over its causal keys", kurt),
            layerSim, heads, headSim, clusters, clusterThreshold);
    }

    /// <summary>exp(−Σ pᵢ log pᵢ), pᵢ = σᵢ / Σσ, over the singular values σ of a matrix.</summary>
    public static double EffectiveRank(double[,] matrix)
    {
        var s = Matrix<double>.Build.DenseOfArray(matrix).Svd(computeVectors: false).S;
        double total = s.Sum();
        if (total <= 0)
        {
            return 0;
        }
        double entropy = 0;
        foreach (double x in s)
        {
            double p = x / total;
            if (p > 0)
            {
                entropy -= p * Math.Log(p);
            }
        }
        return Math.Exp(entropy);
    }

    /// <summary>Excess kurtosis m₄/m₂² − 3 (population moments) of a sample; NaN for fewer than 2 values or zero variance.</summary>
    public static double ExcessKurtosis(ReadOnlySpan<double> x)
    {
        if (x.Length < 2)
        {
            return double.NaN;
        }
        double mean = 0;
        foreach (double v in x)
        {
            mean += v;
        }
        mean /= x.Length;
        double m2 = 0, m4 = 0;
        foreach (double v in x)
        {
            double d = (v - mean) * (v - mean);
            m2 += d;
            m4 += d * d;
        }
        m2 /= x.Length;
        m4 /= x.Length;
        return m2 < 1e-300 ? double.NaN : m4 / (m2 * m2) - 3;
    }

    /// <summary>Mean of <see cref="ExcessKurtosis"/> over the rows of a causal pattern, row q taken over keys 0..q;
    /// rows where it is undefined are skipped.</summary>
    public static double MeanRowKurtosis(double[,] pattern)
    {
        int T = pattern.GetLength(0);
        double sum = 0;
        int n = 0;
        var row = new double[T];
        for (int q = 0; q < T; q++)
        {
            for (int k = 0; k <= q; k++)
            {
                row[k] = pattern[q, k];
            }
            double kurt = ExcessKurtosis(row.AsSpan(0, q + 1));
            if (!double.IsNaN(kurt))
            {
                sum += kurt;
                n++;
            }
        }
        return n == 0 ? double.NaN : sum / n;
    }

    /// <summary>Jensen–Shannon divergence in bits (0 … 1) between two distributions.</summary>
    public static double JensenShannon(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        double d = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double m = 0.5 * (p[i] + q[i]);
            if (p[i] > 0)
            {
                d += 0.5 * p[i] * Math.Log2(p[i] / m);
            }
            if (q[i] > 0)
            {
                d += 0.5 * q[i] * Math.Log2(q[i] / m);
            }
        }
        return Math.Clamp(d, 0, 1);
    }

    /// <summary>1 − JSD averaged over query rows 1..T−1 (row q over keys 0..q); 1 when T = 1.</summary>
    public static double PatternSimilarity(double[,] a, double[,] b)
    {
        int T = a.GetLength(0);
        if (T < 2)
        {
            return 1;
        }
        var ra = new double[T];
        var rb = new double[T];
        double sum = 0;
        for (int q = 1; q < T; q++)
        {
            for (int k = 0; k <= q; k++)
            {
                ra[k] = a[q, k];
                rb[k] = b[q, k];
            }
            sum += 1 - JensenShannon(ra.AsSpan(0, q + 1), rb.AsSpan(0, q + 1));
        }
        return sum / (T - 1);
    }

    private static double[][] SimilarityMatrix(double[][,] patterns, CancellationToken cancel)
    {
        int n = patterns.Length;
        var s = new double[n][];
        for (int i = 0; i < n; i++)
        {
            s[i] = new double[n];
        }
        Parallel.For(0, n, new ParallelOptions { CancellationToken = cancel }, i =>
        {
            s[i][i] = 1;
            for (int j = i + 1; j < n; j++)
            {
                double v = PatternSimilarity(patterns[i], patterns[j]);
                s[i][j] = v;
                s[j][i] = v;
            }
        });
        return s;
    }

    /// <summary>Average-link agglomerative clustering: start with singletons, repeatedly merge the two clusters with the highest
    /// mean pairwise similarity while it is ≥ <paramref name="threshold"/>. Clusters are returned largest first, members sorted.</summary>
    public static int[][] AverageLinkClusters(double[][] similarity, double threshold)
    {
        var clusters = Enumerable.Range(0, similarity.Length).Select(i => new List<int> { i }).ToList();
        while (clusters.Count > 1)
        {
            double best = double.NegativeInfinity;
            int bi = -1, bj = -1;
            for (int i = 0; i < clusters.Count; i++)
            {
                for (int j = i + 1; j < clusters.Count; j++)
                {
                    double sum = 0;
                    foreach (int a in clusters[i])
                    {
                        foreach (int b in clusters[j])
                        {
                            sum += similarity[a][b];
                        }
                    }
                    double mean = sum / (clusters[i].Count * clusters[j].Count);
                    if (mean > best)
                    {
                        (best, bi, bj) = (mean, i, j);
                    }
                }
            }
            if (best < threshold)
            {
                break;
            }
            clusters[bi].AddRange(clusters[bj]);
            clusters.RemoveAt(bj);
        }
        return clusters.Select(c => c.Order().ToArray()).OrderByDescending(c => c.Length).ThenBy(c => c[0]).ToArray();
    }
}
