using Headwise.Loading;

namespace Headwise.Cli.Commands;

/// <summary>The prompt of the attention-statistics commands (stats, sinks, centrality, explain): --text or --tokens.</summary>
public static class StatisticsPrompt
{
    public static readonly CliOption[] Options =
    [
        CliOption.Text("text", "S", "the prompt (BOS prepended when the tokenizer adds one)"),
        CliOption.Text("tokens", "IDS", "explicit ids, e.g. 1,403,407 — no tokenizer involved"),
    ];

    /// <summary>Reads the ids. Throws a usage error when both or neither are given.</summary>
    public static int[] Read(CliArgs args, LoadedModel loaded)
    {
        string? tokens = args.Get("tokens");
        string? text = args.Get("text");
        if ((tokens is null) == (text is null))
        {
            throw new UsageException("give either --text \"...\" or --tokens IDS");
        }
        return tokens is not null ? TextInput.ParseIds(tokens) : loaded.RequireTokenizer().Encode(text!);
    }

    /// <summary>How a token is shown in a table: its text when a tokenizer is loaded, else its id.</summary>
    public static string Show(LoadedModel loaded, int id) =>
        loaded.Tokenizer is { } t && id < t.VocabSize ? t.TokenText(id).Replace("\n", "\\n", StringComparison.Ordinal) : id.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
