using System.Diagnostics;
using Headwise.Training;

namespace Headwise.Cli.Commands;

public sealed class TrainTokenizerCommand : ICommand
{
    public string Name => "train-tokenizer";
    public string Summary => "learn a byte-level BPE tokenizer.json from a text file";
    public string Usage => """
        headwise train-tokenizer --text-file F --out FILE [--vocab-size N] [--max-chars N] [--json]
        """;

    public string Description => """
        Learns a GPT-2 style byte-level BPE (256 byte tokens + merges + <|endoftext|>) from UTF-8 text and writes a
        Hugging Face tokenizer.json. Deterministic: the same text and size give the same file.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("text-file", "F", "training text (UTF-8)"),
        CliOption.Text("out", "FILE", "where to write tokenizer.json"),
        CliOption.Integer("vocab-size", "N", "tokens before specials, 256 bytes included (default 4096)"),
        CliOption.Integer("max-chars", "N", "learn from the first N characters only (default: all)"),
        CliOption.Flag("json", "print {\"path\", \"vocab_size\", \"merges\", \"seconds\"}"),
    ];

    public string Examples => """
        Example:
          headwise train-tokenizer --text-file dev/demo/.data/sotu.txt --vocab-size 4096 --out models/demo/tokenizer.json
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string file = args.Require("text-file", "training text");
        string outPath = args.Require("out", "output tokenizer.json");
        int vocab = args.GetInt("vocab-size", 4096, 256, 1 << 20);
        int maxChars = args.GetInt("max-chars", int.MaxValue, 1);
        bool json = args.Flag("json");
        if (!File.Exists(file))
        {
            throw new InvalidInputException($"--text-file: {file} not found.");
        }

        string text = File.ReadAllText(file);
        if (text.Length > maxChars)
        {
            text = text[..maxChars];
        }

        var sw = Stopwatch.StartNew();
        var v = BpeTrainer.Train(text, vocab, cancellationToken: CliMain.Cancellation);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        v.WriteTokenizerJson(outPath);
        double secs = sw.Elapsed.TotalSeconds;
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new { path = outPath, vocab_size = v.Tokens.Count + v.Specials.Count, merges = v.Merges.Count, seconds = secs }));
        }
        else
        {
            stdout.WriteLine($"{outPath}: {v.Tokens.Count + v.Specials.Count} tokens ({v.Merges.Count} merges) in {secs:F1} s");
        }

        return 0;
    }
}
