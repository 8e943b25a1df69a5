namespace Headwise.Hooks;

/// <summary>
/// Activations recorded by <c>RunWithCache</c>, by TransformerLens hook name.
/// <example>
/// Direct logit attribution of every head to the answer token (the residual stream is linear, so each head's
/// contribution is its result vector, divided by the final LayerNorm's scale, dotted with the answer's unembedding):
/// <code>
/// var (logits, cache) = model.RunWithCache(input, name => name.EndsWith("hook_result") || name == "ln_final.hook_scale");
/// var result = cache["blocks.0.attn.hook_result"];   // [batch, pos, head, d_model]
/// var scale = cache["ln_final.hook_scale"];          // [batch, pos, 1]
/// </code>
/// </example>
/// </summary>
public sealed class ActivationCache
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    public Tensor this[string name] => _tensors.TryGetValue(name, out var t) ? t
        : throw new InvalidInputException($"'{name}' is not in the cache (cached: {_tensors.Count} points; check the filter passed to RunWithCache)");

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public IEnumerable<string> Names => _tensors.Keys;

    public int Count => _tensors.Count;

    /// <summary>
    /// One head's pattern from <c>blocks.{layer}.attn.hook_pattern</c> [batch, head, qpos, kpos], for sequence
    /// <paramref name="batch"/>, labelled with <paramref name="tokens"/> when given (one per key position).
    /// </summary>
    public Analysis.HeadPattern Pattern(int layer, int head, int batch = 0, IReadOnlyList<string>? tokens = null)
    {
        string name = new HookPoint(layer, HookKind.Pattern).Name;
        if (!_tensors.TryGetValue(name, out var t))
        {
            throw new InvalidInputException($"'{name}' is not in the cache: run RunWithCache with a filter that keeps hook_pattern (layer {layer})");
        }
        int B = t.Shape[0], NH = t.Shape[1], TQ = t.Shape[2], TK = t.Shape[3];
        if ((uint)head >= (uint)NH || (uint)batch >= (uint)B)
        {
            throw new InvalidInputException($"head {layer}.{head} of sequence {batch}: the cached pattern has {NH} heads and {B} sequence(s)");
        }
        var weights = t.Data.AsSpan((batch * NH + head) * TQ * TK, TQ * TK).ToArray();
        var p = new Analysis.HeadPattern(new Analysis.HeadId(layer, head), TQ, TK, weights);
        return tokens is null ? p : p.WithTokens(tokens);
    }

    /// <summary>Several heads' patterns of one sequence, e.g. <c>cache.Patterns([new(3, 6), new(4, 1)], tokens: labels)</c>.</summary>
    public Analysis.HeadPatternSet Patterns(IEnumerable<Analysis.HeadId> heads, int batch = 0, IReadOnlyList<string>? tokens = null)
        => Analysis.HeadPatternSet.Of(heads.Select(h => Pattern(h.Layer, h.Head, batch, tokens)).ToArray());

    internal void Store(string name, Tensor t) => _tensors[name] = t;

    /// <summary>Copies the activation in: into this cache's tensor of the same name and shape when there is one (a cache
    /// passed back to <c>RunWithCache</c> is refilled without allocating), else into a new one. New arrays skip zeroing:
    /// every value is overwritten by the copy.</summary>
    internal void StoreCopy(ActivationView activation)
    {
        if (_tensors.TryGetValue(activation.Name, out var t) && t.Shape.AsSpan().SequenceEqual(activation.Shape))
        {
            activation.Data.Span.CopyTo(t.Data);
        }
        else
        {
            _tensors[activation.Name] = activation.ToTensor();
        }
    }

    /// <summary>Drops the tensors not in <paramref name="keep"/> (a refilled cache holds exactly what the last run stored).</summary>
    internal void RemoveAllBut(HashSet<string> keep)
    {
        foreach (var name in _tensors.Keys.Where(n => !keep.Contains(n)).ToArray())
        {
            _tensors.Remove(name);
        }
    }
}
