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
