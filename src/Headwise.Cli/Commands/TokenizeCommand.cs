namespace Headwise.Cli.Commands;

public sealed class TokenizeCommand : ICommand
{
    public string Name => "tokenize";
    public string Summary => "text to token ids with the model's tokenizer";
    public string Usage => """
        headwise tokenize --model M (--text "..." | --text-file F) [--json] [--no-bos]
        """;

    public string Description => """
        Encodes text exactly as the model's tokenizer does (BOS included when the tokenizer adds one).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text", "S", "the text"),
        CliOption.Text("text-file", "F", "read the text from a file (UTF-8)"),
        CliOption.Flag("no-bos", "do not add BOS / special tokens"),
        CliOption.Flag("json", "print {\"ids\": [...], \"tokens\": [...]}"),
    ];

    public string Examples => """
        Example:
          headwise tokenize --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --text "Once upon a time"
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        bool noBos = args.Flag("no-bos");
        string text = TextInput.Read(args);
        using var loaded = ModelArgs.Load(args);
        var tok = loaded.RequireTokenizer();
        var ids = tok.Encode(text, addSpecial: !noBos);
        var tokens = ids.Select(tok.TokenText).ToArray();
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new { ids, tokens }));
            return 0;
        }
        stdout.WriteLine($"{ids.Length} tokens");
        var table = new CliTable(">pos", ">id", "token");
        for (int i = 0; i < ids.Length; i++)
        {
            table.Row($"{i}", $"{ids[i]}", Json.Serialize(tokens[i]));
        }
        table.Write(stdout);
        return 0;
    }
}
