using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Interventions;

/// <summary>
/// How much each head's output on the last tokens depends on the context before them [Vision-aware Head Divergence: the
/// change in a head's output when the image is removed — here, any context]. The prompt is split into a kept prefix (e.g. BOS),
/// the context, and the final <c>k</c> tokens; the context is removed (or replaced by other tokens) and each head's output
/// result_h = z_h · W_O[h] (<c>blocks.L.attn.hook_result</c>) on the final k tokens is compared:
/// score = ‖result_h(with context) − result_h(without)‖₂ / ‖result_h(with context)‖₂ over those k × d_model values.
/// 0 = the head ignores the context; about 1 or more = its output there is mostly made of context.
/// </summary>
public static class ContextSensitivity
{
    public static HeadScores Compute(TransformerModel model, int[] tokens, int finalCount, int[]? replacementContext = null, int keepPrefix = 0,
        CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        if (finalCount < 1 || keepPrefix < 0 || keepPrefix + finalCount >= tokens.Length)
        {
            throw new InvalidInputException($"need a context between the kept prefix ({keepPrefix}) and the final {finalCount} tokens; the prompt has {tokens.Length}");
        }
        int[] without = [.. tokens[..keepPrefix], .. replacementContext ?? [], .. tokens[^finalCount..]];
        var c = model.Config;
        c.RequireUniformHeads("context sensitivity");
        int NL = c.NLayers, NH = c.NHeads, C = c.DModel;
        static bool Filter(string n) => n.EndsWith(".attn.hook_result", StringComparison.Ordinal);
        var (_, withCache) = model.RunWithCache(ModelInput.Single(tokens), Filter, baseHooks: baseHooks);
        cancel.ThrowIfCancellationRequested();
        var (_, withoutCache) = model.RunWithCache(ModelInput.Single(without), Filter, baseHooks: baseHooks);
        var values = new float[NL][];
        for (int l = 0; l < NL; l++)
        {
            values[l] = new float[NH];
            var a = withCache[$"blocks.{l}.attn.hook_result"].Data;      // [1, T, head, d_model]
            var b = withoutCache[$"blocks.{l}.attn.hook_result"].Data;
            for (int h = 0; h < NH; h++)
            {
                double diff = 0, norm = 0;
                for (int j = 0; j < finalCount; j++)
                {
                    int ta = tokens.Length - finalCount + j, tb = without.Length - finalCount + j;
                    var ra = a.AsSpan((ta * NH + h) * C, C);
                    var rb = b.AsSpan((tb * NH + h) * C, C);
                    for (int k = 0; k < C; k++)
                    {
                        double d = ra[k] - rb[k];
                        diff += d * d;
                        norm += (double)ra[k] * ra[k];
                    }
                }
                values[l][h] = norm == 0 ? 0 : (float)Math.Sqrt(diff / norm);
            }
        }
        string how = replacementContext is null ? "removed" : $"replaced by {replacementContext.Length} other tokens";
        return new HeadScores("context-sensitivity",
            $"‖Δ head output‖ / ‖head output‖ (hook_result) on the final {finalCount} tokens when the {tokens.Length - keepPrefix - finalCount} context tokens before them are {how}",
            values);
    }
}
