using Headwise.Analysis.Interventions;

namespace Headwise.Tests.Unit.Analysis;

/// <summary>The loss and KL metrics against a plain double-precision computation, on shapes large enough to take the
/// multi-threaded path (a GPT-2-sized vocabulary over many positions) and small ones that do not.</summary>
public class InterventionMetricsTests
{
    [Theory]
    [InlineData(5, 7)]
    [InlineData(300, 5003)]   // 1.5 M values: split across threads
    public void MeanNllAndKlMatchADirectComputation(int T, int V)
    {
        var rng = new Random(T + V);
        var p = Enumerable.Range(0, T * V).Select(_ => (float)(rng.NextDouble() * 8 - 4)).ToArray();
        var q = p.Select(x => x + (float)(rng.NextDouble() - 0.5)).ToArray();
        var tokens = Enumerable.Range(0, T).Select(_ => rng.Next(V)).ToArray();

        double Lse(float[] x, int t) => Math.Log(Enumerable.Range(0, V).Sum(i => Math.Exp(x[t * V + i])));
        double nll = 0, kl = 0;
        for (int t = 1; t < T; t++)
        {
            nll += Lse(p, t - 1) - p[(t - 1) * V + tokens[t]];
        }
        for (int t = 0; t < T; t++)
        {
            double lp = Lse(p, t), lq = Lse(q, t);
            for (int i = 0; i < V; i++)
            {
                double a = p[t * V + i] - lp, b = q[t * V + i] - lq;
                kl += Math.Exp(a) * (a - b);
            }
        }
        Assert.Equal(nll / (T - 1), InterventionMetrics.MeanNll(p, tokens, V, 1, T), 1e-4);
        Assert.Equal(kl / T, InterventionMetrics.MeanKl(p, q, V), 1e-4);
        Assert.Equal(0.0, InterventionMetrics.MeanKl(p, p, V));
    }
}
