namespace Headwise.Compute;

/// <summary>
/// Which query–key pairs a sparse attention computes, on top of causality and the key mask. The contract between the
/// sparse-attention policies (window + sinks, top-k blocks, chunks — they decide) and the blocked attention kernel (it
/// computes only what is kept; skipped blocks cost nothing).
/// <para>Element level: a query at key index i (= pastLen + t) sees key s iff s ≤ i and
/// (<see cref="Window"/> = 0 or i − s &lt; <see cref="Window"/> or s &lt; <see cref="Sinks"/>).</para>
/// <para>Block level, when <see cref="Blocks"/> is set: in addition, only the key blocks listed for the query's
/// (query head, query block) are computed.</para>
/// </summary>
public sealed class AttentionSparsity
{
    /// <summary>All causal pairs: what <see cref="Kernels.Attention(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, int, int, int, float, ReadOnlySpan{byte}, int)"/> computes with window 0.</summary>
    public static readonly AttentionSparsity Dense = new();

    /// <summary>Keys further back than this many positions are skipped (the query's own position counts as 0 back); 0 = no window.</summary>
    public int Window { get; init; }

    /// <summary>With a window: the first this many keys stay visible to every later query (StreamingLLM's attention sinks).</summary>
    public int Sinks { get; init; }

    /// <summary>The key blocks each (query head, query block) computes; null = every block the element-level rule leaves.</summary>
    public BlockSelection? Blocks { get; init; }

    /// <summary>True when every causal pair is kept.</summary>
    public bool IsDense => Window == 0 && Blocks is null;

    /// <summary>Whether the query at key index <paramref name="i"/> sees key <paramref name="s"/> at the element level
    /// (causality, window, sinks; not the blocks).</summary>
    public bool Sees(int i, int s) => s <= i && (Window == 0 || i - s < Window || s < Sinks);

    /// <summary>Whether query head <paramref name="head"/>'s query at key index <paramref name="i"/> computes key
    /// <paramref name="s"/>: <see cref="Sees"/> and, with <see cref="Blocks"/>, the key's block listed for the query's block.
    /// The per-element rule the blocked kernel's masking and the masked references follow.</summary>
    public bool Keeps(int head, int i, int s) =>
        Sees(i, s) && (Blocks is null || Blocks.Contains(head, i / Blocks.BlockSize, s / Blocks.BlockSize));
}

/// <summary>
/// The key blocks a block-sparse attention computes, per (query head, query block), as compressed rows (CSR). Blocks are
/// <see cref="BlockSize"/> positions wide over the key index: query t of a step sits in block (pastLen + t) / BlockSize and key
/// s in block s / BlockSize, so query block b and key block b are the diagonal block.
/// </summary>
public sealed class BlockSelection
{
    private readonly int[] _rowStart;
    private readonly int[] _keyBlocks;

    /// <param name="blockSize">positions per block (&gt; 0)</param>
    /// <param name="heads">query heads NH</param>
    /// <param name="queryBlocks">query blocks per head</param>
    /// <param name="rowStart">(heads · queryBlocks + 1): row r = head · queryBlocks + queryBlock lists
    /// keyBlocks[rowStart[r] .. rowStart[r + 1])</param>
    /// <param name="keyBlocks">per row, strictly ascending key block indices, each ≤ the row's query block</param>
    public BlockSelection(int blockSize, int heads, int queryBlocks, int[] rowStart, int[] keyBlocks)
    {
        if (blockSize <= 0 || heads <= 0 || queryBlocks < 0)
        {
            throw new ArgumentException($"BlockSelection: block size and heads must be > 0 and query blocks ≥ 0 (got {blockSize}, {heads}, {queryBlocks})");
        }
        int rows = heads * queryBlocks;
        if (rowStart.Length != rows + 1 || rowStart[0] != 0 || rowStart[rows] != keyBlocks.Length)
        {
            throw new ArgumentException($"BlockSelection: rowStart must have heads·queryBlocks + 1 = {rows + 1} entries from 0 to keyBlocks.Length = {keyBlocks.Length}");
        }
        for (int r = 0; r < rows; r++)
        {
            int qb = r % queryBlocks;
            if (rowStart[r + 1] < rowStart[r])
            {
                throw new ArgumentException($"BlockSelection: rowStart decreases at row {r}");
            }
            for (int j = rowStart[r]; j < rowStart[r + 1]; j++)
            {
                int kb = keyBlocks[j];
                if (kb < 0 || kb > qb || (j > rowStart[r] && kb <= keyBlocks[j - 1]))
                {
                    throw new ArgumentException($"BlockSelection: row {r} (head {r / queryBlocks}, query block {qb}) lists key block {kb}: blocks must be strictly ascending and in 0..{qb}");
                }
            }
        }
        BlockSize = blockSize;
        Heads = heads;
        QueryBlocks = queryBlocks;
        _rowStart = rowStart;
        _keyBlocks = keyBlocks;
    }

    public int BlockSize { get; }
    public int Heads { get; }
    public int QueryBlocks { get; }

    /// <summary>Ascending key blocks computed for query head <paramref name="head"/>'s query block <paramref name="queryBlock"/>.</summary>
    public ReadOnlySpan<int> KeyBlocks(int head, int queryBlock)
    {
        int r = head * QueryBlocks + queryBlock;
        return _keyBlocks.AsSpan(_rowStart[r], _rowStart[r + 1] - _rowStart[r]);
    }

    /// <summary>Whether key block <paramref name="keyBlock"/> is listed for (<paramref name="head"/>,
    /// <paramref name="queryBlock"/>); false for a query block past <see cref="QueryBlocks"/>.</summary>
    public bool Contains(int head, int queryBlock, int keyBlock) =>
        queryBlock < QueryBlocks && KeyBlocks(head, queryBlock).BinarySearch(keyBlock) >= 0;
}
