using Headwise.Compute;

namespace Headwise.Sparse;

/// <summary>
/// <c>topk-blocks:B,K[,proxy:P]</c>: positions are cut into blocks of B; each query block keeps K key blocks — always block 0
/// and its own (diagonal) block, then the causal blocks with the highest estimated score (ties: the earlier block) — and
/// computes nothing else. K counts the forced blocks (at K = 1 both are still kept).
/// <para>Estimated score, without proxy: the head's mean-pooled query of the block · the mean-pooled key of the key block
/// (its kv head), so every head chooses its own blocks.</para>
/// <para>With <c>proxy:P</c> (ProxyAttn): the NH heads form P groups of consecutive heads (head h in group h·P / NH), and each
/// group is represented by one proxy head — the mean of its heads' queries and of their kv heads' keys. The proxy's pooled
/// query is scored against every key one by one and a key block scores its best key (finer than pooling both sides);
/// the proxy's choice holds for every head of its group. ProxyAttn's per-head dynamic budgets are not reproduced: every
/// head keeps K blocks.</para>
/// </summary>
public sealed class TopKBlocksPolicy : AttentionPolicy
{
    public TopKBlocksPolicy(int blockSize, int keep, int proxyHeads = 0)
    {
        if (blockSize < 1 || keep < 1 || proxyHeads < 0)
        {
            throw new InvalidInputException($"topk-blocks:{blockSize},{keep}: the block size B and the blocks kept K must be at least 1 (proxy P 0 or more)");
        }
        BlockSize = blockSize;
        Keep = keep;
        ProxyHeads = proxyHeads;
    }

    public int BlockSize { get; }
    public int Keep { get; }

    /// <summary>0 = every head decides for itself.</summary>
    public int ProxyHeads { get; }

    public override string Spec => ProxyHeads == 0 ? $"topk-blocks:{BlockSize},{Keep}" : $"topk-blocks:{BlockSize},{Keep},proxy:{ProxyHeads}";

    // q: (T, NH, HD)  k: (S, NKV, HD)
    protected override AttentionSparsity Choose(ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask)
    {
        int B = BlockSize, nb = (S + B - 1) / B, group = NH / NKV;
        int firstQb = pastLen / B, lastQb = (pastLen + T - 1) / B;
        var (pq, qCount) = BlockPooling.Queries(q, T, NH, HD, B, pastLen, keyMask);
        var rows = new BlockPooling.Rows(B, NH, nb);
        var score = new float[nb];
        var kept = new List<int>();
        if (ProxyHeads == 0)
        {
            var (pk, _) = BlockPooling.Keys(k, S, NKV, HD, B, keyMask);
            for (int h = 0; h < NH; h++)
            {
                for (int qb = firstQb; qb <= lastQb; qb++)
                {
                    if (qCount[qb] == 0)
                    {
                        continue;
                    }
                    var query = pq.AsSpan((qb * NH + h) * HD, HD);
                    for (int kb = 0; kb <= qb; kb++)
                    {
                        score[kb] = BlockPooling.Dot(query, pk.AsSpan((kb * NKV + h / group) * HD, HD));
                    }
                    BlockPooling.TopK(score.AsSpan(0, qb + 1), Keep, [0, qb], kept);
                    rows.Add(h, qb, kept);
                }
            }
            return new AttentionSparsity { Blocks = rows.Build() };
        }

        // proxy heads: group p holds heads [p·NH/P, (p+1)·NH/P)
        int P = Math.Min(ProxyHeads, NH);
        var choice = new List<int>[P * nb];
        var proxyQ = new float[HD];
        var proxyK = new float[S * HD];
        for (int p = 0; p < P; p++)
        {
            int h0 = (p * NH + P - 1) / P, h1 = ((p + 1) * NH + P - 1) / P; // heads h with h·P / NH = p
            int g0 = h0 / group, g1 = (h1 - 1) / group + 1;                   // their kv heads
            // the proxy's keys: the mean of the group's kv heads, key by key
            Array.Clear(proxyK);
            for (int s = 0; s < S; s++)
            {
                var dst = proxyK.AsSpan(s * HD, HD);
                for (int g = g0; g < g1; g++)
                {
                    var src = k.Slice((s * NKV + g) * HD, HD);
                    for (int d = 0; d < HD; d++)
                    {
                        dst[d] += src[d] / (g1 - g0);
                    }
                }
            }
            for (int qb = firstQb; qb <= lastQb; qb++)
            {
                if (qCount[qb] == 0)
                {
                    continue;
                }
                Array.Clear(proxyQ);
                for (int h = h0; h < h1; h++)
                {
                    var src = pq.AsSpan((qb * NH + h) * HD, HD);
                    for (int d = 0; d < HD; d++)
                    {
                        proxyQ[d] += src[d] / (h1 - h0);
                    }
                }
                // a key block scores its best key
                for (int kb = 0; kb <= qb; kb++)
                {
                    float best = float.NegativeInfinity;
                    for (int s = kb * B; s < Math.Min(S, (kb + 1) * B); s++)
                    {
                        if (keyMask.IsEmpty || keyMask[s] != 0)
                        {
                            best = Math.Max(best, BlockPooling.Dot(proxyQ, proxyK.AsSpan(s * HD, HD)));
                        }
                    }
                    score[kb] = best;
                }
                BlockPooling.TopK(score.AsSpan(0, qb + 1), Keep, [0, qb], kept);
                choice[p * nb + qb] = [.. kept];
            }
        }
        for (int h = 0; h < NH; h++)
        {
            for (int qb = firstQb; qb <= lastQb; qb++)
            {
                if (choice[h * P / NH * nb + qb] is { } blocks)
                {
                    rows.Add(h, qb, blocks);
                }
            }
        }
        return new AttentionSparsity { Blocks = rows.Build() };
    }
}
