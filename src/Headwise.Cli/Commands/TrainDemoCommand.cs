using System.Globalization;
using Headwise.Training;

namespace Headwise.Cli.Commands;

public sealed class TrainDemoCommand : ICommand
{
    public string Name => "train-demo";
    public string Summary => "train the bundled demo model (small GPT-2 on the State of the Union text)";
    public string Usage => """
        headwise train-demo --text-file F --tokenizer tokenizer.json --out DIR [--run-dir DIR] [--steps N] [--batch N]
                            [--d-model N] [--layers N] [--heads N] [--seq-len N] [--lr X] [--seed S]
                    [--repeat-fraction X] [--random-repeat-fraction X] [--pair-recall-fraction X] [--init DIR] [--schedule cosine|constant]
                    [--freeze NAME,...] [--checkpoint-every N] [--resume] [--threads N] [--json]
        """;

    public string Description => """
        Tokenizes the text, trains a GPT-2 (tied embeddings) with the trainer on all but the last 5% of the tokens, and
        writes a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json) into --out. Training metrics,
        loss.png and the resumable checkpoint go to --run-dir (default runs/demo). Prints the held-out loss.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("text-file", "F", "training text (dev/demo/get-data.sh writes dev/demo/.data/sotu.txt)"),
        CliOption.Text("tokenizer", "F", "tokenizer.json (headwise train-tokenizer)"),
        CliOption.Text("out", "DIR", "model directory to write"),
        CliOption.Text("run-dir", "DIR", "training metrics, loss.png and the resumable checkpoint (default runs/demo)"),
        CliOption.Integer("steps", "N", "optimizer steps (default 1500)"),
        CliOption.Integer("batch", "N", "sequences per step (default 16)"),
        CliOption.Integer("d-model", "N", "shape (defaults 128, 4, 4, 128)"),
        CliOption.Integer("layers", "N", "shape (defaults 128, 4, 4, 128)"),
        CliOption.Integer("heads", "N", "shape (defaults 128, 4, 4, 128)"),
        CliOption.Integer("seq-len", "N", "shape (defaults 128, 4, 4, 128)"),
        CliOption.Number("lr", "X", "peak learning rate (default 2e-3, cosine schedule, 100 warmup steps)"),
        CliOption.Integer("seed", "S", "seed (default 0)"),
        CliOption.Number("repeat-fraction", "X", "share of training windows that are a text slice followed by its repeat, a copying\ncurriculum (default 0; the bundled model uses 0 — see models/demo/README.md)"),
        CliOption.Number("random-repeat-fraction", "X", "a further share of windows that are <|endoftext|> then random tokens repeated\nwith a random period of T/16..T/2 tokens, the loss counted only where copying predicts the\ntoken: meant to teach induction heads on any tokens (default 0; see models/demo/README.md)"),
        CliOption.Number("pair-recall-fraction", "X", "a further share of windows that are <|endoftext|> then random token pairs (a, b) shown\nagain and again in shuffled order, the loss counted only on a b whose pair was shown before:\nrewards a sharp previous-token head (default 0; see models/demo/README.md)"),
        CliOption.Text("init", "DIR", "start from the weights of this model directory (e.g. models/demo), with a fresh optimizer and\nits own schedule; the shape options are then taken from DIR"),
        CliOption.Text("schedule", "S", "cosine (default: down to 10% of --lr) | constant (--lr after 100 warmup steps, so a run of N\nsteps is bitwise the first N steps of any longer run with the same options)") with { Choices = ["cosine", "constant"] },
        CliOption.Text("freeze", "NAME,...", "keep these parameters as they are (no update, no weight decay): every trainer parameter whose\nname starts with one of the comma-separated prefixes, e.g. wpe,blocks.0.,blocks.2.attn.w_qkv (names: wte,\nwpe, blocks.L.ln1.weight|bias, blocks.L.attn.w_qkv|b_qkv|w_o|b_o, blocks.L.ln2.*, blocks.L.mlp.*, ln_f.*);\na prefix that names nothing is an error (the bundled model's cool-down, models/demo/README.md)"),
        CliOption.Integer("checkpoint-every", "N", "write the resumable checkpoint every N steps (default 250)"),
        CliOption.Flag("resume", "continue the run saved in --run-dir (same text and tokenizer; --steps may extend it)"),
        CliOption.Integer("threads", "N", "worker threads (default: all cores)"),
        CliOption.Flag("json", "print the result record as JSON"),
    ];

    public string Examples => """
        Example:
          headwise train-demo --text-file dev/demo/.data/sotu.txt --tokenizer models/demo/tokenizer.json --out models/demo
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string text = args.Require("text-file", "training text");
        string tok = args.Require("tokenizer", "tokenizer.json");
        string outDir = args.Require("out", "model directory");
        string runDir = args.Get("run-dir") ?? Path.Combine("runs", "demo");
        var d = new DemoModelOptions();
        var o = d with
        {
            Steps = args.GetInt("steps", d.Steps, 1),
            Batch = args.GetInt("batch", d.Batch, 1),
            DModel = args.GetInt("d-model", d.DModel, 8),
            Layers = args.GetInt("layers", d.Layers, 1),
            Heads = args.GetInt("heads", d.Heads, 1),
            SeqLen = args.GetInt("seq-len", d.SeqLen, 8),
            LearningRate = (float)args.GetDouble("lr", d.LearningRate, 1e-7, 1),
            Seed = (ulong)args.GetInt("seed", 0, 0),
            CheckpointEvery = args.GetInt("checkpoint-every", d.CheckpointEvery, 1),
            Resume = args.Flag("resume"),
            RepeatFraction = args.GetDouble("repeat-fraction", 0, 0, 1),
            RandomRepeatFraction = args.GetDouble("random-repeat-fraction", 0, 0, 1),
            PairRecallFraction = args.GetDouble("pair-recall-fraction", 0, 0, 1),
            InitDir = args.Get("init"),
            Frozen = args.Get("freeze") is string f ? [.. f.Split(',', StringSplitOptions.TrimEntries)] : null,
            Schedule = (args.Get("schedule") ?? "cosine") switch
            {
                "cosine" => LrSchedule.Cosine,
                "constant" => LrSchedule.Constant,
                string other => throw new UsageException($"--schedule expects cosine or constant, got '{other}'"),
            },
        };
        if (o.InitDir is not null && (o.Resume || new[] { "d-model", "layers", "heads", "seq-len" }.Any(args.Has)))
        {
            throw new UsageException("--init takes the shape from its model and starts a new run: drop --d-model/--layers/--heads/--seq-len/--resume");
        }
        if (o.RepeatFraction + o.RandomRepeatFraction + o.PairRecallFraction > 1)
        {
            throw new UsageException($"--repeat-fraction {o.RepeatFraction} + --random-repeat-fraction {o.RandomRepeatFraction} + --pair-recall-fraction {o.PairRecallFraction} exceed 1");
        }
        ModelArgs.ApplyThreads(args);
        bool json = args.Flag("json");
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        var progress = new Progress<TrainingProgress>(p => bar.Report(new Analysis.AnalysisProgress("train", p.Step, p.TotalSteps)));
        DemoModelResult r;
        try
        {
            r = DemoModel.Train(text, tok, outDir, runDir, o, progress, CliMain.Cancellation);
        }
        catch (OperationCanceledException) when (CliMain.Cancellation.IsCancellationRequested)
        {
            throw new InterruptedException($"the model in {outDir} is unchanged; the run is saved in {runDir}: continue with --resume");
        }
        if (json)
        {
            stdout.WriteLine(Json.Serialize(r));
            return 0;
        }

        stdout.WriteLine($"{r.Tokens} tokens, {r.Parameters} parameters, {r.Steps} steps in {r.Seconds:F0} s; held-out loss {(r.HeldOutLoss?.ToString("F4", CultureInfo.InvariantCulture) ?? "n/a")}");
        stdout.WriteLine(r.ModelDir);
        return 0;
    }
}
