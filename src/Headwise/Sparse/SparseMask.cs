using Headwise.Compute;

namespace Headwise.Sparse;

/// <summary>
/// An <see cref="AttentionSparsity"/> as an explicit element mask (<see cref="AttentionSparsity.Keeps"/>): the masked path
/// the forward runs a sparse spec on when hooks observe its scores or pattern (scores of dropped pairs set to −∞ before
/// the softmax), and the pair counts behind a policy's density.
/// Query t of a step sits at key index i = pastLen + t; query head h.
/// </summary>
public static class SparseMask
{
    /// <summary>Sets to −∞ the scores of the pairs <paramref name="sparsity"/> drops.</summary>
    // scores: (NH, T, S)
    public static void Apply(Span<float> scores, AttentionSparsity sparsity, int T, int S, int NH, int pastLen)
    {
        if (sparsity.IsDense)
        {
            return;
        }
        for (int h = 0; h < NH; h++)
        {
            for (int t = 0; t < T; t++)
            {
                var row = scores.Slice((h * T + t) * S, S);
                int i = pastLen + t;
                for (int s = 0; s < S; s++)
                {
                    if (!sparsity.Keeps(h, i, s))
                    {
                        row[s] = float.NegativeInfinity;
                    }
                }
            }
        }
    }

    /// <summary>(kept, causal): the pairs of real queries and real keys (<paramref name="keyMask"/> 1, or every position when
    /// empty) with key ≤ query that <paramref name="sparsity"/> keeps, and all of them, over the NH heads.</summary>
    public static (long Kept, long Causal) Count(AttentionSparsity sparsity, int T, int S, int NH, int pastLen, ReadOnlySpan<byte> keyMask)
    {
        if (keyMask.IsEmpty)
        {
            return CountUnpadded(sparsity, T, S, NH, pastLen);
        }
        long kept = 0, causal = 0;
        for (int t = 0; t < T; t++)
        {
            int i = pastLen + t;
            if (i >= S || (!keyMask.IsEmpty && keyMask[i] == 0))
            {
                continue;
            }
            for (int s = 0; s <= i; s++)
            {
                if (!keyMask.IsEmpty && keyMask[s] == 0)
                {
                    continue;
                }
                causal += NH;
                if (sparsity.IsDense)
                {
                    kept += NH;
                    continue;
                }
                for (int h = 0; h < NH; h++)
                {
                    kept += sparsity.Keeps(h, i, s) ? 1 : 0;
                }
            }
        }
        return (kept, causal);
    }

    // Count without padding, by intervals instead of pair by pair (a 32K-token prefill has 5·10⁸ causal pairs per head): per
    // query row, the keys it sees are [0, i + 1) without a window, else the window [i − W + 1, i + 1) ∪ the sinks [0, min(S, i + 1));
    // with blocks, each listed key block's interval is intersected with that set. Equal to the pair-by-pair count (tested).
    private static (long Kept, long Causal) CountUnpadded(AttentionSparsity sparsity, int T, int S, int NH, int pastLen)
    {
        long kept = 0, causal = 0;
        int end = Math.Min(pastLen + T, S);
        var blocks = sparsity.Blocks;
        for (int i = pastLen; i < end; i++)
        {
            causal += (long)(i + 1) * NH;
            if (blocks is null)
            {
                kept += (long)Visible(sparsity, i, 0, i + 1) * NH;
                continue;
            }
            int B = blocks.BlockSize, qb = i / B;
            if (qb >= blocks.QueryBlocks)
            {
                continue;
            }
            for (int h = 0; h < NH; h++)
            {
                foreach (int kb in blocks.KeyBlocks(h, qb))
                {
                    kept += Visible(sparsity, i, kb * B, Math.Min((kb + 1) * B, i + 1));
                }
            }
        }
        return (kept, causal);
    }

    // keys s in [a, b) (b ≤ i + 1) that query i sees at the element level (window and sinks)
    private static int Visible(AttentionSparsity sparsity, int i, int a, int b)
    {
        if (sparsity.Window == 0)
        {
            return Math.Max(0, b - a);
        }
        int w0 = Math.Max(0, i - sparsity.Window + 1), s1 = Math.Min(sparsity.Sinks, i + 1);
        return Overlap(a, b, w0, i + 1) + Overlap(a, b, 0, s1) - Overlap(a, b, w0, s1);
    }

    private static int Overlap(int a0, int a1, int b0, int b1) => Math.Max(0, Math.Min(a1, b1) - Math.Max(a0, b0));
}
