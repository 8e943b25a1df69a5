using System.Globalization;
using Headwise.Loading;

namespace Headwise.Cli.Commands;

/// <summary>The prompt of an analysis: --text (tokenized, BOS prepended unless --no-bos) or --tokens ids; and single tokens.</summary>
public static class PromptArgs
{
    public static int[] Read(CliArgs args, LoadedModel loaded)
    {
        RequireText(loaded);
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

    /// <summary>One line refusing a vision model in a command that reads text (docs/vision.md lists what works on a ViT).</summary>
    public static void RequireText(LoadedModel loaded)
    {
        if (loaded.Config.Vision is not null)
        {
            throw new UsageException($"{loaded.Path} is a {loaded.Config.ModelType} vision model, and this command reads text or token ids (for images: classify, patterns --image; docs/vision.md)");
        }
    }

    /// <summary>An answer token for the prompt <paramref name="promptIds"/>: an id (digits), or text read as patching reads it —
    /// the first token it adds after the prompt's --text (<see cref="Analysis.Tasks.TaskLibrary.Continuation"/>); with
    /// --tokens, text that encodes to exactly one token. When the text adds more than one token, a note on stderr says
    /// which one is used.</summary>
    public static int AnswerToken(CliArgs args, string value, string option, LoadedModel loaded, int[] promptIds, TextWriter stderr)
    {
        if (args.Get("text") is not { } text || int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            return Token(value, option, loaded);
        }
        var tok = loaded.RequireTokenizer();
        var ids = Analysis.Tasks.TaskLibrary.Continuation(tok, text, promptIds, value, addSpecial: !args.Flag("no-bos"));
        if (ids.Length > 1)
        {
            stderr.WriteLine($"note: --{option} '{value}' adds {ids.Length} tokens after the prompt ({string.Join(",", ids)}); using the first, {ids[0]} ('{tok.Decode([ids[0]])}')");
        }
        return ids[0];
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
