using Headwise.Analysis.Tasks;

namespace Headwise.Analysis.Interventions;

/// <summary>
/// What an intervention runs on and how it is scored: one or more token sequences (a text, or a task's prompts), each with a
/// resample source of the same length (the input a head's activations are taken from in resample ablation), and the task
/// whose metric <see cref="MetricKind.Task"/> means.
/// </summary>
public sealed class InterventionTarget
{
    private InterventionTarget(IReadOnlyList<int[]> items, IReadOnlyList<int[]> sources, TokenizedTask? task, string description)
    {
        Items = items;
        Sources = sources;
        Task = task;
        Description = description;
    }

    public IReadOnlyList<int[]> Items { get; }

    /// <summary>Per item, the input resample ablation takes activations from (same length as the item).</summary>
    public IReadOnlyList<int[]> Sources { get; }

    public TokenizedTask? Task { get; }

    public string Description { get; }

    /// <summary>One token sequence. Its resample source is the same tokens in a seeded random order (first token kept:
    /// often BOS) — another input with the same length and the same token statistics.</summary>
    public static InterventionTarget FromTokens(int[] tokens, int seed = 0)
    {
        if (tokens.Length < 2)
        {
            throw new InvalidInputException($"an intervention needs at least 2 tokens (got {tokens.Length})");
        }
        var rng = new Random(seed);
        var shuffled = (int[])tokens.Clone();
        rng.Shuffle(shuffled.AsSpan(1));
        return new InterventionTarget([tokens], [shuffled], null, $"{tokens.Length} tokens");
    }

    /// <summary>A task's clean prompts. Resample source: the prompt's corrupted version when it has one, else the next
    /// prompt of the same length, else the prompt's own tokens shuffled (seeded, first token kept).</summary>
    public static InterventionTarget FromTask(TokenizedTask task, int seed = 0)
    {
        if (task.Prompts.Count == 0)
        {
            throw new InvalidInputException($"task '{task.Name}' has no prompts");
        }
        var rng = new Random(seed);
        var items = task.Prompts.Select(p => p.Clean).ToArray();
        var sources = new int[items.Length][];
        for (int i = 0; i < items.Length; i++)
        {
            var p = task.Prompts[i];
            int other = Enumerable.Range(1, items.Length - 1).Select(k => (i + k) % items.Length)
                .FirstOrDefault(j => items[j].Length == items[i].Length, -1);
            if (p.Corrupted is not null)
            {
                sources[i] = p.Corrupted;
            }
            else if (other >= 0 && items.Length > 1)
            {
                sources[i] = items[other];
            }
            else
            {
                sources[i] = (int[])items[i].Clone();
                rng.Shuffle(sources[i].AsSpan(1));
            }
        }
        return new InterventionTarget(items, sources, task, $"task {task.Name} ({items.Length} prompts)");
    }

    /// <summary>The metric of item <paramref name="item"/> from its logits; <paramref name="cleanLogits"/> is needed for KL.</summary>
    public double Score(MetricKind metric, int item, float[] logits, float[]? cleanLogits, int vocab)
    {
        var tokens = Items[item];
        switch (metric)
        {
            case MetricKind.Loss:
                return InterventionMetrics.MeanNll(logits, tokens, vocab, 1, tokens.Length);
            case MetricKind.Kl:
                return cleanLogits is null ? 0 : InterventionMetrics.MeanKl(cleanLogits, logits, vocab);
            default:
                if (Task is null)
                {
                    throw new InvalidInputException("the task metric (logit-diff) needs a task (--task NAME)");
                }
                return Task.Score(item, logits, vocab);
        }
    }
}
