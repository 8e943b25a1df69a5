using Headwise.Analysis.Interventions;
using Headwise.Analysis.Tasks;
using Headwise.Loading;
using Headwise.Tokenizers;

namespace Headwise.Cli.Commands;

/// <summary>Options shared by ablate and importance: what to run on (text, ids or a task), the method and the metric.</summary>
public static class InterventionArgs
{
    public static readonly CliOption[] Options =
    [
        CliOption.Text("text-file", "F", "the text to run on (UTF-8; BOS prepended when the tokenizer adds one)"),
        CliOption.Text("text", "S", "the text, inline"),
        CliOption.Text("tokens", "IDS", "explicit ids, e.g. 1,403,407"),
        CliOption.Text("task", "NAME", "a task's prompts (see `headwise tasks`): induction, ioi, factual, laundry, greater-than"),
        CliOption.Integer("count", "N", "prompts of the task (default 8)"),
        CliOption.Integer("seed", "S", "seed of the task's prompts and of resample sources (default 0)"),
        CliOption.Text("method", "M", "zero | mean | resample (default zero): z replaced by 0, by the head's mean z over the\ninputs, or by its z on another input of the same length (the task's corrupted prompt; for a text\nthe same tokens shuffled)") with { Choices = ["zero", "mean", "resample"] },
        CliOption.Text("metric", "K", "loss | kl | logit-diff (default loss; logit-diff = the task's own metric, needs --task)") with { Choices = ["loss", "kl", "logit-diff"] },
    ];

    public static AblationMethod Method(CliArgs args) => (args.Get("method") ?? "zero") switch
    {
        "zero" => AblationMethod.Zero,
        "mean" => AblationMethod.Mean,
        "resample" => AblationMethod.Resample,
        var m => throw new UsageException($"--method must be zero, mean or resample (got '{m}')"),
    };

    public static MetricKind Metric(CliArgs args) => (args.Get("metric") ?? "loss") switch
    {
        "loss" => MetricKind.Loss,
        "kl" => MetricKind.Kl,
        "logit-diff" => MetricKind.Task,
        var m => throw new UsageException($"--metric must be loss, kl or logit-diff (got '{m}')"),
    };

    /// <summary>Reads the task options (when --task is given); the model's tokenizer keeps swapped names equally long.</summary>
    public static PromptTask? Task(CliArgs args, TextTokenizer? tokenizer)
    {
        string? name = args.Get("task");
        int count = args.GetInt("count", 8, 1, 10_000);
        int seed = args.GetInt("seed", 0, 0);
        return name is null ? null : TaskLibrary.Create(name, count, seed, tokenizer);
    }

    public static InterventionTarget Target(CliArgs args, LoadedModel loaded, PromptTask? task, MetricKind metric)
    {
        int seed = args.GetInt("seed", 0, 0);
        string? tokens = args.Get("tokens");
        bool hasText = args.Has("text") || args.Has("text-file");
        if ((task is not null ? 1 : 0) + (tokens is not null ? 1 : 0) + (hasText ? 1 : 0) != 1)
        {
            throw new UsageException("give exactly one of --text-file F, --text \"...\", --tokens IDS or --task NAME");
        }
        if (metric == MetricKind.Task && task is null)
        {
            throw new UsageException("--metric logit-diff needs --task NAME (the task says what the logit difference is)");
        }
        if (task is not null)
        {
            return InterventionTarget.FromTask(TaskLibrary.Tokenize(task, loaded.RequireTokenizer()), seed);
        }
        int[] ids = tokens is not null ? TextInput.ParseIds(tokens) : loaded.RequireTokenizer().Encode(TextInput.Read(args));
        // a text longer than the context is scored as eval scores it: sliding windows of the context, advancing by half of it
        int context = loaded.Config.MaxPositions;
        return InterventionTarget.FromLongTokens(ids, context, Math.Max(1, context / 2), seed);
    }
}
