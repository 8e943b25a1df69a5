using Headwise.Models;

namespace Headwise.Generation;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Stop a sequence when it produces this id (null: never).</summary>
    public int? EosId { get; init; }
    /// <summary>Hooks fired at every forward of the generation, the prompt's and each step's (e.g. an intervention recipe's).</summary>
    public Hooks.HookSet? Hooks { get; init; }
}

/// <summary>Autoregressive generation with the KV cache: one prefill of the prompt, then one position per step.</summary>
public static class Generator
{
    /// <summary>Streams the new tokens of one sequence as they are chosen (the prompt is not repeated).</summary>
    public static IEnumerable<int> Generate(TransformerModel model, int[] prompt, GenerationOptions options)
    {
        if (prompt.Length == 0)
        {
            throw new InvalidInputException("the prompt is empty: give at least one token (e.g. BOS)");
        }
        int total = Math.Min(prompt.Length + options.MaxNewTokens, model.Config.MaxPositions);
        if (prompt.Length > model.Config.MaxPositions)
        {
            throw new InvalidInputException($"prompt of {prompt.Length} tokens is longer than the model's context of {model.Config.MaxPositions}");
        }
        new ModelInput(prompt, 1, prompt.Length).Validate(model.Config.VocabSize);
        var sampler = new Sampler(options.Sampling);
        model.ResetCache(1, total);
        var logits = model.ForwardChunk(prompt, null, prompt.Length, options.Hooks, lastOnly: true);
        var step = new int[1];
        for (int produced = 0; produced < options.MaxNewTokens && prompt.Length + produced < total; produced++)
        {
            int next = sampler.Sample(logits);
            yield return next;
            if (next == options.EosId || prompt.Length + produced + 1 >= total)
            {
                yield break;
            }
            // each step's logits overwrite the last's (sampled already): a step allocates nothing
            step[0] = next;
            logits = model.ForwardChunk(step, null, 1, options.Hooks, lastOnly: true, logits);
        }
    }

    /// <summary>Generates for several prompts at once (left-padded into one batch); each result holds only the new tokens.</summary>
    public static int[][] GenerateBatch(TransformerModel model, IReadOnlyList<int[]> prompts, GenerationOptions options)
    {
        if (prompts.Count == 0 || prompts.Any(p => p.Length == 0))
        {
            throw new InvalidInputException("every prompt needs at least one token");
        }
        var input = ModelInput.Padded(prompts, padLeft: true);
        input.Validate(model.Config.VocabSize);
        int B = input.Batch, T = input.SeqLen;
        int total = Math.Min(T + options.MaxNewTokens, model.Config.MaxPositions);
        if (T > model.Config.MaxPositions)
        {
            throw new InvalidInputException($"prompt of {T} tokens is longer than the model's context of {model.Config.MaxPositions}");
        }
        var sampler = new Sampler(options.Sampling);
        var outputs = Enumerable.Range(0, B).Select(_ => new List<int>()).ToArray();
        var done = new bool[B];
        model.ResetCache(B, total);
        var logits = model.ForwardChunk(input.Tokens, input.AttentionMask, T, options.Hooks, lastOnly: true);
        int V = model.Config.VocabSize;
        var next = new int[B];
        var mask = new byte[B];
        for (int step = 0; T + step < total && step < options.MaxNewTokens && !done.All(d => d); step++)
        {
            for (int b = 0; b < B; b++)
            {
                next[b] = done[b] ? 0 : sampler.Sample(logits.AsSpan(b * V, V));
                mask[b] = done[b] ? (byte)0 : (byte)1;
                if (!done[b])
                {
                    outputs[b].Add(next[b]);
                    done[b] = next[b] == options.EosId;
                }
            }
            if (T + step + 1 >= total || step + 1 >= options.MaxNewTokens)
            {
                break;
            }
            logits = model.ForwardChunk(next, mask, 1, options.Hooks, lastOnly: true, logits); // the last step's are sampled
        }
        return outputs.Select(o => o.ToArray()).ToArray();
    }
}
