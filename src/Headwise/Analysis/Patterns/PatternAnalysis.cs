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
        var labels = tokens.Select(id => tokenizer is null ? id.ToString(System.Globalization.CultureInfo.InvariantCulture) : tokenizer.TokenText(id)).ToArray();
        return Collect(model, ModelInput.Single(tokens), labels, baseHooks);
    }

    /// <summary>
    /// Runs one image through a vision model (<see cref="ModelInput.Image"/>), caching only the patterns; position 0 is
    /// labelled "CLS", position 1 + r·columns + c "r,c" (the patch in grid row r, column c).
    /// </summary>
    public static AttentionPatterns RunImage(TransformerModel model, ModelInput image, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        var px = image.Pixels ?? throw new InvalidInputException("RunImage: the input holds no image (ModelInput.Image)");
        cancel.ThrowIfCancellationRequested();
        int columns = px.Width / model.Config.Vision!.PatchSize;
        var labels = new string[image.SeqLen];
        labels[0] = "CLS";
        for (int i = 1; i < labels.Length; i++)
        {
            labels[i] = $"{(i - 1) / columns},{(i - 1) % columns}";
        }
        return Collect(model, image, labels, baseHooks);
    }

    private static AttentionPatterns Collect(TransformerModel model, ModelInput input, string[] labels, Action<HookSet>? baseHooks)
    {
        var (_, cache) = model.RunWithCache(input, name => name.EndsWith("attn.hook_pattern", StringComparison.Ordinal), baseHooks: baseHooks);
        model.Config.RequireUniformHeads("pattern analysis");
        int T = input.SeqLen, L = model.Config.NLayers, H = model.Config.NHeads;
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
        return new AttentionPatterns(input.Tokens, labels, patterns);
    }
}
