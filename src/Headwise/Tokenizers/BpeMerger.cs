namespace Headwise.Tokenizers;

/// <summary>
/// The merge loop shared by every BPE flavour here: repeatedly merge the adjacent pair with the lowest priority
/// (a merge rank, or a negated score), the leftmost pair first among equal priorities, until no pair merges.
/// Uses a linked list and a priority queue, so long inputs stay near O(n log n).
/// </summary>
internal static class BpeMerger
{
    /// <summary>Looks up whether the pair (left, right) merges: its priority (lower merges first) and the merged id.</summary>
    internal delegate bool PairLookup(int left, int right, out double priority, out int merged);

    public static void Merge(List<int> symbols, PairLookup lookup, List<int> output)
    {
        int n = symbols.Count;
        if (n < 2)
        {
            output.AddRange(symbols);
            return;
        }

        int[] ids = [.. symbols];
        int[] prev = new int[n];
        int[] next = new int[n];
        bool[] dead = new bool[n];
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        var queue = new PriorityQueue<int, (double Priority, int Position)>();
        for (int i = 0; i + 1 < n; i++)
        {
            if (lookup(ids[i], ids[i + 1], out double p, out _))
            {
                queue.Enqueue(i, (p, i));
            }
        }

        while (queue.TryDequeue(out int i, out var key))
        {
            if (dead[i] || next[i] < 0)
            {
                continue;
            }

            int j = next[i];
            // Stale entry: the pair at i has changed since it was queued.
            if (!lookup(ids[i], ids[j], out double p, out int merged) || p != key.Priority)
            {
                continue;
            }

            ids[i] = merged;
            dead[j] = true;
            next[i] = next[j];
            if (next[j] >= 0)
            {
                prev[next[j]] = i;
            }

            if (prev[i] >= 0 && lookup(ids[prev[i]], ids[i], out double pl, out _))
            {
                queue.Enqueue(prev[i], (pl, prev[i]));
            }

            if (next[i] >= 0 && lookup(ids[i], ids[next[i]], out double pr, out _))
            {
                queue.Enqueue(i, (pr, i));
            }
        }

        for (int i = 0; i >= 0; i = next[i])
        {
            output.Add(ids[i]);
        }
    }
}
