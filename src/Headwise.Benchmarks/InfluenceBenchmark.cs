using Headwise.Analysis;
using Headwise.Evaluation;
using Headwise.Influence;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>influence throughput: documents/s and tokens/s of <see cref="InfluenceScorer"/> (two forwards per document, the
/// masked one resumed at the lowest ablated layer), against the model's prefill tokens/s at full context in the same run.
/// <see cref="Ratio"/> = influence tokens/s ÷ prefill tokens/s. A plain forward per token would be 1.0, but scoring costs more
/// than one forward per token, by construction: eval's sliding window runs a document longer than the context in windows that
/// overlap by half (<see cref="Positions"/> forward positions for <see cref="Tokens"/> tokens), and each window runs twice, clean
/// and masked. <see cref="AtPrefillFlopRate"/> is the ratio scoring would reach if the FLOPs it needs (only the scored rows
/// unembedded; the masked run from the first ablated layer) ran at prefill's FLOP rate; <see cref="FlopRateVsPrefill"/> =
/// Ratio ÷ that: above 1 where batching windows gives the GEMMs more rows than one prefill of the context has.</summary>
public sealed record InfluenceBenchResult(int Documents, int Tokens, double Seconds, double DocumentsPerSecond, double TokensPerSecond,
    double PrefillTokensPerSecond, long Positions, double AtPrefillFlopRate)
{
    public double Ratio => TokensPerSecond / PrefillTokensPerSecond;

    public double FlopRateVsPrefill => Ratio / AtPrefillFlopRate;
}

public static class InfluenceBenchmark
{
    /// <summary>Scores <paramref name="documents"/> random-token documents of realistic lengths (lognormal around 200 tokens,
    /// 20..1000, so some span several windows of a small model) with <paramref name="heads"/> ablated.</summary>
    public static InfluenceBenchResult Run(TransformerModel model, IReadOnlyList<HeadId> heads, int documents = 400, int batchTokens = 4096,
        int reps = 3, CancellationToken cancel = default)
    {
        var rng = new Random(3);
        int V = model.Config.VocabSize;
        var docs = Enumerable.Range(0, documents).Select(i =>
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            double normal = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            int len = Math.Clamp((int)Math.Exp(Math.Log(200) + 0.8 * normal), 20, 1000);
            return ($"d{i}", Enumerable.Range(0, len).Select(_ => rng.Next(V)).ToArray());
        }).ToArray();
        int tokens = docs.Sum(d => d.Item2.Length);
        using var scorer = new InfluenceScorer(model, heads, batchTokens);
        double s = ModelBenchmarks.Median(reps, () => scorer.Score(docs, cancel: cancel), cancel);
        var prefill = ModelBenchmarks.Prefill(model, model.Config.MaxPositions, reps: Math.Max(reps, 5), cancel);
        var (positions, atPrefillRate) = AtPrefillRate(model.Config, docs.Select(d => d.Item2.Length), heads.Min(h => h.Layer));
        return new InfluenceBenchResult(documents, tokens, s, documents / s, tokens / s, prefill.TokensPerSecond, positions, atPrefillRate);
    }

    /// <summary>The forward positions scoring runs over documents of these lengths, and the tokens/s ratio to prefill it would
    /// reach if its FLOPs ran at prefill's FLOP rate: per window, every layer clean plus the layers from
    /// <paramref name="firstLayer"/> masked, and the unembedding of the scored rows twice; prefill at full context.</summary>
    public static (long Positions, double Ratio) AtPrefillRate(ModelConfig c, IEnumerable<int> lengths, int firstLayer)
    {
        int window = c.MaxPositions;
        long positions = 0, tokens = 0;
        double flops = 0;
        foreach (int n in lengths)
        {
            tokens += n;
            foreach (var w in Perplexity.Windows(n, window, Math.Max(1, window / 2)))
            {
                int T = w.End - w.Begin;
                positions += T;
                flops += ((2 * c.NLayers) - firstLayer) * ModelBenchmarks.LayerFlops(c, T);
                flops += 2 * ModelBenchmarks.UnembedFlops(c, Perplexity.TargetRows(w).Count);
            }
        }
        double prefillFlopsPerToken = ModelBenchmarks.ForwardFlops(c, window) / window;
        return (positions, tokens * prefillFlopsPerToken / flops);
    }
}
