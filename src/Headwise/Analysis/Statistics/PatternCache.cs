using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Statistics;

/// <summary>Reads attention patterns (and the residual stream) out of an activation cache of one prompt (batch 1).</summary>
public static class PatternCache
{
    /// <summary>Runs one prompt, caching every layer's <c>attn.hook_pattern</c> and <c>hook_resid_pre</c>.</summary>
    public static ActivationCache Run(TransformerModel model, int[] tokens, Action<HookSet>? baseHooks = null)
    {
        if (tokens.Length == 0)
        {
            throw new InvalidInputException("--tokens: the prompt is empty");
        }
        var (_, cache) = model.RunWithCache(ModelInput.Single(tokens),
            n => n.EndsWith(".attn.hook_pattern", StringComparison.Ordinal) || n.EndsWith(".hook_resid_pre", StringComparison.Ordinal),
            expandKvHeads: false, baseHooks: baseHooks);
        return cache;
    }

    /// <summary>The T × T pattern of one head (row q: where query q attends), as doubles.</summary>
    public static double[,] Pattern(ActivationCache cache, int layer, int head)
    {
        var t = cache[$"blocks.{layer}.attn.hook_pattern"]; // [batch, head, qpos, kpos]
        int T = t.Shape[2];
        var p = new double[T, T];
        int offset = head * T * T;
        for (int q = 0; q < T; q++)
        {
            for (int k = 0; k < T; k++)
            {
                p[q, k] = t.Data[offset + q * T + k];
            }
        }
        return p;
    }

    /// <summary>The head-averaged pattern of a layer (T × T, still row-stochastic).</summary>
    public static double[,] LayerAverage(ActivationCache cache, int layer, int heads)
    {
        var t = cache[$"blocks.{layer}.attn.hook_pattern"];
        int T = t.Shape[2];
        var p = new double[T, T];
        for (int h = 0; h < heads; h++)
        {
            for (int q = 0; q < T; q++)
            {
                for (int k = 0; k < T; k++)
                {
                    p[q, k] += t.Data[(h * T + q) * T + k] / heads;
                }
            }
        }
        return p;
    }
}
