using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Statistics;

/// <summary>A position that draws outsized attention in one layer.</summary>
/// <param name="Received">Mean over heads and over later queries q &gt; k of A[q, k]: the share of a query's attention it draws.</param>
/// <param name="Ratio">mean over heads and later queries q &gt; k of (q+1)·A[q, k]: how many times the uniform share 1/(q+1)
/// a causal query would give it (1 for a uniform pattern).</param>
/// <param name="ResidNorm">‖hook_resid_pre[k]‖₂ of this layer.</param>
public sealed record SinkToken(int Position, int TokenId, double Received, double Ratio, double ResidNorm);

/// <summary>The sinks of one layer, with the median residual norm over the prompt's positions for comparison.</summary>
public sealed record SinkLayer(int Layer, SinkToken[] Sinks, double MedianResidNorm);

/// <summary>A sink position and the layers it is one in.</summary>
/// <param name="Primary">True for position 0 (the usual primary sink); other positions are secondary sinks.</param>
public sealed record SinkPersistence(int Position, int TokenId, bool Primary, int[] Layers, double MeanReceived);

public sealed record AttentionSinksResult(int[] Tokens, SinkLayer[] Layers, SinkPersistence[] Sinks, double RatioThreshold, double MassThreshold)
{
    public const string Definition = "position k is a sink in layer l when, averaged over heads and later queries q > k, it draws at least "
        + "RatioThreshold times the uniform share 1/(q+1) of a query's attention, and at least MassThreshold of it; only positions with "
        + "at least max(2, ⌈T/4⌉) later queries are judged";
}

/// <summary>Attention sinks (the first token; secondary sinks in middle layers) and the residual norm at them.</summary>
public static class AttentionSinks
{
    public static AttentionSinksResult Compute(TransformerModel model, int[] tokens, ActivationCache cache,
        double ratioThreshold = 3, double massThreshold = 0.1, CancellationToken cancel = default)
    {
        model.Config.RequireUniformHeads("the sink analysis");
        int L = model.Config.NLayers, H = model.Config.NHeads, C = model.Config.DModel, T = tokens.Length;
        var layers = new SinkLayer[L];
        int minQueries = MinLaterQueries(T);
        for (int l = 0; l < L; l++)
        {
            cancel.ThrowIfCancellationRequested();
            var a = PatternCache.LayerAverage(cache, l, H);
            var resid = cache[$"blocks.{l}.hook_resid_pre"].Data;
            var norms = new double[T];
            for (int t = 0; t < T; t++)
            {
                double s = 0;
                for (int i = 0; i < C; i++)
                {
                    s += (double)resid[t * C + i] * resid[t * C + i];
                }
                norms[t] = Math.Sqrt(s);
            }
            var sinks = new List<SinkToken>();
            for (int k = 0; k < T - minQueries; k++) // later positions have too few later queries to tell a sink from local attention
            {
                double received = 0, ratio = 0;
                for (int q = k + 1; q < T; q++)
                {
                    received += a[q, k];
                    ratio += (q + 1) * a[q, k];
                }
                received /= T - 1 - k;
                ratio /= T - 1 - k;
                if (ratio >= ratioThreshold && received >= massThreshold)
                {
                    sinks.Add(new SinkToken(k, tokens[k], received, ratio, norms[k]));
                }
            }
            layers[l] = new SinkLayer(l, sinks.ToArray(), Median(norms));
        }
        var persistence = layers.SelectMany(x => x.Sinks.Select(s => (x.Layer, s))).GroupBy(x => x.s.Position).OrderBy(g => g.Key)
            .Select(g => new SinkPersistence(g.Key, tokens[g.Key], g.Key == 0, g.Select(x => x.Layer).ToArray(), g.Average(x => x.s.Received)))
            .ToArray();
        return new AttentionSinksResult(tokens, layers, persistence, ratioThreshold, massThreshold);
    }

    /// <summary>A candidate needs this many later queries: max(2, ⌈T/4⌉). A previous-token head gives position T−2 a quarter
    /// of its only later query's attention, which would otherwise read as T/4 times uniform.</summary>
    public static int MinLaterQueries(int T) => Math.Max(2, (T + 3) / 4);

    private static double Median(double[] x)
    {
        var s = x.Order().ToArray();
        return s.Length == 0 ? 0 : s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]);
    }
}
