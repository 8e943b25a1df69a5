namespace Headwise.Sparse;

/// <summary>What the block policies share: mean-pooled queries and keys per block of B positions over the key index, and
/// the CSR rows of a <see cref="Compute.BlockSelection"/>.</summary>
internal static class BlockPooling
{
    /// <summary>Mean key per (block, kv head) over the block's real keys; count[block] = its real keys.</summary>
    // k: (S, NKV, HD) → (nb, NKV, HD)
    public static (float[] Mean, int[] Count) Keys(ReadOnlySpan<float> k, int S, int NKV, int HD, int B, ReadOnlySpan<byte> keyMask)
    {
        int nb = (S + B - 1) / B, row = NKV * HD;
        var mean = new float[nb * row];
        var count = new int[nb];
        for (int s = 0; s < S; s++)
        {
            if (!keyMask.IsEmpty && keyMask[s] == 0)
            {
                continue;
            }
            int kb = s / B;
            count[kb]++;
            var dst = mean.AsSpan(kb * row, row);
            var src = k.Slice(s * row, row);
            for (int j = 0; j < row; j++)
            {
                dst[j] += src[j];
            }
        }
        Divide(mean, count, row);
        return (mean, count);
    }

    /// <summary>Mean query per (query block, head) over the step's real queries in the block (query t sits at key index
    /// pastLen + t); blocks without one of this step's queries stay 0 with count 0.</summary>
    // q: (T, NH, HD) → (nb, NH, HD) with nb = ceil((pastLen + T) / B)
    public static (float[] Mean, int[] Count) Queries(ReadOnlySpan<float> q, int T, int NH, int HD, int B, int pastLen, ReadOnlySpan<byte> keyMask)
    {
        int nb = (pastLen + T + B - 1) / B, row = NH * HD;
        var mean = new float[nb * row];
        var count = new int[nb];
        for (int t = 0; t < T; t++)
        {
            int i = pastLen + t;
            if (!keyMask.IsEmpty && keyMask[i] == 0)
            {
                continue;
            }
            count[i / B]++;
            var dst = mean.AsSpan(i / B * row, row);
            var src = q.Slice(t * row, row);
            for (int j = 0; j < row; j++)
            {
                dst[j] += src[j];
            }
        }
        Divide(mean, count, row);
        return (mean, count);
    }

    private static void Divide(float[] sums, int[] count, int row)
    {
        for (int b = 0; b < count.Length; b++)
        {
            if (count[b] > 1)
            {
                float inv = 1f / count[b];
                foreach (ref float x in sums.AsSpan(b * row, row))
                {
                    x *= inv;
                }
            }
        }
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float sum = 0;
        for (int j = 0; j < a.Length; j++)
        {
            sum += a[j] * b[j];
        }
        return sum;
    }

    /// <summary>Keeps the forced candidates, then the best-scoring others until <paramref name="keep"/> are kept (ties: the
    /// lower index); returns the kept indices ascending into <paramref name="kept"/>.</summary>
    public static void TopK(ReadOnlySpan<float> score, int keep, ReadOnlySpan<int> forced, List<int> kept)
    {
        kept.Clear();
        foreach (int f in forced)
        {
            if (f >= 0 && f < score.Length && !kept.Contains(f))
            {
                kept.Add(f);
            }
        }
        var order = new List<int>(score.Length);
        for (int c = 0; c < score.Length; c++)
        {
            if (!kept.Contains(c))
            {
                order.Add(c);
            }
        }
        var s = score.ToArray();
        order.Sort((a, b) => s[b].CompareTo(s[a]) is var cmp && cmp != 0 ? cmp : a.CompareTo(b));
        for (int j = 0; j < order.Count && kept.Count < keep; j++)
        {
            kept.Add(order[j]);
        }
        kept.Sort();
    }

    /// <summary>Rows of a block selection, head-major (row = head · queryBlocks + query block), appended in order.</summary>
    public sealed class Rows(int blockSize, int heads, int queryBlocks)
    {
        private readonly int[] _rowStart = new int[heads * queryBlocks + 1];
        private readonly List<int> _keyBlocks = [];
        private int _next;

        /// <summary>Appends the next row's ascending key blocks (rows must come in order; skipped rows stay empty).</summary>
        public void Add(int head, int queryBlock, IEnumerable<int> keyBlocks)
        {
            int r = head * queryBlocks + queryBlock;
            for (; _next < r; _next++)
            {
                _rowStart[_next + 1] = _keyBlocks.Count;
            }
            _keyBlocks.AddRange(keyBlocks);
            _rowStart[r + 1] = _keyBlocks.Count;
            _next = r + 1;
        }

        public Compute.BlockSelection Build()
        {
            for (; _next < heads * queryBlocks; _next++)
            {
                _rowStart[_next + 1] = _keyBlocks.Count;
            }
            return new Compute.BlockSelection(blockSize, heads, queryBlocks, _rowStart, [.. _keyBlocks]);
        }
    }
}
