using System.Globalization;
using Headwise.Loading;

namespace Headwise.Cli.Commands;

/// <summary>The prompt of an analysis: --text (tokenized, BOS prepended unless --no-bos) or --tokens ids; and single tokens.</summary>
public static class PromptArgs
{
    /// <summary>The options that take a value (the command lists the flag <c>no-bos</c> itself).</summary>
    public static readonly string[] Options = ["tokens", "text"];

    public static int[] Read(CliArgs args, LoadedModel loaded)
    {
        string? tokensArg = args.Get("tokens");
        string? text = args.Get("text");
        bool noBos = args.Flag("no-bos");
        if (tokensArg is not null && text is not null)
        {
            throw new UsageException("give either --tokens or --text, not both");
        }
        if (tokensArg is not null)
        {
            return TextInput.ParseIds(tokensArg);
        }
        if (text is null)
        {
            throw new UsageException("missing --text \"...\" or --tokens IDS");
        }
        var ids = loaded.RequireTokenizer().Encode(text, addSpecial: !noBos);
        return ids.Length > 0 ? ids : throw new UsageException("--text: the text has no tokens");
    }

    /// <summary>A token given as an id (digits) or as text that must encode to exactly one token.</summary>
    public static int Token(string value, string option, LoadedModel loaded)
    {
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
        {
            return id < loaded.Config.VocabSize ? id
                : throw new UsageException($"--{option}: token id {id} is outside the vocabulary [0, {loaded.Config.VocabSize})");
        }
        var ids = loaded.RequireTokenizer().Encode(value, addSpecial: false);
        return ids.Length == 1 ? ids[0]
            : throw new UsageException($"--{option}: '{value}' is {ids.Length} tokens ({string.Join(",", ids)}); give one token or its id");
    }
}
