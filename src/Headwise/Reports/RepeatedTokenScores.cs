using Headwise.Analysis;
using Headwise.Models;

namespace Headwise.Reports;

/// <summary>Where the report gets its per-head scores: any source of <see cref="HeadScores"/> (the detectors).</summary>
public interface IHeadScoreSource
{
    /// <summary>One sentence for the page: on what input the scores were measured.</summary>
    string Description { get; }

    IReadOnlyList<HeadScores> Compute(TransformerModel model, IProgress<AnalysisProgress>? progress, CancellationToken cancel);
}

/// <summary>
/// Six simple detector scores from <c>hook_pattern</c> on repeated random tokens [BOS] r₁ … rₙ r₁ … rₙ (n tokens drawn
/// uniformly, averaged over a few sequences). An adapter for the report until the library's detectors slot in behind
/// <see cref="IHeadScoreSource"/>. With A the pattern of a head, P = 1 + n the position of the second r₁ (0 without BOS):
/// <list type="bullet">
/// <item>previous-token: mean over queries q ≥ 1 of A[q, q−1]</item>
/// <item>induction: mean over second-half queries of A[q, q−n+1] (the token after the earlier copy of the current one)</item>
/// <item>duplicate: mean over second-half queries of A[q, q−n] (the earlier copy of the current token)</item>
/// <item>sink: mean over queries of A[q, 0] (attention to the first position)</item>
/// <item>entropy: mean over queries q ≥ 1 of −Σₖ A[q,k] ln A[q,k], in nats (low = focused)</item>
/// <item>distance: mean over queries of Σₖ A[q,k]·(q−k), the expected number of positions looked back</item>
/// </list>
/// </summary>
internal sealed class RepeatedTokenScores(int repeatLength = 32, int sequences = 4, int seed = 0) : IHeadScoreSource
{
    public static readonly string[] Names = ["previous-token", "induction", "duplicate", "sink", "entropy", "distance"];

    public string Description =>
        $"Scores measured on {sequences} sequences of {repeatLength} random tokens repeated twice (seed {seed}), from hook_pattern.";

    public IReadOnlyList<HeadScores> Compute(TransformerModel model, IProgress<AnalysisProgress>? progress, CancellationToken cancel)
    {
        var c = model.Config;
        bool bos = c.BosTokenId is int b && b < c.VocabSize;
        int n = Math.Max(2, Math.Min(repeatLength, (c.MaxPositions - (bos ? 1 : 0)) / 2));
        int L = c.NLayers, H = c.NHeads;
        var sums = new double[Names.Length, L, H];
        var rng = new Random(seed);
        for (int s = 0; s < sequences; s++)
        {
            cancel.ThrowIfCancellationRequested();
            progress?.Report(new AnalysisProgress("detector scores", s, sequences));
            var tokens = Tokens(rng, n, c.VocabSize, bos ? c.BosTokenId : null);
            var (_, cache) = model.RunWithCache(ModelInput.Single(tokens), name => name.EndsWith("attn.hook_pattern", StringComparison.Ordinal));
            for (int l = 0; l < L; l++)
            {
                var pattern = cache[$"blocks.{l}.attn.hook_pattern"].Data; // [1, head, q, k]
                for (int h = 0; h < H; h++)
                {
                    var a = pattern.AsSpan(h * tokens.Length * tokens.Length, tokens.Length * tokens.Length);
                    var scores = Score(a, tokens.Length, n, bos ? 1 : 0);
                    for (int i = 0; i < Names.Length; i++)
                    {
                        sums[i, l, h] += scores[i];
                    }
                }
            }
        }
        progress?.Report(new AnalysisProgress("detector scores", sequences, sequences));
        string[] definitions =
        [
            "mean attention from each token to the one before it (q ≥ 1), on repeated random tokens",
            "mean attention from each second-half token to the token after its earlier copy (q − n + 1), on repeated random tokens",
            "mean attention from each second-half token to its earlier copy (q − n), on repeated random tokens",
            "mean attention to the first position, over all queries, on repeated random tokens",
            "mean entropy of the attention distribution in nats (q ≥ 1; low = focused), on repeated random tokens",
            "mean expected distance Σ A[q,k]·(q − k) looked back, on repeated random tokens",
        ];
        return Names.Select((name, i) => HeadScores.Create(name, definitions[i], L, H, (l, h) => (float)(sums[i, l, h] / sequences))).ToArray();
    }

    /// <summary>[BOS] r₁ … rₙ r₁ … rₙ with rᵢ uniform over the vocabulary (BOS itself excluded).</summary>
    internal static int[] Tokens(Random rng, int n, int vocab, int? bos)
    {
        var r = new int[n];
        for (int i = 0; i < n; i++)
        {
            do
            {
                r[i] = rng.Next(vocab);
            }
            while (vocab > 1 && r[i] == bos);
        }
        return [.. bos is int b ? [b] : Array.Empty<int>(), .. r, .. r];
    }

    /// <summary>The six scores of one head's T × T pattern; <paramref name="offset"/> is 1 with a BOS in front, else 0.</summary>
    internal static double[] Score(ReadOnlySpan<float> a, int T, int n, int offset)
    {
        double prev = 0, induction = 0, duplicate = 0, sink = 0, entropy = 0, distance = 0;
        int secondHalf = 0;
        for (int q = 0; q < T; q++)
        {
            var row = a.Slice(q * T, T);
            sink += row[0];
            double d = 0;
            for (int k = 0; k <= q; k++)
            {
                d += row[k] * (q - k);
            }
            distance += d;
            if (q >= 1)
            {
                prev += row[q - 1];
                double e = 0;
                for (int k = 0; k <= q; k++)
                {
                    if (row[k] > 0)
                    {
                        e -= row[k] * Math.Log(row[k]);
                    }
                }
                entropy += e;
            }
            if (q >= offset + n)
            {
                secondHalf++;
                induction += row[q - n + 1];
                duplicate += row[q - n];
            }
        }
        return [prev / (T - 1), induction / secondHalf, duplicate / secondHalf, sink / T, entropy / (T - 1), distance / T];
    }
}
