using Headwise.Analysis.Circuits;
using Headwise.Analysis.Statistics;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Tests.Unit.Analysis;

/// <summary>The numbers behind stats, centrality, explain and circuits, against hand-computed values and dense formulas.</summary>
public class StatisticsMathTests
{
    [Fact]
    public void EffectiveRankOfIdentityIsTAndOfRankOneIsOne()
    {
        const int T = 7;
        var identity = new double[T, T];
        var sink = new double[T, T]; // every query attends to position 0: rank 1
        for (int i = 0; i < T; i++)
        {
            identity[i, i] = 1;
            sink[i, 0] = 1;
        }
        Assert.Equal(T, AttentionStatistics.EffectiveRank(identity), 9);
        Assert.Equal(1, AttentionStatistics.EffectiveRank(sink), 9);
        // diag(1, 1, 0): two equal singular values → exp(ln 2) = 2
        Assert.Equal(2, AttentionStatistics.EffectiveRank(new double[,] { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 0 } }), 9);
    }

    [Fact]
    public void KurtosisMatchesHandComputedValues()
    {
        // [0, 0, 0, 1]: mean 1/4, m₂ = 3/16, m₄ = 21/256, m₄/m₂² = 7/3 → excess −2/3
        Assert.Equal(-2.0 / 3, AttentionStatistics.ExcessKurtosis([0, 0, 0, 1]), 12);
        // [0.2, 0.3, 0.5]: deviations (−4, −1, 5)/30 → m₂ = 14/900, m₄ = 294/810000, ratio 1.5 → excess −1.5
        Assert.Equal(-1.5, AttentionStatistics.ExcessKurtosis([0.2, 0.3, 0.5]), 12);
        Assert.True(double.IsNaN(AttentionStatistics.ExcessKurtosis([0.5, 0.5])));
        // rows 0 (one key) and 1 (constant) are skipped; rows 2 and 3 give −1.5 and −2/3
        var p = new double[,] { { 1, 0, 0, 0 }, { 0.5, 0.5, 0, 0 }, { 0.2, 0.3, 0.5, 0 }, { 0, 0, 0, 1 } };
        Assert.Equal((-1.5 - 2.0 / 3) / 2, AttentionStatistics.MeanRowKurtosis(p), 12);
    }

    [Fact]
    public void JensenShannonAndPatternSimilarity()
    {
        Assert.Equal(0, AttentionStatistics.JensenShannon([0.3, 0.7], [0.3, 0.7]), 12);
        Assert.Equal(1, AttentionStatistics.JensenShannon([1, 0], [0, 1]), 12);
        // JSD([1,0],[½,½]) = ½·log₂(1/¾) + ½·(¼·0 … ) computed: ½[1·log₂(4/3)] + ½[½·log₂(2/3) + ½·log₂(2)]
        double want = 0.5 * Math.Log2(4.0 / 3) + 0.5 * (0.5 * Math.Log2(0.5 / 0.75) + 0.5 * Math.Log2(0.5 / 0.25));
        Assert.Equal(want, AttentionStatistics.JensenShannon([1, 0], [0.5, 0.5]), 12);
        var self = new double[,] { { 1, 0 }, { 0, 1 } };
        var first = new double[,] { { 1, 0 }, { 1, 0 } };
        Assert.Equal(0, AttentionStatistics.PatternSimilarity(self, first), 12); // row 1: [0,1] vs [1,0]
    }

    [Fact]
    public void AverageLinkClusteringMergesOnlyAboveTheThreshold()
    {
        double[][] s =
        [
            [1, 0.9, 0.1, 0.2],
            [0.9, 1, 0.2, 0.1],
            [0.1, 0.2, 1, 0.85],
            [0.2, 0.1, 0.85, 1],
        ];
        var c = AttentionStatistics.AverageLinkClusters(s, 0.8);
        Assert.Equal([[0, 1], [2, 3]], c);
        Assert.Single(AttentionStatistics.AverageLinkClusters(s, 0.1)); // the two pairs' mean similarity is 0.15
        Assert.Equal(4, AttentionStatistics.AverageLinkClusters(s, 0.95).Length);
    }

    [Fact]
    public void CentralityEqualsTheDenseInverse()
    {
        var rng = new Random(5);
        const int T = 9;
        var a = new double[T, T];
        for (int q = 0; q < T; q++)
        {
            double sum = 0;
            for (int k = 0; k <= q; k++)
            {
                a[q, k] = rng.NextDouble();
                sum += a[q, k];
            }
            for (int k = 0; k <= q; k++)
            {
                a[q, k] /= sum;
            }
        }
        foreach (double alpha in new[] { 0.0, 0.3, 0.85, 0.99 })
        {
            var (c, iterations) = TokenCentrality.Centrality(a, alpha, 1e-12);
            // 1ᵀ((I − αA)⁻¹ − I)
            var A = Matrix<double>.Build.DenseOfArray(a);
            var I = Matrix<double>.Build.DenseIdentity(T);
            var want = Vector<double>.Build.Dense(T, 1) * ((I - alpha * A).Inverse() - I);
            for (int j = 0; j < T; j++)
            {
                Assert.True(Math.Abs(want[j] - c[j]) < 1e-9 * Math.Max(1, want[j]), $"α={alpha} pos {j}: {want[j]} vs {c[j]}");
            }
            // total mass: ‖1ᵀαᵏAᵏ‖₁ = T·αᵏ, so Σ c = T·α/(1−α)
            Assert.Equal(T * alpha / (1 - alpha), c.Sum(), 6);
            Assert.True(alpha == 0 ? iterations == 1 : iterations <= Math.Ceiling(Math.Log(1e-12 / T) / Math.Log(alpha)) + 1);
        }
        Assert.Throws<InvalidInputException>(() => TokenCentrality.Centrality(a, 1.0));
    }

    [Fact]
    public void KendallAndSpearmanMatchHandValues()
    {
        // no ties: x = 1..5, y = (2,1,4,3,5): 8 concordant, 2 discordant → τ = 0.6; Σd² = 4 → ρ = 1 − 6·4/120 = 0.8
        double[] x = [1, 2, 3, 4, 5], y = [2, 1, 4, 3, 5];
        Assert.Equal(0.6, RankCorrelation.KendallTauB(x, y), 12);
        Assert.Equal(0.8, RankCorrelation.SpearmanRho(x, y), 12);
        // ties: x = (1,2,2,3), y = (1,3,2,2): n_c = 3, n_d = 1, one tied pair in each → τ-b = 2/√(5·5) = 0.4;
        // mid-ranks (1,2.5,2.5,4) and (1,4,2.5,2.5) → ρ = 2.25/4.5 = 0.5
        double[] xt = [1, 2, 2, 3], yt = [1, 3, 2, 2];
        Assert.Equal(0.4, RankCorrelation.KendallTauB(xt, yt), 12);
        Assert.Equal(0.5, RankCorrelation.SpearmanRho(xt, yt), 12);
        Assert.Equal([1, 2.5, 2.5, 4], RankCorrelation.MidRanks(xt));
        Assert.Equal(-1, RankCorrelation.KendallTauB(x, x.Select(v => -v).ToArray()), 12);
        Assert.True(double.IsNaN(RankCorrelation.SpearmanRho([1, 1, 1], [1, 2, 3])));
    }

    [Fact]
    public void RolloutOfHandExample()
    {
        // one layer, T = 2: A = [[1,0],[0.4,0.6]] → Â = 0.5A + 0.5I = [[1,0],[0.2,0.8]]
        var a = new double[,] { { 1, 0 }, { 0.4, 0.6 } };
        var r1 = AttentionExplanation.Rollout([a]);
        Assert.Equal(0.2, r1[1, 0], 12);
        Assert.Equal(0.8, r1[1, 1], 12);
        // two layers: Â·Â row 1 = [0.2·1 + 0.8·0.2, 0.8·0.8] = [0.36, 0.64]
        var r2 = AttentionExplanation.Rollout([a, a]);
        Assert.Equal(0.36, r2[1, 0], 12);
        Assert.Equal(0.64, r2[1, 1], 12);
    }

    [Fact]
    public void FactoredMatrixMatchesDenseOnRandomFactors()
    {
        var rng = new Random(9);
        Matrix<double> R(int m, int n) => Matrix<double>.Build.Dense(m, n, (_, _) => rng.NextDouble() - 0.5);
        var f = new FactoredMatrix(R(30, 4), R(4, 25));
        var g = new FactoredMatrix(R(25, 3), R(3, 20));
        var dense = f.Dense();
        var s = dense.Svd(false).S;
        var fs = f.SingularValues();
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(s[i], fs[i], 10);
        }
        Assert.Equal((dense * g.Dense()).FrobeniusNorm(), FactoredMatrix.ProductFrobeniusNorm(f, g), 10);
        Assert.Equal((dense * g.Dense()).FrobeniusNorm() / (dense.FrobeniusNorm() * g.Dense().FrobeniusNorm()), FactoredMatrix.CompositionScore(f, g), 12);
        Assert.Equal(dense.Transpose().FrobeniusNorm(), f.Transpose().FrobeniusNorm(), 10);
    }

    [Fact]
    public void HouseholderRGivesTheGramMatrixAndMathNetsRUpToRowSigns()
    {
        var rng = new Random(11);
        var a = Matrix<double>.Build.Dense(40, 6, (_, _) => rng.NextDouble() - 0.5);
        var r = FactoredMatrix.ThinR(a);
        var want = a.QR(MathNet.Numerics.LinearAlgebra.Factorization.QRMethod.Thin).R;
        Assert.True(((r.Transpose() * r) - a.TransposeThisAndMultiply(a)).FrobeniusNorm() < 1e-12);
        // rank-deficient (R is then not unique, but RᵀR = AᵀA still holds) and all-zero matrices
        var d = a.Clone();
        d.SetColumn(4, d.Column(1) * 2);
        var rd = FactoredMatrix.ThinR(d);
        Assert.True(((rd.Transpose() * rd) - d.TransposeThisAndMultiply(d)).FrobeniusNorm() < 1e-12);
        Assert.Equal(0, FactoredMatrix.ThinR(Matrix<double>.Build.Dense(5, 3)).FrobeniusNorm());
        for (int i = 0; i < 6; i++)
        {
            for (int j = 0; j < 6; j++)
            {
                Assert.Equal(Math.Abs(want[i, j]), Math.Abs(r[i, j]), 10);
            }
        }
    }
}
