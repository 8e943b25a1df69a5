using Headwise.Hooks;
using Headwise.Models;
using Headwise.Tokenizers;

namespace Headwise.Analysis.Patterns;

/// <summary>Every head's attention pattern on one prompt, from <c>blocks.{L}.attn.hook_pattern</c>.</summary>
public static class PatternAnalysis
{
    /// <summary>
    /// Runs <paramref name="tokens"/> once, caching only the patterns; labels each position with the tokenizer's text of its id
    /// (or the id itself when there is no tokenizer).
    /// </summary>
    public static AttentionPatterns Run(TransformerModel model, int[] tokens, TextTokenizer? tokenizer = null, CancellationToken cancel = default,
        Action<HookSet>? baseHooks = null)
    {
        if (tokens.Length == 0)
        {
            throw new InvalidInputException("tokens: at least one token id is needed");
        }
        cancel.ThrowIfCancellationRequested();
        var (_, cache) = model.RunWithCache(ModelInput.Single(tokens), name => name.EndsWith("attn.hook_pattern", StringComparison.Ordinal),
            baseHooks: baseHooks);
        int T = tokens.Length, L = model.Config.NLayers, H = model.Config.NHeads;
        var patterns = new float[L][][];
        for (int l = 0; l < L; l++)
        {
            var data = cache[$"blocks.{l}.attn.hook_pattern"].Data; // [1, head, q, k]
            patterns[l] = new float[H][];
            for (int h = 0; h < H; h++)
            {
                patterns[l][h] = data.AsSpan(h * T * T, T * T).ToArray();
            }
        }
        var labels = tokens.Select(id => tokenizer is null ? id.ToString(System.Globalization.CultureInfo.InvariantCulture) : tokenizer.TokenText(id)).ToArray();
        return new AttentionPatterns(tokens, labels, patterns);
    }
}
