using Headwise.Models;

namespace Headwise.Generation;

/// <summary>
/// Generation and scoring through a rolling KV cache of S sinks + W recent tokens (StreamingLLM;
/// <see cref="TransformerModel.ResetRollingCache"/> says how positions are assigned): memory stays bounded and a sequence
/// runs past the model's context.
/// </summary>
public static class StreamingGenerator
{
    /// <summary>Streams the new tokens of one sequence; <see cref="GenerationOptions.MaxNewTokens"/> is not capped by the context.</summary>
    public static IEnumerable<int> Generate(TransformerModel model, int[] prompt, GenerationOptions options, int sinks, int window)
    {
        if (prompt.Length == 0)
        {
            throw new InvalidInputException("the prompt is empty: give at least one token (e.g. BOS)");
        }
        new ModelInput(prompt, 1, prompt.Length).Validate(model.Config.VocabSize);
        var sampler = new Sampler(options.Sampling);
        var logits = Prefill(model, prompt, sinks, window, options.Hooks);
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            int next = sampler.Sample(logits);
            yield return next;
            if (next == options.EosId || produced + 1 >= options.MaxNewTokens)
            {
                yield break;
            }
            logits = model.ForwardRolling(next, options.Hooks, logits); // the last step's are sampled: overwrite them
        }
    }

    /// <summary>Starts a rolling cache and runs the prompt through it: as one chunk while it fits, then token by token
    /// (a prompt of up to S + W tokens sees every earlier token either way). Returns the last token's logits.</summary>
    public static float[] Prefill(TransformerModel model, int[] prompt, int sinks, int window, Hooks.HookSet? hooks = null)
    {
        model.ResetRollingCache(sinks, window);
        int first = Math.Min(prompt.Length, sinks + window);
        var logits = model.ForwardChunk(prompt[..first], null, first, hooks, lastOnly: true);
        for (int i = first; i < prompt.Length; i++)
        {
            logits = model.ForwardRolling(prompt[i], hooks, logits);
        }
        return logits;
    }

    /// <summary>nll[i] = −log p(ids[i + 1] | the rolling cache after ids[0..i]) for every i, one token at a time — the
    /// perplexity of a stream of any length.</summary>
    public static float[] Score(TransformerModel model, int[] ids, int sinks, int window, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancel = default)
    {
        if (ids.Length < 2)
        {
            throw new InvalidInputException($"need at least 2 tokens to score a prediction (got {ids.Length})");
        }
        new ModelInput(ids, 1, ids.Length).Validate(model.Config.VocabSize);
        model.ResetRollingCache(sinks, window);
        int V = model.Config.VocabSize;
        var nll = new float[ids.Length - 1];
        float[]? logits = null; // one buffer for every step's logits
        for (int i = 0; i < ids.Length - 1; i++)
        {
            cancel.ThrowIfCancellationRequested();
            logits = model.ForwardRolling(ids[i], logitsBuffer: logits);
            nll[i] = (float)-Evaluation.Perplexity.LogSoftmaxAt(logits.AsSpan(0, V), ids[i + 1]);
            if (i % 256 == 0)
            {
                progress?.Report((i + 1, ids.Length - 1));
            }
        }
        return nll;
    }
}
