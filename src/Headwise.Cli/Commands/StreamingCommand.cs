using Headwise.Analysis;
using Headwise.Sparse;

namespace Headwise.Cli.Commands;

public sealed class StreamingCommand : ICommand
{
    public string Name => "streaming";
    public string Summary => "perplexity over position of a stream past the context through rolling caches with and without sinks";
    public string Usage => """
        headwise streaming --model M [--text-file F | --text "..."] --window W [--sinks 4,0] [--length N] [--bucket N]
                           [--seed S] [--png FILE] [--json]
        """;

    public string Description => """
        StreamingLLM's finding (docs/sparse.md): the stream is scored token by token through a rolling KV cache of S sinks
        + W recent tokens (what generate uses for the spec window:W,sinks:S), once per S in --sinks, and perplexity is
        reported per bucket of positions. With sinks it stays flat past the context; without, it degrades once the first
        tokens leave the cache. The stream is the text's tokens continued by the model itself to --length tokens (sampled
        at temperature 1 through a rolling cache of 4 sinks + context − 4 recent tokens, seeded); with no text it starts
        from BOS. Every configuration scores the same stream.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text-file", "F", "the text that starts the stream (UTF-8; BOS prepended when the tokenizer adds one)"),
        CliOption.Text("text", "S", "the text, inline"),
        CliOption.Flag("no-bos", "do not prepend BOS"),
        CliOption.Integer("window", "W", "recent tokens the rolling cache keeps (sinks + W ≤ the model's context)"),
        CliOption.Text("sinks", "LIST", "sink counts to compare, e.g. 4,0 (default 4,0)"),
        CliOption.Integer("length", "N", "tokens in the stream (default: the context + 4096)"),
        CliOption.Integer("bucket", "N", "positions per perplexity bucket (default 128)"),
        CliOption.Integer("seed", "S", "seed of the sampled continuation (default 0)"),
        CliOption.Text("png", "FILE", "also draw perplexity over position, one line per sink count (blue, orange, … in --sinks order)"),
        CliOption.Flag("json", "print {\"tokens\", \"context\", \"generated\", \"bucket\", \"curves\": [{\"sinks\", \"window\", \"mean_nll\",\n\"perplexity\": [...per bucket]}]}"),
    ];

    public string Examples => """
        Example:
          headwise streaming --model models/demo --window 60 --length 600 --bucket 100
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string? pngPath = args.Get("png");
        using var loaded = ModelArgs.Load(args);
        int context = loaded.Config.MaxPositions;
        var sinks = (args.Get("sinks") ?? "4,0").Split(',').Select(s => int.TryParse(s.Trim(), out int n) && n >= 0 && n < context ? n
            : throw new UsageException($"--sinks expects sink counts in [0, {context}) separated by commas, e.g. 4,0 (got '{args.Get("sinks")}')")).ToArray();
        int window = args.GetInt("window", -1, 1, context - sinks.Max());
        if (window < 0)
        {
            throw new UsageException($"missing --window W (recent tokens the rolling cache keeps; at most {context - sinks.Max()} here)");
        }
        int length = args.GetInt("length", context + 4096, 2, 10_000_000);
        int bucket = args.GetInt("bucket", 128, 1, length);
        int seed = args.GetInt("seed", 0);
        int[] text = args.Has("text") || args.Has("text-file")
            ? loaded.RequireTokenizer().Encode(TextInput.Read(args), addSpecial: !args.Flag("no-bos"))
            : loaded.Config.BosTokenId is int bos ? [bos] : throw new UsageException("the model has no BOS token to start the stream from: give --text-file F");
        var bar = new ProgressBar(stderr, enabled: !json);
        var progress = new Progress<(int Done, int Total)>(p => bar.Report(new AnalysisProgress("scoring the stream", p.Done, p.Total)));
        var r = StreamingExperiment.Run(loaded.Model, text, length, window, sinks, bucket, seed, progress, CliMain.Cancellation);
        if (pngPath is not null)
        {
            StreamingExperiment.Plot(r, pngPath);
            if (!json)
            {
                stderr.WriteLine($"wrote {pngPath}");
            }
        }
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                tokens = r.Tokens,
                context = r.Context,
                generated = r.GeneratedTokens,
                bucket = r.Bucket,
                curves = r.Curves.Select(c => new { sinks = c.Sinks, window = c.Window, mean_nll = c.MeanNll, perplexity = c.BucketPerplexity }),
            }));
            return 0;
        }
        stdout.WriteLine($"{r.Tokens} tokens ({r.GeneratedTokens} sampled by the model), context {r.Context}, buckets of {r.Bucket} positions");
        var table = new CliTable(["positions", .. r.Curves.Select(c => $">sinks {c.Sinks}")]);
        for (int b = 0; b < r.Curves[0].BucketPerplexity.Length; b++)
        {
            table.Row([$"{b * r.Bucket}–{Math.Min(r.Tokens - 1, (b + 1) * r.Bucket) - 1}", .. r.Curves.Select(c => $"{c.BucketPerplexity[b]:F3}")]);
        }
        table.Row(["mean ppl", .. r.Curves.Select(c => $"{Math.Exp(c.MeanNll):F3}")]);
        table.Write(stdout);
        return 0;
    }
}
