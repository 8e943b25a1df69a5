using Headwise.Analysis;
using Headwise.Influence;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>influence throughput: documents/s and tokens/s of <see cref="InfluenceScorer"/> (two forwards per document, the
/// masked one resumed at the lowest ablated layer), against the model's prefill tokens/s at full context in the same run.
/// <see cref="Ratio"/> = influence tokens/s ÷ prefill tokens/s (a plain forward per token would be 1.0; scoring needs a clean and
/// a masked run, so the bound is about 1 / (1 + (L − first) / L) of prefill).</summary>
public sealed record InfluenceBenchResult(int Documents, int Tokens, double Seconds, double DocumentsPerSecond, double TokensPerSecond,
    double PrefillTokensPerSecond)
{
    public double Ratio => TokensPerSecond / PrefillTokensPerSecond;
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
        return new InfluenceBenchResult(documents, tokens, s, documents / s, tokens / s, prefill.TokensPerSecond);
    }
}
