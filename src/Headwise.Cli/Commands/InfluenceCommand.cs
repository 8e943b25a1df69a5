using System.Diagnostics;
using System.Globalization;
using Headwise.Analysis;
using Headwise.Influence;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise influence</c> (one shard or the whole corpus), <c>influence merge</c> and <c>influence slurm</c>.</summary>
public sealed class InfluenceCommand : ICommand
{
    public string Name => "influence";
    public string Summary => "AttentionInfluence: score corpus documents by the loss rise when retrieval heads are masked (Parquet, Slurm)";
    public IReadOnlyList<CliArgument> Arguments { get; } = [new("MODE", "none: score the corpus; merge: gather the parts; slurm: write Slurm job scripts")];
    public string Usage => """
        headwise influence --model M --corpus FILE_OR_DIR --heads L.H,... | --heads auto --out DIR [--shard I/N]
                           [--text-field text] [--id-field id] [--batch-tokens T]
        headwise influence merge --out DIR [--top P]
        headwise influence slurm --array N [--partition P] [--time T] [--mem M] --model M --corpus C --heads H --out DIR [--submit]
        """;

    public string Description => """
        AttentionInfluence (docs/influence.md): each document's loss_ref (mean next-token nll, exactly what `headwise eval`
        reports for the text, sliding window included), loss_masked (the same with the heads zero-ablated, what eval reports
        under an ablate/zero recipe of them) and score = (loss_masked − loss_ref) / loss_ref.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("corpus", "F|DIR", "JSON lines ({\"id\": ..., \"text\": ...} per line, .jsonl/.json, optionally .gz) or Parquet files;\na directory means all of them, in sorted order"),
        CliOption.Text("heads", "H", "heads to mask, e.g. 1.4,3.6; or auto: the top 3% retrieval heads of a synthetic copy task\n(auto:0.05 for another share; at least one head)"),
        CliOption.Text("out", "DIR", "DIR/part-IIIII-of-NNNNN.parquet: columns id, n_tokens, loss_ref, loss_masked, score; model and heads\nin the file's metadata. A part already complete is skipped (a re-run computes what is missing)"),
        CliOption.Text("shard", "I/N", "only documents i with i mod N = I (default 0/1: the whole corpus)"),
        CliOption.Text("text-field", "F", "the text's field or column (default text)"),
        CliOption.Text("id-field", "F", "the id's field or column (default id); ids must be unique"),
        CliOption.Integer("batch-tokens", "T", "positions per forward, padding included (default 4096): windows of similar length run together"),
        CliOption.Text("top", "P", $"also write DIR/{InfluenceParts.TopName}: the top share P (0.1 or 10%) as JSON lines with the text", section: "merge"),
        CliOption.Integer("array", "N", "shards, one array task each; writes DIR/influence-array.sbatch, DIR/influence-merge.sbatch and\nDIR/submit.sh (the merge runs after every task succeeded: Slurm's afterok); logs in DIR/logs/.\nA task ended for good (scancel, a time limit) stops the merge: DIR/requeue.sh requeues what\ndid not complete and points the merge job at it again", section: "slurm"),
        CliOption.Text("partition", "P", "passed to #SBATCH", section: "slurm"),
        CliOption.Text("time", "T", "passed to #SBATCH", section: "slurm"),
        CliOption.Text("mem", "M", "passed to #SBATCH", section: "slurm"),
        CliOption.Text("headwise", "CMD", "how the tasks run headwise (default: this binary)", section: "slurm"),
        CliOption.Flag("submit", "submit both jobs through sbatch now (their ids go to DIR/jobs, as submit.sh does)", section: "slurm"),
    ];

    public string Examples => """
        Example:
          headwise influence --model models/demo --corpus docs.jsonl --heads auto --out influence/ && headwise influence merge --out influence/
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr) => args.Positional.FirstOrDefault() switch
    {
        null => Score(args, stdout, stderr),
        "merge" => Merge(args, stdout),
        "slurm" => Slurm(args, stdout),
        var other => throw new UsageException($"unknown sub-command '{other}' (merge, slurm, or none to score)"),
    };

    private static int Score(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string outDir = args.Require("out", "the output directory");
        string corpusPath = Path.GetFullPath(args.Require("corpus", "a JSON lines or Parquet file, or a directory of them"));
        var (shard, shards) = ParseShard(args.Get("shard") ?? "0/1");
        string headsArg = args.Require("heads", "L.H,... or auto");
        int batchTokens = args.GetInt("batch-tokens", 4096, 1, 1 << 24);
        var corpus = new Corpus(corpusPath, args.Get("text-field") ?? "text", args.Get("id-field") ?? "id");
        using var loaded = ModelArgs.Load(args);
        var tokenizer = loaded.RequireTokenizer();
        var (heads, source) = Heads(headsArg, loaded);
        stderr.WriteLine($"influence: shard {shard}/{shards}, heads {string.Join(",", heads)} ({source})");
        var clock = Stopwatch.StartNew();
        InfluenceShardResult result;
        using (var progress = new RateReporter(stderr, $"shard {shard}/{shards}"))
        {
            result = InfluenceShard.Run(loaded.Model, text => tokenizer.Encode(text, addSpecial: true), corpus, heads,
                Path.GetFullPath(loaded.Path), source, outDir, shard, shards, batchTokens, progress, CliMain.Cancellation);
        }
        double s = clock.Elapsed.TotalSeconds;
        stdout.WriteLine(result.Skipped
            ? $"{result.Part}: already complete ({result.Documents} documents), skipped"
            : $"{result.Part}: {result.Documents} documents, {result.Tokens} tokens in {s:F1} s ({result.Documents / s:F1} documents/s, {result.Tokens / s:F0} tokens/s)");
        return 0;
    }

    private static int Merge(CliArgs args, TextWriter stdout)
    {
        string outDir = args.Require("out", "the directory holding the parts");
        double? top = args.Get("top") is { } t ? ParseShare(t) : null;
        var rows = InfluenceParts.Merge(outDir, top);
        stdout.WriteLine($"{Path.Combine(outDir, InfluenceParts.MergedName)}: {rows.Count} documents, sorted by score");
        if (top is not null)
        {
            stdout.WriteLine($"{Path.Combine(outDir, InfluenceParts.TopName)}: the top {top.Value:P1}");
        }
        return 0;
    }

    private static int Slurm(CliArgs args, TextWriter stdout)
    {
        int shards = args.GetInt("array", 0, 1, 1_000_000);
        if (shards == 0)
        {
            throw new UsageException("missing --array N (the number of shards, one array task each)");
        }
        string outDir = Path.GetFullPath(args.Require("out", "the output directory"));
        var script = new SlurmScripts(
            Headwise: args.Get("headwise") ?? SelfCommand(),
            Model: args.Require("model", "the scoring model"),
            Corpus: Path.GetFullPath(args.Require("corpus", "the corpus")),
            Heads: args.Require("heads", "L.H,... or auto"),
            OutDir: outDir,
            Shards: shards,
            Partition: args.Get("partition"),
            Time: args.Get("time"),
            Mem: args.Get("mem"),
            Extra: [.. new[] { "tokenizer", "threads", "text-field", "id-field", "batch-tokens" }
                .Where(args.Has).SelectMany(o => new[] { "--" + o, args.Get(o)! })],
            Top: args.Get("top"));
        if (args.Get("top") is { } t)
        {
            ParseShare(t);
        }
        var files = script.Write();
        foreach (var f in files)
        {
            stdout.WriteLine($"wrote {f}");
        }
        if (args.Flag("submit"))
        {
            string array = SlurmScripts.Sbatch([Path.Combine(outDir, SlurmScripts.ArrayName)]);
            string merge = SlurmScripts.Sbatch([$"--dependency=afterok:{array}", Path.Combine(outDir, SlurmScripts.MergeName)]);
            script.WriteJobs(array, merge);
            stdout.WriteLine($"submitted array job {array} ({shards} tasks) and merge job {merge} (afterok:{array})");
            stdout.WriteLine($"if a task is ended for good (scancel, time limit), run {Path.Combine(outDir, SlurmScripts.RequeueName)}");
        }
        return 0;
    }

    // the command line that runs this same headwise: the apphost or `dotnet Headwise.Cli.dll`
    private static string SelfCommand()
    {
        string dll = typeof(InfluenceCommand).Assembly.Location;
        string apphost = Path.ChangeExtension(dll, null);
        if (File.Exists(apphost))
        {
            return SlurmScripts.Quote(apphost);
        }
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH")
            ?? (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet");
        return $"{SlurmScripts.Quote(dotnet)} {SlurmScripts.Quote(dll)}";
    }

    /// <summary>--shard I/N: two integers, N ≥ 1 and 0 ≤ I &lt; N.</summary>
    internal static (int Shard, int Shards) ParseShard(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n))
        {
            throw new UsageException($"--shard expects I/N, two non-negative integers, e.g. 0/4 (got '{text}')");
        }
        if (n < 1 || i >= n)
        {
            throw new UsageException($"--shard {text}: the shard index must be in [0, {n}) — shards are numbered 0..N−1");
        }
        return (i, n);
    }

    private static double ParseShare(string text)
    {
        bool percent = text.EndsWith('%');
        if (!double.TryParse(percent ? text[..^1] : text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
            || (percent ? v / 100 : v) is not (> 0 and <= 1))
        {
            throw new UsageException($"--top expects a share in (0, 1] or a percentage, e.g. 0.1 or 10% (got '{text}')");
        }
        return percent ? v / 100 : v;
    }

    private static (IReadOnlyList<HeadId> Heads, string Source) Heads(string text, LoadedModel loaded)
    {
        if (text == "auto" || text.StartsWith("auto:", StringComparison.Ordinal))
        {
            double share = text == "auto" ? 0.03 : ParseShareOf(text[5..]);
            // the tokenizer's special tokens (BOS at the end of the demo's vocabulary) would make the copy task unlike text
            var top = RetrievalHeads.Top(loaded.Model, share);
            return (top.Select(h => h.Head).ToArray(),
                $"auto: top {share:P0} retrieval heads of a copy task ({string.Join(", ", top.Select(h => $"{h.Head} {h.Score:F3}"))})");
        }
        return (HeadId.ParseList(text, loaded.Config.NLayers, loaded.Config.NHeads), "given");

        static double ParseShareOf(string s) => ParseShare(s);
    }

    /// <summary>Documents/s and time left on stderr: a live row on a terminal, a line every 10 s otherwise (logs).</summary>
    private sealed class RateReporter(TextWriter writer, string label) : IProgress<(int Done, int Total)>, IDisposable
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly LiveStatus? _live = LiveStatus.Start(writer);
        private double _lastDraw = double.NegativeInfinity;

        public void Report((int Done, int Total) p)
        {
            double s = _clock.Elapsed.TotalSeconds;
            bool last = p.Done >= p.Total;
            if (!last && s - _lastDraw < (_live is not null ? 0.2 : 10))
            {
                return;
            }
            _lastDraw = s;
            double rate = p.Done / Math.Max(s, 1e-9);
            string left = last ? $"done in {s:F1} s" : rate > 0 ? $"{(p.Total - p.Done) / rate:F0} s left" : "";
            string line = $"[{label}] {p.Done}/{p.Total} documents, {rate:F1} documents/s, {left}";
            if (_live is not null)
            {
                _live.Update(line, p.Done, p.Total);
            }
            else
            {
                writer.WriteLine(line);
            }
        }

        public void Dispose() => _live?.Dispose();
    }
}
