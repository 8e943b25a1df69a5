namespace Headwise.Cli.Commands;

/// <summary>Reads the text a command works on from --text or --text-file, with clear errors.</summary>
public static class TextInput
{
    public static string Read(CliArgs args)
    {
        string? text = args.Get("text");
        string? file = args.Get("text-file");
        if (text is not null && file is not null)
        {
            throw new UsageException("give either --text or --text-file, not both");
        }
        if (file is not null)
        {
            if (!File.Exists(file))
            {
                throw new UsageException($"--text-file {file}: file not found");
            }
            text = File.ReadAllText(file);
            if (text.Length == 0)
            {
                throw new UsageException($"--text-file {file}: the file is empty");
            }
            return text;
        }
        return text ?? throw new UsageException("missing --text \"...\" or --text-file FILE");
    }

    /// <summary>Parses --tokens 1,403,407 (explicit ids).</summary>
    public static int[] ParseIds(string s, string option = "tokens")
    {
        var parts = s.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new UsageException($"--{option} needs comma-separated token ids, e.g. --{option} 1,403,407");
        }
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], out ids[i]) || ids[i] < 0)
            {
                throw new UsageException($"--{option}: '{parts[i]}' is not a token id (non-negative integer)");
            }
        }
        return ids;
    }
}
