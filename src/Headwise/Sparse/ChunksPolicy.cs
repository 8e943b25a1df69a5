using Headwise.Compute;

namespace Headwise.Sparse;

/// <summary>
/// <c>chunks:B,K</c> — dynamic chunks in the spirit of DHSA (Dynamic Hierarchical Sparse Attention), at the granularity of
/// blocks of B positions so that a blocked kernel can skip what is dropped:
/// <list type="number">
/// <item>Segmentation: a chunk boundary goes before block b when its mean key (all kv heads, as one vector) turns away from
/// block b − 1's more than average — 1 − cos between neighbours above the mean of that dissimilarity over the step's
/// blocks. Chunks are runs of whole blocks of varying length, decided from the keys of the whole step (as DHSA segments
/// the prompt at prefill).</item>
/// <item>Chunk representation (DHSA's length-normalised aggregation): per kv head, the mean key of the chunk's real
/// tokens × √(tokens) — so a long chunk is neither drowned by averaging nor favoured by summing.</item>
/// <item>Selection: each query block scores every causal chunk by the head's mean-pooled query · the chunk's
/// representation and keeps the K best — always counting chunk 0 and its own chunk — then computes every block of the
/// kept chunks up to its own (DHSA upsamples chunk scores to tokens; here to blocks).</item>
/// </list>
/// </summary>
public sealed class ChunksPolicy : AttentionPolicy
{
    public ChunksPolicy(int blockSize, int keep)
    {
        if (blockSize < 1 || keep < 1)
        {
            throw new InvalidInputException($"chunks:{blockSize},{keep}: the block size B and the chunks kept K must be at least 1");
        }
        BlockSize = blockSize;
        Keep = keep;
    }

    public int BlockSize { get; }
    public int Keep { get; }

    public override string Spec => $"chunks:{BlockSize},{Keep}";

    /// <summary>The chunk of each of the <paramref name="count"/> blocks (0, 0, 1, 1, 1, 2, …) from the blocks' mean keys.</summary>
    // blockKeys: (nb, NKV·HD)
    public static int[] Segment(ReadOnlySpan<float> blockKeys, int[] count, int row)
    {
        int nb = count.Length;
        var chunkOf = new int[nb];
        if (nb < 2)
        {
            return chunkOf;
        }
        var turn = new float[nb];
        double sum = 0;
        for (int b = 1; b < nb; b++)
        {
            var prev = blockKeys.Slice((b - 1) * row, row);
            var cur = blockKeys.Slice(b * row, row);
            float norms = MathF.Sqrt(BlockPooling.Dot(prev, prev) * BlockPooling.Dot(cur, cur));
            turn[b] = norms > 0 ? 1 - BlockPooling.Dot(prev, cur) / norms : 0;
            sum += turn[b];
        }
        double mean = sum / (nb - 1);
        for (int b = 1; b < nb; b++)
        {
            chunkOf[b] = chunkOf[b - 1] + (turn[b] > mean ? 1 : 0);
        }
        return chunkOf;
    }

    // q: (T, NH, HD)  k: (S, NKV, HD)
    protected override AttentionSparsity Choose(ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask)
    {
        int B = BlockSize, nb = (S + B - 1) / B, group = NH / NKV, row = NKV * HD;
        int firstQb = pastLen / B, lastQb = (pastLen + T - 1) / B;
        var (pk, kCount) = BlockPooling.Keys(k, S, NKV, HD, B, keyMask);
        var (pq, qCount) = BlockPooling.Queries(q, T, NH, HD, B, pastLen, keyMask);
        var chunkOf = Segment(pk, kCount, row);
        int chunks = chunkOf[^1] + 1;

        // representation: Σ keys / √n = mean · √n, per chunk and kv head
        var rep = new float[chunks * row];
        var tokens = new int[chunks];
        for (int b = 0; b < nb; b++)
        {
            int c = chunkOf[b];
            tokens[c] += kCount[b];
            var dst = rep.AsSpan(c * row, row);
            var src = pk.AsSpan(b * row, row);
            for (int j = 0; j < row; j++)
            {
                dst[j] += src[j] * kCount[b];
            }
        }
        for (int c = 0; c < chunks; c++)
        {
            float norm = tokens[c] > 0 ? 1 / MathF.Sqrt(tokens[c]) : 0;
            foreach (ref float x in rep.AsSpan(c * row, row))
            {
                x *= norm;
            }
        }

        var rows = new BlockPooling.Rows(B, NH, nb);
        var score = new float[chunks];
        var kept = new List<int>();
        var blocks = new List<int>();
        for (int h = 0; h < NH; h++)
        {
            for (int qb = firstQb; qb <= lastQb; qb++)
            {
                if (qCount[qb] == 0)
                {
                    continue;
                }
                int own = chunkOf[qb];
                var query = pq.AsSpan((qb * NH + h) * HD, HD);
                for (int c = 0; c <= own; c++)
                {
                    score[c] = BlockPooling.Dot(query, rep.AsSpan(c * row + h / group * HD, HD));
                }
                BlockPooling.TopK(score.AsSpan(0, own + 1), Keep, [0, own], kept);
                blocks.Clear();
                for (int kb = 0; kb <= qb; kb++)
                {
                    if (kept.BinarySearch(chunkOf[kb]) >= 0)
                    {
                        blocks.Add(kb);
                    }
                }
                rows.Add(h, qb, blocks);
            }
        }
        return new AttentionSparsity { Blocks = rows.Build() };
    }
}
