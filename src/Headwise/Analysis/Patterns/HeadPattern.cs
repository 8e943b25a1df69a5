namespace Headwise.Analysis;

/// <summary>
/// One head's attention pattern on one sequence, read from <c>blocks.{layer}.attn.hook_pattern</c>: what a notebook displays
/// (<c>display(cache.Pattern(3, 6, tokens))</c> with Headwise.Interactive) and what a token view draws.
/// </summary>
/// <param name="Head">The (query) head.</param>
/// <param name="Weights">weights: (TQ, TK) row-major, row q = the attention of query q over the keys.</param>
/// <param name="Tokens">A label per key position (the queries are the last <c>TQ</c> of them), or null: positions only.</param>
public sealed record HeadPattern(HeadId Head, int QueryLength, int KeyLength, float[] Weights, IReadOnlyList<string>? Tokens = null)
{
    public float this[int query, int key] => Weights[query * KeyLength + key];

    /// <summary>The label of key position <paramref name="i"/>: its token when known, else "#i".</summary>
    public string Label(int i) => Tokens is { } t ? t[i] : $"#{i}";

    /// <summary>The same pattern with token labels (one per key position), e.g. <c>ReportBuilder.Labels(tokenizer, ids)</c>.</summary>
    public HeadPattern WithTokens(IReadOnlyList<string> tokens) => tokens.Count == KeyLength ? this with { Tokens = tokens }
        : throw new InvalidInputException($"{tokens.Count} token labels for a pattern over {KeyLength} key positions");
}

/// <summary>Several heads' patterns on the same sequence, shown side by side (a token view with one row per head).</summary>
public sealed record HeadPatternSet(IReadOnlyList<HeadPattern> Heads)
{
    public static HeadPatternSet Of(params HeadPattern[] heads)
    {
        if (heads.Length == 0)
        {
            throw new InvalidInputException("a pattern set needs at least one head");
        }
        if (heads.Any(h => h.QueryLength != heads[0].QueryLength || h.KeyLength != heads[0].KeyLength))
        {
            throw new InvalidInputException("the heads of a pattern set must cover the same sequence: "
                + string.Join(", ", heads.Select(h => $"{h.Head} is {h.QueryLength}×{h.KeyLength}")));
        }
        return new HeadPatternSet(heads);
    }
}
