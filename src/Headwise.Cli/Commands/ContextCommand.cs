using Headwise.Analysis.Interventions;

namespace Headwise.Cli.Commands;

public sealed class ContextCommand : ICommand
{
    public string Name => "context";
    public string Summary => "how much each head's output on the last tokens depends on the context before them";
    public string Usage => """
        headwise context --model M (--text "..." | --tokens IDS) --final K [--keep-prefix P] [--replace-tokens IDS] [--top N]
                         [--intervene FILE] [--json]
        """;

    public string Description => """
        Context sensitivity [Vision-aware Head Divergence]: the prompt is split into a kept prefix (P tokens, e.g. BOS),
        the context, and the final K tokens. The context is removed (or replaced by --replace-tokens) and each head's output
        on the final K tokens (blocks.L.attn.hook_result) is compared with the full prompt's:
        score = ‖result(with context) − result(without)‖₂ / ‖result(with context)‖₂. 0: the head ignores the context.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text", "S", "the prompt (BOS prepended when the tokenizer adds one, unless --no-bos)"),
        CliOption.Flag("no-bos", "do not prepend BOS to --text"),
        CliOption.Text("tokens", "IDS", "the prompt as ids, e.g. 1,403,407"),
        CliOption.Integer("final", "K", "how many final tokens to compare (default 1)"),
        CliOption.Integer("keep-prefix", "P", "tokens at the start kept in both runs (default: 1 when the prompt starts with BOS, else 0)"),
        CliOption.Text("replace-tokens", "IDS", "replace the context by these ids instead of removing it"),
        CliOption.Integer("top", "N", "heads listed in the table (default 10)"),
        .. CliOption.Noted(RecipeArgs.Options, "(both runs under it; an inject recipe cannot run the shorter prompt)"),
        CliOption.Flag("json", "print {\"layers\", \"heads\", \"final\", \"keep_prefix\", \"definition\", \"scores\": [[...]]} (and \"recipe\":\nname under --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise context --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --text "Lily had a red ball. She gave the ball to" --final 2
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        int final = args.GetInt("final", 1, 1);
        int top = args.GetInt("top", 10, 1);
        string? replace = args.Get("replace-tokens");
        using var loaded = ModelArgs.Load(args);
        var tokens = PromptArgs.Read(args, loaded);
        int defaultPrefix = loaded.Config.BosTokenId is int bos && tokens.Length > 0 && tokens[0] == bos ? 1 : 0;
        int keep = args.GetInt("keep-prefix", defaultPrefix, 0);
        int[]? replacement = replace is null ? null : TextInput.ParseIds(replace, "replace-tokens");
        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(tokens.Length, generation: false);
        var scores = ContextSensitivity.Compute(applied?.Model ?? loaded.Model, tokens, final, replacement, keep, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                layers = scores.Layers,
                heads = scores.Heads,
                final,
                keep_prefix = keep,
                definition = scores.Definition,
                scores = scores.Values,
            }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine(scores.Definition);
        stdout.WriteLine();
        var table = new CliTable(">rank", "head", ">sensitivity");
        int rank = 1;
        foreach (var (head, score) in scores.Top(top))
        {
            table.Row($"{rank++}", $"{head}", $"{score:F4}");
        }
        table.Write(stdout);
        return 0;
    }
}
