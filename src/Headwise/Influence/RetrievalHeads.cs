using Headwise.Analysis;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Influence;

/// <summary>A head and its retrieval score: the share of copy steps at which its strongest attention is on the token being copied.</summary>
public sealed record RetrievalHead(HeadId Head, double Score);

/// <summary>
/// Retrieval heads found as AttentionInfluence finds them (after Wu et al.'s retrieval-head score): on a synthetic
/// copy-from-context task — a random token sequence x₁..x_K followed by itself — the model copying x_{i+1} at the query position
/// of the second x_i is retrieving from context, and a head retrieves when its argmax attention at that query is on x_{i+1}'s
/// first occurrence. A head's score is the share of such steps (over every prompt and copy position) where it does; heads are
/// ranked by score and the top share is taken (at least one head).
/// </summary>
public static class RetrievalHeads
{
    /// <summary>Every head with its retrieval score, highest first (ties: lower layer, then lower head, first).</summary>
    /// <param name="prompts">random sequences to copy</param>
    /// <param name="seed">seed of the sequences (the same seed gives the same heads, so every shard of a run agrees)</param>
    /// <param name="firstToken">the lowest token id drawn (to keep special tokens at the start of a vocabulary out)</param>
    public static List<RetrievalHead> Rank(TransformerModel model, int prompts = 8, int seed = 0, int firstToken = 0)
    {
        int K = Math.Min(64, model.Config.MaxPositions / 2), T = 2 * K, V = model.Config.VocabSize;
        model.Config.RequireUniformHeads("retrieval-head detection");
        int NL = model.Config.NLayers, NH = model.Config.NHeads;
        if (K < 2 || firstToken >= V - 1)
        {
            throw new InvalidInputException($"the copy task needs a context of at least 4 positions and tokens to draw (context {model.Config.MaxPositions}, vocabulary {V})");
        }
        var rng = new Random(seed);
        var tokens = new int[prompts * T]; // (B, T): x₁..x_K x₁..x_K
        for (int b = 0; b < prompts; b++)
        {
            for (int i = 0; i < K; i++)
            {
                tokens[b * T + i] = tokens[b * T + K + i] = rng.Next(firstToken, V);
            }
        }
        var hits = new long[NL * NH];
        var hooks = new HookSet(NL);
        for (int l = 0; l < NL; l++)
        {
            int layer = l;
            hooks.Add(new HookPoint(layer, HookKind.Pattern), a => CountHits(a.Data.Span, prompts, NH, T, K, hits.AsSpan(layer * NH, NH)), observeOnly: true);
        }
        model.Forward(new ModelInput(tokens, prompts, T), hooks);
        long steps = (long)prompts * (K - 1);
        return [.. Enumerable.Range(0, NL * NH)
            .Select(i => new RetrievalHead(new HeadId(i / NH, i % NH), (double)hits[i] / steps))
            .OrderByDescending(r => r.Score).ThenBy(r => r.Head)];
    }

    /// <summary>The top <paramref name="share"/> of <see cref="Rank"/>'s heads (default 3%, at least one).</summary>
    public static List<RetrievalHead> Top(TransformerModel model, double share = 0.03, int prompts = 8, int seed = 0, int firstToken = 0)
    {
        if (!(share > 0 && share <= 1))
        {
            throw new InvalidInputException($"the share of heads must be in (0, 1] (got {share})");
        }
        var ranked = Rank(model, prompts, seed, firstToken);
        int count = Math.Max(1, (int)Math.Round(share * ranked.Count));
        return ranked.GetRange(0, count);
    }

    // pattern: [B, NH, T, T]; the copy step at query K + i (second x_{i+1}'s predecessor, i in 0..K−2) should look at key i + 1
    private static void CountHits(ReadOnlySpan<float> pattern, int B, int NH, int T, int K, Span<long> hits)
    {
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                for (int i = 0; i + 1 < K; i++)
                {
                    int q = K + i;
                    var row = pattern.Slice(((b * NH + h) * T + q) * T, q + 1);
                    int best = 0;
                    for (int k = 1; k < row.Length; k++)
                    {
                        if (row[k] > row[best])
                        {
                            best = k;
                        }
                    }
                    if (best == i + 1)
                    {
                        hits[h]++;
                    }
                }
            }
        }
    }
}
