using System.Diagnostics;
using Headwise.Generation;

namespace Headwise.Cli.Commands;

public sealed class GenerateCommand : ICommand
{
    public string Name => "generate";
    public string Summary => "continue a prompt (greedy or sampled), streamed to the terminal";
    public string Usage => """
        headwise generate --model M [--prompt "..." | --tokens 1,403] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--intervene FILE]
                          [--attention SPEC]
        """;

    public string Description => """
        Generates with the KV cache and prints the text as it is produced. Greedy by default (temperature 0):
        the same output on every run. With --temperature > 0 it samples, from the top-k tokens and then the smallest
        set reaching probability top-p; --seed makes a sampled run reproducible. Stops at EOS unless --no-eos.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("prompt", "S", "the prompt text (default: empty — start from BOS)"),
        CliOption.Text("tokens", "IDS", "the prompt as explicit ids, e.g. 1,403,407 (no tokenizer involved)"),
        CliOption.Integer("max-tokens", "N", "new tokens at most (default 64)"),
        CliOption.Number("temperature", "T", "0 = greedy (default); e.g. 0.8 to sample"),
        CliOption.Integer("top-k", "K", "sample only among the K most likely tokens (0 = all; default 0)"),
        CliOption.Number("top-p", "P", "nucleus sampling threshold in (0, 1] (default 1)"),
        CliOption.Integer("seed", "S", "random seed for sampling"),
        CliOption.Flag("no-eos", "keep going past EOS"),
        CliOption.Flag("no-bos", "do not prepend BOS to the prompt text"),
        .. CliOption.Noted(RecipeArgs.Options, "(hooks act at every step; an inject source must cover every position generated)"),
        .. CliOption.Noted(AttentionArgs.Options, "window:W,sinks:S makes the KV cache a rolling cache of S sinks + W recent tokens\n(S + W ≤ the model's context): generation runs past the context in bounded memory;\npositions are the cache slots (docs/sparse.md)"),
        CliOption.Flag("json", "print {\"prompt_ids\": [...], \"ids\": [...], \"text\": \"...\", \"stopped\": \"...\"} at the end instead\nof streaming; stopped is \"eos\", \"max_tokens\" or \"context\" (the model's context is full;\nsaid on stderr too)"),
    ];

    public string Examples => """
        Example:
          headwise generate --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --max-tokens 40
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        bool noEos = args.Flag("no-eos");
        bool noBos = args.Flag("no-bos");
        string? prompt = args.Get("prompt");
        string? tokensArg = args.Get("tokens");
        int maxTokens = args.GetInt("max-tokens", 64, 1, 1_000_000);
        var sampling = new SamplingOptions
        {
            Temperature = (float)args.GetDouble("temperature", 0, 0, 100),
            TopK = args.GetInt("top-k", 0, 0),
            TopP = (float)args.GetDouble("top-p", 1, 1e-6, 1),
            Seed = args.Has("seed") ? args.GetInt("seed", 0) : null,
        };
        if (prompt is not null && tokensArg is not null)
        {
            throw new UsageException("give either --prompt or --tokens, not both");
        }
        using var loaded = ModelArgs.Load(args);
        var tok = loaded.Tokenizer;
        int[] promptIds;
        if (tokensArg is not null)
        {
            promptIds = TextInput.ParseIds(tokensArg);
        }
        else
        {
            tok = loaded.RequireTokenizer();
            promptIds = tok.Encode(prompt ?? "", addSpecial: !noBos);
            if (promptIds.Length == 0)
            {
                promptIds = loaded.Config.BosTokenId is int bos ? [bos] : throw new UsageException("the prompt is empty and the model has no BOS token to start from");
            }
        }
        using var applied = RecipeArgs.Apply(args, loaded);
        // the last token chosen is never fed back: positions 0 .. min(prompt + max, context) − 2 run through the model
        applied?.RequireSourcesCover(Math.Max(promptIds.Length, Math.Min(promptIds.Length + maxTokens, loaded.Config.MaxPositions) - 1), generation: true);
        var options = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            Sampling = sampling,
            EosId = noEos ? null : (tok?.EosId ?? loaded.Config.EosTokenId),
            Hooks = applied?.CreateHooks(generation: true),
        };
        if (applied is not null && !json)
        {
            stderr.WriteLine($"[recipe {RecipeArgs.Describe(applied)}]");
        }

        var produced = new List<int>();
        var history = new List<int>(promptIds);
        var clock = Stopwatch.StartNew();
        if (!json)
        {
            stdout.Write(tok is null ? string.Join(" ", promptIds) : tok.Decode(promptIds));
            stdout.Flush();
        }
        var model = applied?.Model ?? loaded.Model;
        var policy = AttentionArgs.Parse(args);
        var rolling = policy as Sparse.WindowPolicy;
        if (policy is not null && rolling is null)
        {
            model.SparseAttention = policy;
        }
        var stream = rolling is null ? Generator.Generate(model, promptIds, options)
            : StreamingGenerator.Generate(model, promptIds, options, rolling.Sinks, rolling.Window);
        foreach (int id in stream)
        {
            if (CliMain.Cancellation.IsCancellationRequested)
            {
                if (!json)
                {
                    stdout.WriteLine(); // the "interrupted" line on stderr starts a line of its own
                }
                CliMain.Cancellation.ThrowIfCancellationRequested();
            }
            produced.Add(id);
            if (!json)
            {
                stdout.Write(tok is null ? " " + id : tok.DecodeNext(history.ToArray(), id));
                stdout.Flush();
            }
            history.Add(id);
        }
        double seconds = clock.Elapsed.TotalSeconds;
        // a rolling cache never fills: no context stop
        string stopped = StopReason(produced, maxTokens, options.EosId, promptIds.Length, rolling is null ? loaded.Config.MaxPositions : int.MaxValue);
        if (json)
        {
            string line = applied is null
                ? Json.Serialize(new { prompt_ids = promptIds, ids = produced, text = tok?.Decode(produced.ToArray()), stopped })
                : Json.Serialize(new { prompt_ids = promptIds, ids = produced, text = tok?.Decode(produced.ToArray()), stopped, recipe = applied.Recipe.Name });
            // the rolling cache attends to all it holds: its density is the cache's share of each token's causal keys
            stdout.WriteLine(rolling is null ? AttentionArgs.Json(line, policy)
                : AttentionArgs.Json(line, rolling.Spec, rolling.RollingDensity(promptIds.Length + Math.Max(0, produced.Count - 1))));
        }
        else
        {
            stdout.WriteLine();
            stderr.WriteLine($"[{produced.Count} tokens in {seconds:F2} s, {produced.Count / Math.Max(seconds, 1e-9):F1} tokens/s (prefill included)]");
            if (policy is not null)
            {
                stderr.WriteLine(rolling is null ? $"[attention {AttentionArgs.Describe(policy)}]"
                    : $"[attention {policy.Spec}: rolling KV cache of {rolling.Sinks} sinks + {rolling.Window} recent tokens]");
            }
        }
        if (stopped == "context")
        {
            // said even with --json (on stderr): a silent stop short of --max-tokens looks like a bug
            stderr.WriteLine($"generate: stopped at the model's context of {loaded.Config.MaxPositions} positions after {produced.Count} of {maxTokens} new tokens (the prompt has {promptIds.Length})");
        }
        return 0;
    }

    /// <summary>Why generation ended: "eos" (the model produced EOS), "max_tokens" (--max-tokens reached) or "context" (every
    /// position of the model's context is used, before --max-tokens).</summary>
    internal static string StopReason(List<int> produced, int maxTokens, int? eosId, int promptLength, int context) =>
        produced.Count > 0 && produced[^1] == eosId ? "eos"
        : produced.Count < maxTokens && promptLength + produced.Count >= context ? "context"
        : "max_tokens";
}
