using Headwise.Analysis.Attribution;

namespace Headwise.Cli.Commands;

public sealed class DlaCommand : ICommand
{
    public string Name => "dla";
    public string Summary => "direct logit attribution: each head's, MLP's and embedding's direct effect on a logit (difference)";
    public string Usage => """
        headwise dla --model M (--text "..." | --tokens IDS) --answer TOKEN_OR_ID [--wrong TOKEN_OR_ID] [--position P] [--top K]
                     [--intervene FILE] [--json]
        """;

    public string Description => """
        Splits logit[answer] − logit[wrong] (or logit[answer]) at one position into the direct contributions of the
        embeddings, every head (hook_result), every layer's output bias and every MLP (hook_mlp_out): each term v gives
        ((v − mean v) / s) · (w ⊙ (W_U[answer] − W_U[wrong])), with s = ln_final.hook_scale and w the final norm weight
        (no centring for RMSNorm). The terms sum to the logit (difference) minus the final norm's bias term.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text", "S", "the prompt (BOS prepended when the tokenizer adds one)"),
        CliOption.Text("tokens", "IDS", "explicit ids, e.g. 1,403,407 — nothing prepended"),
        CliOption.Text("answer", "T", "the answer token: an id, or text — with --text, the first token it adds after the\nprompt (as patch reads answers: \" time\" after \"Once upon a\"); with --tokens, one token"),
        CliOption.Text("wrong", "T", "a contrasting token, read the same way: attribute logit[answer] − logit[wrong]"),
        CliOption.Integer("position", "P", "the position to attribute (default: the last)"),
        CliOption.Integer("top", "K", "terms listed in the table (default 15)"),
        CliOption.Flag("no-bos", "do not prepend BOS to the text"),
        .. CliOption.Noted(RecipeArgs.Options, "(the terms are the intervened run's: its hook_result, its edited W_U path and norm)"),
        CliOption.Flag("json", "print {\"token_ids\", \"position\", \"answer\", \"wrong\", \"logit\", \"norm_bias_term\", \"sum\",\n\"heads\": [layer][head], \"contributions\": [{\"name\", \"value\"}, ...]} (and \"recipe\": name\nunder --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise dla --model ../shared/models/stories260K/stories260K.bin --tokens 1,403,407,261,378 --answer 432 --wrong 300
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        int[] ids = PromptArgs.Read(args, loaded);
        int answer = PromptArgs.AnswerToken(args, args.Require("answer", "the answer token or id"), "answer", loaded, ids, stderr);
        string? wrongArg = args.Get("wrong");
        int? wrong = wrongArg is null ? null : PromptArgs.AnswerToken(args, wrongArg, "wrong", loaded, ids, stderr);
        int position = args.GetInt("position", ids.Length - 1, 0, ids.Length - 1);
        int top = args.GetInt("top", 15, 1, 1_000_000);

        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var r = DirectLogitAttribution.Run(applied?.Model ?? loaded.Model, ids, answer, wrong, position, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                token_ids = r.TokenIds,
                position = r.Position,
                answer = r.Answer,
                wrong = r.Wrong,
                logit = r.Logit,
                norm_bias_term = r.NormBiasTerm,
                sum = r.Sum,
                heads = r.Heads.Values,
                contributions = r.Contributions.Select(c => new { name = c.Name, value = c.Value }),
            }, applied));
            return 0;
        }
        string Name(int id) => loaded.Tokenizer is { } t ? $"{id} '{t.TokenText(id)}'" : id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine(wrong is null
            ? $"logit[{Name(answer)}] at position {r.Position} = {r.Logit:F4}"
            : $"logit[{Name(answer)}] − logit[{Name(wrong.Value)}] at position {r.Position} = {r.Logit:F4}");
        stdout.WriteLine($"final norm bias term {r.NormBiasTerm:F4}; sum of contributions {r.Sum:F4}");
        stdout.WriteLine();
        var table = new CliTable("term", ">contribution");
        foreach (var c in r.Contributions.OrderByDescending(c => Math.Abs(c.Value)).Take(top))
        {
            table.Row(c.Name, $"{c.Value:F4}");
        }
        table.Write(stdout);
        return 0;
    }
}
