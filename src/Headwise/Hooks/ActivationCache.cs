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
}
