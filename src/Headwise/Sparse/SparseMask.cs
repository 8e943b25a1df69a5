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
}
