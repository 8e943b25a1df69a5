namespace Headwise.Analysis.Statistics;

/// <summary>Rank correlations with ties handled: Kendall's τ-b and Spearman's ρ (Pearson's r of mid-ranks).</summary>
public static class RankCorrelation
{
    /// <summary>τ-b = (n_c − n_d) / √((n₀ − n₁)(n₀ − n₂)), n₀ = n(n−1)/2, n₁ = Σ tᵢ(tᵢ−1)/2 over groups of ties in x, n₂ the same in y;
    /// a pair tied in x or y is neither concordant nor discordant. NaN when x or y is constant.</summary>
    public static double KendallTauB(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        Check(x, y);
        int n = x.Count;
        long concordant = 0, discordant = 0;
        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                int sx = Math.Sign(x[i] - x[j]), sy = Math.Sign(y[i] - y[j]);
                if (sx * sy > 0)
                {
                    concordant++;
                }
                else if (sx * sy < 0)
                {
                    discordant++;
                }
            }
        }
        double n0 = n * (n - 1) / 2.0, n1 = TiedPairs(x), n2 = TiedPairs(y);
        double denom = Math.Sqrt((n0 - n1) * (n0 - n2));
        return denom == 0 ? double.NaN : (concordant - discordant) / denom;
    }

    /// <summary>Spearman's ρ: Pearson's correlation of the mid-ranks (tied values share the mean of their ranks). NaN when constant.</summary>
    public static double SpearmanRho(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        Check(x, y);
        return Pearson(MidRanks(x), MidRanks(y));
    }

    /// <summary>Ranks 1..n, ties given the average of the ranks they span.</summary>
    public static double[] MidRanks(IReadOnlyList<double> x)
    {
        var order = Enumerable.Range(0, x.Count).OrderBy(i => x[i]).ToArray();
        var ranks = new double[x.Count];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && x[order[j + 1]] == x[order[i]])
            {
                j++;
            }
            double mid = (i + j) / 2.0 + 1;
            for (int k = i; k <= j; k++)
            {
                ranks[order[k]] = mid;
            }
            i = j + 1;
        }
        return ranks;
    }

    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    private static double TiedPairs(IReadOnlyList<double> x) =>
        x.GroupBy(v => v).Sum(g => g.Count() * (g.Count() - 1) / 2.0);

    private static void Check(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count || x.Count < 2)
        {
            throw new ArgumentException($"rank correlation needs two samples of equal length ≥ 2 (got {x.Count} and {y.Count})");
        }
    }
}
