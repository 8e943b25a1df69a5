using Headwise.Generation;
using Headwise.Models;
using Headwise.Training.Plots;

namespace Headwise.Sparse;

/// <summary>One rolling-cache configuration scored over a stream: nll of every token and its mean per bucket of positions.</summary>
public sealed record StreamingCurve(int Sinks, int Window, float[] Nll, double[] BucketPerplexity)
{
    public double MeanNll => Nll.Average(x => (double)x);
}

/// <summary>What <see cref="StreamingExperiment.Run"/> measured: the stream, the bucket width, and one curve per sink count.</summary>
public sealed record StreamingResult(int Tokens, int Context, int Bucket, int GeneratedTokens, IReadOnlyList<StreamingCurve> Curves);

/// <summary>
/// StreamingLLM's finding reproduced (docs/sparse.md): a stream far longer than the model's context is scored token by token
/// through a rolling cache of <c>window:W,sinks:S</c> for each S given (e.g. 4 and 0); perplexity over position stays flat
/// with sinks and degrades without once the first tokens are evicted.
/// <para>The stream is the text's tokens, continued — when the text is shorter than asked — by the model itself: sampled at
/// temperature 1 (seeded) through a rolling cache of 4 sinks + context − 4 recent tokens, the widest rolling cache the
/// context allows. Every configuration scores the same stream.</para>
/// </summary>
public static class StreamingExperiment
{
    public static StreamingResult Run(TransformerModel model, int[] text, int tokens, int window, IReadOnlyList<int> sinks, int bucket = 128,
        int seed = 0, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default)
    {
        if (tokens < 2 || bucket < 1)
        {
            throw new InvalidInputException($"the stream needs at least 2 tokens and buckets at least 1 (got {tokens}, {bucket})");
        }
        if (text.Length == 0)
        {
            throw new InvalidInputException("the text is empty: give at least one token to start the stream");
        }
        int context = model.Config.MaxPositions;
        var stream = text.Length >= tokens ? text[..tokens] : Continue(model, text, tokens, seed, cancel);
        int generated = Math.Max(0, tokens - text.Length);
        var curves = new List<StreamingCurve>();
        foreach (int s in sinks)
        {
            var nll = StreamingGenerator.Score(model, stream, s, window, progress, cancel);
            var buckets = new double[(nll.Length + bucket - 1) / bucket];
            for (int b = 0; b < buckets.Length; b++)
            {
                var slice = nll.AsSpan(b * bucket, Math.Min(bucket, nll.Length - b * bucket));
                double sum = 0;
                foreach (float x in slice)
                {
                    sum += x;
                }
                buckets[b] = Math.Exp(sum / slice.Length);
            }
            curves.Add(new StreamingCurve(s, window, nll, buckets));
        }
        return new StreamingResult(stream.Length, context, bucket, generated, curves);
    }

    // the text continued to `tokens` by sampling through the widest rolling cache with 4 sinks
    private static int[] Continue(TransformerModel model, int[] text, int tokens, int seed, CancellationToken cancel)
    {
        int context = model.Config.MaxPositions, sinks = Math.Min(4, context / 2);
        var options = new GenerationOptions { MaxNewTokens = tokens - text.Length, Sampling = new SamplingOptions { Temperature = 1, Seed = seed } };
        var list = new List<int>(text);
        foreach (int id in StreamingGenerator.Generate(model, text, options, sinks, context - sinks))
        {
            cancel.ThrowIfCancellationRequested();
            list.Add(id);
        }
        return [.. list];
    }

    /// <summary>Perplexity per bucket of positions, one line per configuration (blue, orange, … in the order given) — a PNG.</summary>
    public static void Plot(StreamingResult result, string path)
    {
        var series = result.Curves.Select(c => new ChartSeries(
            Enumerable.Range(0, c.BucketPerplexity.Length).Select(b => (b + 0.5) * result.Bucket).ToArray(), c.BucketPerplexity)).ToList();
        LineChart.Write(path, series, includeZero: true);
    }
}
