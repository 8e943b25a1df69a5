using System.Diagnostics;
using System.Text;
using Headwise.Tokenizers;
using Headwise.Training;

namespace Headwise.Cli.Commands;

public sealed class TrainCommand : ICommand
{
    public string Name => "train";
    public string Summary => "train a small GPT-2 or Llama model on a text file (AdamW, checkpoints, resume)";
    public string Usage => """
        headwise train --data FILE --out DIR [--tokenizer F] [--arch gpt2|llama] [--layers N --heads H --d-model C --seq-len T]
                       [--steps N --batch B --lr X --seed S ...] [--resume DIR] [--json]
        """;

    public string Description => """
        Trains a transformer from scratch on the text in FILE (UTF-8), tokenized with --tokenizer or, by default, as raw
        bytes (vocabulary 256). The last --held-out fraction of the tokens is kept for evaluation. Writes DIR/checkpoint/
        (config.json + model.safetensors that `headwise --model DIR/checkpoint` loads, plus the optimizer state to resume
        from), DIR/metrics.jsonl (one JSON line per step) and DIR/loss.png. Ctrl-C stops after the current step and saves.
        """;

    private const string ModelSection = "Model (ignored with --resume: the model comes from the checkpoint)";
    private const string TrainingSection = "Training";

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("data", "FILE", "the training text (UTF-8)"),
        CliOption.Text("out", "DIR", "run directory: checkpoint/, metrics.jsonl, loss.png"),
        CliOption.Text("tokenizer", "F", "tokenizer file (tokenizer.json, tokenizer.model, llama2.c tokenizer.bin); default: raw bytes"),
        CliOption.Text("arch", "A", "gpt2 (LayerNorm, learned positions, GELU) or llama (RMSNorm, RoPE, SwiGLU, GQA); default gpt2", section: ModelSection) with { Choices = ["gpt2", "llama"] },
        CliOption.Integer("layers", "N", "blocks (default 4)", section: ModelSection),
        CliOption.Integer("heads", "H", "query heads (default 4); must divide --d-model unless --d-head is given", section: ModelSection),
        CliOption.Integer("kv-heads", "K", "key/value heads for grouped-query attention (default: --heads)", section: ModelSection),
        CliOption.Integer("d-model", "C", "residual width (default 256)", section: ModelSection),
        CliOption.Integer("d-head", "D", "head size (default C / H)", section: ModelSection),
        CliOption.Integer("d-mlp", "F", "MLP width (default 4·C)", section: ModelSection),
        CliOption.Integer("seq-len", "T", "context length (default 128)", section: ModelSection),
        CliOption.Number("rope-theta", "X", "RoPE base for llama (default 10000)", section: ModelSection),
        CliOption.Flag("untied", "separate unembedding matrix (default: tied to the embedding)", section: ModelSection),
        CliOption.Flag("attn-only", "no MLPs", section: ModelSection),
        CliOption.Flag("combined-ov", "one d_model × d_model output-value matrix per head instead of W_O·W_V (no HF export)", section: ModelSection),
        CliOption.Flag("no-norm", "no LayerNorm/RMSNorm (no HF export)", section: ModelSection),
        CliOption.Flag("no-bias", "gpt2: no biases on the linear layers (exported as zero biases)", section: ModelSection),
        CliOption.Flag("no-positions", "no learned positions (gpt2) / no RoPE (llama; no HF export)", section: ModelSection),
        CliOption.Flag("one-hot-embeddings", "fixed one-hot embedding and unembedding (needs --d-model = the vocabulary size)", section: ModelSection),
        CliOption.Text("attention-variant", "NAME", "the attention of every block (docs/variants.md; default softmax):\nsoftmax       standard scaled dot-product softmax attention\nsymmetric_qk  W_K = W_Q per head (exports as ordinary attention)\ncollapsed_qk  one C × C W_QK per head, score = x_t W_QK x_jᵀ/√C (exports with --arch\n              llama or one head as W_Q = W_QK, W_K = I; else training-only)\nmoh           mixture-of-heads: a router gates the heads per token, top-k of the routed\n              heads plus always-on shared heads (checkpoint training-only)\nlinear        kernelised causal attention, φ = elu + 1 (checkpoint training-only)\nsinkhorn      causal Sinkhorn-balanced attention in log space (checkpoint training-only)\naffine_scaled softmax weights scaled and offset per token and head, α·p + β/(t+1), from\n              a learned projection of the input (checkpoint training-only)\ngaussian      a learned Gaussian over the query–key distance (mean, log-variance per head)\n              added to the scores as a log-density (checkpoint training-only)\nlow_rank      q/k/v projections through one shared rank-R factor, W_qkv = W_up·W_down\n              (exports as ordinary attention)\nrelative_conv causal depth-wise convolutions of q, k, v along time (checkpoint training-only)\nrandom_features  frozen random W_Q, W_K drawn from --seed, only values/output train\n              (exports as ordinary attention)\ndynamic_mask  each query keeps the top-W keys by a value-dependent strength, added to\n              the scores (checkpoint training-only)\ntensor        softmax over pairs of keys, ⟨q, k1 ⊙ k2⟩, values v1 ⊙ v2; O(T³), --seq-len\n              at most 64 (checkpoint training-only)", section: ModelSection),
        CliOption.Integer("moh-shared", "S", "moh: always-on shared heads (default heads / 4)", section: ModelSection),
        CliOption.Integer("moh-active", "K", "moh: routed heads active per token, 1 ≤ K ≤ heads − S (default half the routed heads)", section: ModelSection),
        CliOption.Integer("sinkhorn-iters", "N", "sinkhorn: row/column normalisation rounds before the final row softmax (default 3; 0 = softmax)", section: ModelSection),
        CliOption.Integer("low-rank", "R", "low_rank: rank of the shared factor, 1 ≤ R ≤ d-model (default d-model / 4)", section: ModelSection),
        CliOption.Integer("conv-kernel", "K", "relative_conv: convolution taps, 1 ≤ K ≤ seq-len (default 3)", section: ModelSection),
        CliOption.Integer("mask-window", "W", "dynamic_mask: keys each query keeps (default half of --seq-len; ≥ --seq-len = dense)", section: ModelSection),
        CliOption.Integer("steps", "N", "optimizer steps (default 1000; with --resume: extend the run to N)", section: TrainingSection),
        CliOption.Integer("batch", "B", "sequences per micro-batch (default 8)", section: TrainingSection),
        CliOption.Integer("accum", "K", "micro-batches per step (default 1)", section: TrainingSection),
        CliOption.Number("lr", "X", "peak learning rate (default 1e-3)", section: TrainingSection),
        CliOption.Number("min-lr-frac", "X", "final lr as a fraction of the peak (default 0.1)", section: TrainingSection),
        CliOption.Integer("warmup", "N", "linear warmup steps (default 0)", section: TrainingSection),
        CliOption.Text("schedule", "S", "cosine | wsd (warmup-stable-decay) | constant (default cosine)", section: TrainingSection) with { Choices = ["cosine", "wsd", "constant"] },
        CliOption.Number("decay-frac", "X", "wsd: fraction of the steps spent decaying (default 0.2)", section: TrainingSection),
        CliOption.Number("weight-decay", "X", "AdamW decoupled weight decay on matrices and embeddings (default 0.1)", section: TrainingSection),
        CliOption.Number("clip", "X", "clip the global gradient norm (default 1; 0 = off)", section: TrainingSection),
        CliOption.Integer("seed", "S", "initial weights and batch sampling (default 0); same seed → same losses", section: TrainingSection),
        CliOption.Number("held-out", "X", "fraction of the tokens held out for evaluation (default 0.1)", section: TrainingSection),
        CliOption.Integer("eval-every", "N", "evaluate every N steps (default: steps / 10)", section: TrainingSection),
        CliOption.Integer("checkpoint-every", "N", "write a checkpoint every N steps (default: only at the end)", section: TrainingSection),
        CliOption.Text("resume", "DIR", "continue the run saved in DIR (a run directory or its checkpoint/) on the same data", section: TrainingSection),
        CliOption.Integer("threads", "N", "worker threads (default: all cores)", section: TrainingSection),
        CliOption.Flag("json", "print {\"steps\": ..., \"loss\": x, \"eval_loss\": y, \"tokens_per_s\": z, \"checkpoint\": \"...\", ...}", section: TrainingSection),
    ];

    public string Examples => """
        Example:
          headwise train --data story.txt --out runs/tiny --layers 2 --d-model 64 --heads 4 --seq-len 64 --steps 200
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        ModelArgs.ApplyThreads(args);
        string dataPath = args.Require("data", "a UTF-8 text file to train on");
        string outDir = args.Require("out", "the run directory");
        string? tokenizerPath = args.Get("tokenizer");
        string? resume = args.Get("resume");
        string[] modelOptions = ["arch", "layers", "heads", "kv-heads", "d-model", "d-head", "d-mlp", "seq-len", "rope-theta", "untied", "attn-only", "combined-ov", "no-norm", "no-bias", "no-positions", "one-hot-embeddings", "attention-variant", "moh-active", "mask-window", "moh-shared", "sinkhorn-iters", "low-rank", "conv-kernel"];
        TrainableConfig? config = null;
        if (resume is not null)
        {
            if (modelOptions.FirstOrDefault(args.Has) is string clash)
            {
                throw new UsageException($"--{clash} cannot be combined with --resume (the model comes from the checkpoint)");
            }
        }
        else
        {
            config = new TrainableConfig
            {
                Architecture = (args.Get("arch") ?? "gpt2") switch
                {
                    "gpt2" => TrainableArchitecture.Gpt2,
                    "llama" => TrainableArchitecture.Llama,
                    var a => throw new UsageException($"--arch expects gpt2 or llama, got '{a}'"),
                },
                VocabSize = 256, // replaced below once the tokenizer is known
                NLayers = args.GetInt("layers", 4, 1, 1024),
                NHeads = args.GetInt("heads", 4, 1, 4096),
                NKvHeads = args.GetInt("kv-heads", 0, 0, 4096),
                DModel = args.GetInt("d-model", 256, 1, 1 << 16),
                DHead = args.GetInt("d-head", 0, 0, 1 << 16),
                DMlp = args.GetInt("d-mlp", 0, 0, 1 << 20),
                SeqLen = args.GetInt("seq-len", 128, 1, 1 << 16),
                RopeTheta = args.GetDouble("rope-theta", 10000, 1, 1e12),
                TiedEmbeddings = !args.Flag("untied"),
                AttentionOnly = args.Flag("attn-only"),
                CombinedOV = args.Flag("combined-ov"),
                UseNorm = !args.Flag("no-norm"),
                UseBias = !args.Flag("no-bias"),
                UsePositions = !args.Flag("no-positions"),
                OneHotEmbeddings = args.Flag("one-hot-embeddings"),
            };
            config = VariantArgs.Apply(args, config);
        }
        int steps = args.GetInt("steps", 1000, 1, int.MaxValue);
        string schedule = args.Get("schedule") ?? "cosine";
        var options = new TrainerOptions
        {
            Steps = steps,
            BatchSize = args.GetInt("batch", 8, 1, 1 << 16),
            AccumulationSteps = args.GetInt("accum", 1, 1, 1 << 16),
            LearningRate = (float)args.GetDouble("lr", 1e-3, 1e-12, 100),
            MinLrFraction = (float)args.GetDouble("min-lr-frac", 0.1, 0, 1),
            WarmupSteps = args.GetInt("warmup", 0, 0, steps),
            Schedule = schedule switch
            {
                "cosine" => LrSchedule.Cosine,
                "wsd" => LrSchedule.WarmupStableDecay,
                "constant" => LrSchedule.Constant,
                _ => throw new UsageException($"--schedule expects cosine, wsd or constant, got '{schedule}'"),
            },
            DecayFraction = args.GetDouble("decay-frac", 0.2, 1e-9, 1),
            WeightDecay = (float)args.GetDouble("weight-decay", 0.1, 0, 100),
            GradClip = args.GetDouble("clip", 1.0, 0, 1e9),
            Seed = (ulong)args.GetInt("seed", 0, 0, int.MaxValue),
            HeldOutFraction = args.GetDouble("held-out", 0.1, 0, 0.9),
            EvalEvery = args.GetInt("eval-every", Math.Max(1, steps / 10), 0, int.MaxValue),
            CheckpointEvery = args.GetInt("checkpoint-every", 0, 0, int.MaxValue),
        };

        if (!File.Exists(dataPath)) throw new InvalidInputException($"--data: no file '{dataPath}'");
        string text = File.ReadAllText(dataPath, Encoding.UTF8);
        int[] tokens;
        int vocab;
        if (tokenizerPath is not null)
        {
            if (!File.Exists(tokenizerPath)) throw new InvalidInputException($"--tokenizer: no file '{tokenizerPath}'");
            var tokenizer = TokenizerLoader.Load(tokenizerPath);
            tokens = tokenizer.Encode(text, addSpecial: false);
            vocab = tokenizer.VocabSize;
        }
        else
        {
            tokens = Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
            vocab = 256;
        }

        Trainer trainer;
        if (resume is not null)
        {
            trainer = Trainer.Resume(resume, tokens, outDir, args.Has("steps") ? steps : null, tokenizerFile: tokenizerPath);
        }
        else
        {
            if (Directory.Exists(Path.Combine(outDir, "checkpoint")))
            {
                throw new InvalidInputException($"--out: '{outDir}' already holds a checkpoint; continue it with --resume {outDir}, or choose another --out");
            }
            var model = new TrainableTransformer(config! with { VocabSize = vocab }, options.Seed);
            trainer = new Trainer(model, options, tokens, outDir, tokenizerPath);
        }

        var clock = Stopwatch.StartNew();
        TrainingResult result;
        using (var progress = json && Console.IsErrorRedirected ? null : new LineProgress(stderr))
        {
            result = trainer.Train(progress, CliMain.Cancellation);
        }
        if (!result.Completed && CliMain.Cancellation.IsCancellationRequested)
        {
            throw new InterruptedException($"step {result.LastStep} saved in {result.CheckpointDir}; continue with --resume {outDir}");
        }
        double meanTps = result.Steps.Count > 0 ? result.Steps.Average(s => s.TokensPerSecond) : 0;
        float? lastLoss = result.Steps.Count > 0 ? result.Steps[^1].Loss : null;
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                steps = result.LastStep,
                completed = result.Completed,
                loss = lastLoss,
                eval_loss = result.EvalLoss,
                tokens_per_s = meanTps,
                parameters = trainer.Model.ParameterCount,
                train_tokens = trainer.Data.Train.Length,
                held_out_tokens = trainer.Data.HeldOut.Length,
                seconds = clock.Elapsed.TotalSeconds,
                checkpoint = result.CheckpointDir,
                hf_export = trainer.Model.HfExportBlocker is null,
                metrics = Path.Combine(outDir, "metrics.jsonl"),
                loss_png = Path.Combine(outDir, "loss.png"),
            }));
            return 0;
        }
        stdout.WriteLine($"model        {trainer.Model.Config.Architecture}, {trainer.Model.ParameterCount:N0} parameters");
        stdout.WriteLine($"data         {trainer.Data.Train.Length:N0} training tokens, {trainer.Data.HeldOut.Length:N0} held out");
        stdout.WriteLine($"steps        {result.LastStep}/{trainer.Options.Steps}{(result.Completed ? "" : " (stopped early)")}");
        stdout.WriteLine($"loss         {lastLoss:F4}");
        stdout.WriteLine($"eval loss    {(result.EvalLoss is float e ? e.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) : "n/a")}");
        stdout.WriteLine($"speed        {meanTps:F0} tokens/s");
        stdout.WriteLine($"checkpoint   {result.CheckpointDir}{(trainer.Model.HfExportBlocker is string why ? $" (Headwise format only: {why})" : "")}");
        stdout.WriteLine($"metrics      {Path.Combine(outDir, "metrics.jsonl")}, {Path.Combine(outDir, "loss.png")}");
        return 0;
    }

    // Synchronous (Progress<T> would post to the thread pool and print out of order): a live row on a terminal's stderr,
    // one line per 10% otherwise.
    private sealed class LineProgress(TextWriter writer) : IProgress<TrainingProgress>, IDisposable
    {
        private readonly LiveStatus? _live = LiveStatus.Start(writer);
        private int _lastDecile = -1;

        public void Report(TrainingProgress p)
        {
            string line = $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}{(p.EvalLoss is float e ? $"  eval {e:F4}" : "")}  {p.TokensPerSecond:F0} tok/s  {Format(p.Remaining.TotalSeconds)} left";
            if (_live is not null)
            {
                _live.Update(line, p.Step, p.TotalSteps);
                return;
            }
            int decile = (int)(10L * p.Step / Math.Max(1, p.TotalSteps));
            if (decile == _lastDecile) return;
            _lastDecile = decile;
            writer.WriteLine(line);
        }

        public void Dispose() => _live?.Dispose();

        private static string Format(double s) => s < 60 ? $"{s:F0}s" : s < 3600 ? $"{s / 60:F0}m{s % 60:00}s" : $"{s / 3600:F1}h";
    }
}
