using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Statistics;

/// <summary>Per layer, each token's discounted multi-hop importance c = 1ᵀ Σ_{k≥1} αᵏ Aᵏ (A = the head-averaged pattern).</summary>
/// <param name="Centrality">Centrality[layer][position]; they sum to T·α/(1−α) − (truncation) since every row of A sums to 1.</param>
/// <param name="Iterations">Vector–matrix products taken per layer.</param>
public sealed record TokenCentralityResult(int[] Tokens, double Alpha, double Tolerance, double[][] Centrality, int[] Iterations)
{
    public const string Definition = "c = 1ᵀ Σ_{k≥1} αᵏ Aᵏ with A the layer's head-averaged attention pattern (row q: where query q attends): "
        + "how much attention flows into each token over walks of every length, discounted by α per hop (Katz centrality)";
}

/// <summary>Katz-style token centrality through the Neumann series (Infinite Self-Attention), without a dense inverse.</summary>
public static class TokenCentrality
{
    public static TokenCentralityResult Compute(TransformerModel model, int[] tokens, ActivationCache cache, double alpha = 0.85, double tolerance = 1e-10,
        CancellationToken cancel = default)
    {
        model.Config.RequireUniformHeads("token centrality");
        int L = model.Config.NLayers, H = model.Config.NHeads;
        var result = new double[L][];
        var iterations = new int[L];
        for (int l = 0; l < L; l++)
        {
            cancel.ThrowIfCancellationRequested();
            (result[l], iterations[l]) = Centrality(PatternCache.LayerAverage(cache, l, H), alpha, tolerance);
        }
        return new TokenCentralityResult(tokens, alpha, tolerance, result, iterations);
    }

    /// <summary>
    /// 1ᵀ Σ_{k≥1} αᵏ Aᵏ by repeated vector–matrix products: v₀ = 1ᵀ, v_k = α·v_{k−1}·A, c = Σ v_k, stopping when ‖v_k‖₁ &lt; tolerance.
    /// For a row-stochastic A with non-negative entries ‖v·A‖₁ = ‖v‖₁ for v ≥ 0, so ‖v_k‖₁ = T·αᵏ: the series converges for
    /// 0 ≤ α &lt; 1 and stops after ⌈log(tolerance/T) / log α⌉ products, with a remainder below tolerance·α/(1−α).
    /// Equals 1ᵀ((I − αA)⁻¹ − I).
    /// </summary>
    public static (double[] Centrality, int Iterations) Centrality(double[,] a, double alpha, double tolerance = 1e-10)
    {
        if (!(alpha >= 0 && alpha < 1))
        {
            throw new InvalidInputException($"--alpha must be in [0, 1) for the series to converge, got {alpha}");
        }
        int T = a.GetLength(0);
        var v = Enumerable.Repeat(1.0, T).ToArray();
        var next = new double[T];
        var c = new double[T];
        int k = 0;
        while (true)
        {
            Array.Clear(next);
            for (int q = 0; q < T; q++)
            {
                double w = alpha * v[q];
                if (w == 0)
                {
                    continue;
                }
                for (int j = 0; j < T; j++)
                {
                    next[j] += w * a[q, j];
                }
            }
            k++;
            double norm = 0;
            for (int j = 0; j < T; j++)
            {
                c[j] += next[j];
                norm += Math.Abs(next[j]);
            }
            (v, next) = (next, v);
            if (norm < tolerance || k >= 100000)
            {
                return (c, k);
            }
        }
    }
}
