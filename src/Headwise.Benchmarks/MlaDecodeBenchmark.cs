using System.Diagnostics;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Restructure;

namespace Headwise.Benchmarks;

/// <summary>One model at one context: decode tokens/s with the cache already holding <see cref="Context"/> positions.</summary>
/// <param name="KvFraction">0 for the original grouped-query model, else the MLA conversion's <c>--kv-fraction</c>.</param>
/// <param name="CacheBytesPerToken">KV cache per token of one sequence (every layer): what one decode step reads per position.</param>
/// <param name="CacheBytesReadPerToken">The cache a decode step reads per generated token: context × <see cref="CacheBytesPerToken"/>.</param>
/// <param name="Speedup">Tokens/s ÷ the original's at the same context (1 for the original).</param>
public sealed record MlaDecodeRow(string Model, double KvFraction, int Context, int KvRank, int RopeDim, long CacheBytesPerToken,
    long CacheBytesReadPerToken, long WeightBytes, double TokensPerSecond, double Speedup);

/// <summary>
/// Decode speed of a grouped-query model against its MLA conversions (issue #12's speed point): random Llama-shaped weights,
/// converted by <see cref="MlaConversion"/> (Headwise layout) at each kv fraction, then timed one token at a time with the
/// cache pre-filled to each context (<see cref="TransformerModel.FillCacheWithNoise"/>: no prefill). At long contexts the
/// cache, not the weights, is what a step reads most — there the latent's smaller rows pay.
/// </summary>
public static class MlaDecodeBenchmark
{
    /// <summary>The default shape: 8 layers, d_model 1024, 16 heads of 64 with 4 kv heads (GQA 4:1), MLP 2816, vocab 4096,
    /// context 16K — about 377 MB of float32 weights, a 16 KB-per-token cache (256 MB at 16K). --quick: 2 layers, d_model 256.</summary>
    public static ModelConfig Shape(bool quick) => quick
        ? new ModelConfig
        {
            ModelType = "llama",
            Family = ArchitectureFamily.Llama,
            VocabSize = 512,
            DModel = 256,
            NLayers = 2,
            NHeads = 8,
            NKvHeads = 2,
            DHead = 32,
            DMlp = 512,
            MaxPositions = 1024,
            NormEps = 1e-5f,
            Norm = NormKind.RmsNorm,
            Activation = ActivationFunction.Silu,
            GatedMlp = true,
            Positions = PositionKind.Rotary,
            RotaryDims = 32,
            RopeTheta = 10000,
            TiedEmbeddings = false,
        }
        : Shape(quick: true) with { VocabSize = 4096, DModel = 1024, NLayers = 8, NHeads = 16, NKvHeads = 4, DHead = 64, DMlp = 2816, MaxPositions = 16384, RotaryDims = 64 };

    /// <summary>Times the original and its conversions at each of <paramref name="contexts"/> (each ≤ the shape's context).</summary>
    public static IReadOnlyList<MlaDecodeRow> Run(ModelConfig shape, int[] contexts, double[] fractions, int newTokens = 16, int reps = 3,
        IProgress<string>? progress = null, CancellationToken cancel = default)
    {
        using var original = ModelBenchmarks.RandomModel(shape);
        var models = new List<(string Name, double Fraction, int Rank, int Rope, TransformerModel Model)> { ("gqa", 0, 0, 0, original) };
        // calibration: the model's own activations on random tokens (random weights have no text they prefer)
        var calibration = Enumerable.Range(0, Math.Min(256, shape.MaxPositions)).Select(i => (i * 7919 + 13) % shape.VocabSize).ToArray();
        try
        {
            foreach (double f in fractions)
            {
                cancel.ThrowIfCancellationRequested();
                progress?.Report($"converting to MLA at kv fraction {f}");
                var (rank, rope) = MlaConversion.RanksFor(shape, f, MlaFormat.Headwise);
                var converted = MlaConversion.Convert(original, rank, rope, calibration, cancel: cancel).Checkpoint.ToModel($"mla {f}");
                models.Add(($"mla {f}", f, rank, rope, converted));
            }
            var rows = new List<MlaDecodeRow>();
            foreach (int context in contexts)
            {
                double baseline = 0;
                foreach (var (name, fraction, rank, rope, model) in models)
                {
                    progress?.Report($"decode at context {context}: {name}");
                    double tps = Decode(model, context, newTokens, reps, cancel);
                    if (fraction == 0) baseline = tps;
                    long perToken = model.KvCacheBytesPerToken;
                    rows.Add(new MlaDecodeRow(name, fraction, context, rank, rope, perToken, perToken * context, 4 * model.Config.ParameterCount,
                        tps, baseline > 0 ? tps / baseline : 1));
                }
            }
            return rows;
        }
        finally
        {
            foreach (var m in models.Skip(1)) m.Model.Dispose();
        }
    }

    /// <summary>Decode tokens/s of one sequence whose cache holds <paramref name="context"/> − <paramref name="newTokens"/>
    /// positions: the best of <paramref name="reps"/> runs of <paramref name="newTokens"/> steps.</summary>
    public static double Decode(TransformerModel model, int context, int newTokens, int reps, CancellationToken cancel = default)
    {
        int past = context - newTokens;
        if (past < 1) throw new InvalidInputException($"context {context} must exceed the {newTokens} decoded tokens");
        double best = double.MaxValue;
        var token = new int[1];
        float[]? logits = null; // reused by every step, as generation does
        for (int rep = 0; rep < reps; rep++)
        {
            cancel.ThrowIfCancellationRequested();
            model.ResetCache(1, context);
            model.FillCacheWithNoise(past, seed: 3);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < newTokens; i++)
            {
                token[0] = (i * 31 + 5) % model.Config.VocabSize;
                logits = model.ForwardChunk(token, null, 1, null, lastOnly: true, logits);
            }
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return newTokens / best;
    }
}
