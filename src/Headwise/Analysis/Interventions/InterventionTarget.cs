using Headwise.Analysis.Tasks;

namespace Headwise.Analysis.Interventions;

/// <summary>
/// What an intervention runs on and how it is scored: one or more token sequences (a text, or a task's prompts), each with a
/// resample source of the same length (the input a head's activations are taken from in resample ablation), and the task
/// whose metric <see cref="MetricKind.Task"/> means.
/// </summary>
public sealed class InterventionTarget
{
    private readonly int[]? _scoredFrom;
    private readonly double[]? _weights;

    private InterventionTarget(IReadOnlyList<int[]> items, IReadOnlyList<int[]> sources, TokenizedTask? task, string description,
        int[]? scoredFrom = null, double[]? weights = null)
    {
        Items = items;
        Sources = sources;
        Task = task;
        Description = description;
        _scoredFrom = scoredFrom;
        _weights = weights;
    }

    /// <summary>The first target position item <paramref name="item"/>'s loss (and KL) counts: 1 for a whole sequence; in a
    /// window of a long text, the first target no earlier window scored.</summary>
    public int ScoredFrom(int item) => _scoredFrom?[item] ?? 1;

    /// <summary>Item <paramref name="item"/>'s weight in the target's score (the weights add up to 1): 1/items, or for the
    /// windows of a long text their share of its targets — so the loss is exactly the text's mean NLL as eval reports it.</summary>
    public double Weight(int item) => _weights?[item] ?? 1.0 / Items.Count;

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

    /// <summary>
    /// A text longer than the model's context, split as <see cref="Evaluation.Perplexity.Evaluate"/> splits it: windows of
    /// <paramref name="window"/> tokens advancing by <paramref name="stride"/>, each scoring only the targets no earlier window
    /// scored (<see cref="ScoredFrom"/>), weighted by their share of the targets (<see cref="Weight"/>). The loss objective is
    /// then exactly the text's mean NLL under eval's sliding window; KL is each window's mean over its new rows, weighted
    /// alike. A text that fits one window is <see cref="FromTokens"/>.
    /// </summary>
    public static InterventionTarget FromLongTokens(int[] tokens, int window, int stride, int seed = 0)
    {
        Evaluation.Perplexity.CheckWindow(tokens.Length, window, stride, context: window);
        if (tokens.Length <= window)
        {
            return FromTokens(tokens, seed);
        }
        var rng = new Random(seed);
        var items = new List<int[]>();
        var sources = new List<int[]>();
        var scoredFrom = new List<int>();
        var weights = new List<double>();
        int n = tokens.Length;
        foreach (var w in Evaluation.Perplexity.Windows(n, window, stride))
        {
            var chunk = tokens[w.Begin..w.End];
            var shuffled = (int[])chunk.Clone();
            rng.Shuffle(shuffled.AsSpan(1));
            items.Add(chunk);
            sources.Add(shuffled);
            scoredFrom.Add(w.FirstTarget - w.Begin);
            weights.Add((double)(w.End - w.FirstTarget) / (n - 1));
        }
        return new InterventionTarget(items, sources, null, $"{n} tokens in {items.Count} windows of {window} (stride {stride})",
            [.. scoredFrom], [.. weights]);
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
                return InterventionMetrics.MeanNll(logits, tokens, vocab, ScoredFrom(item), tokens.Length);
            case MetricKind.Kl:
                if (cleanLogits is null)
                {
                    return 0;
                }
                // the rows predicting this window's new targets (all rows for a whole sequence)
                int row = (ScoredFrom(item) - 1) * vocab;
                return InterventionMetrics.MeanKl(cleanLogits.AsSpan(row), logits.AsSpan(row), vocab);
            default:
                if (Task is null)
                {
                    throw new InvalidInputException("the task metric (logit-diff) needs a task (--task NAME)");
                }
                return Task.Score(item, logits, vocab);
        }
    }
}
