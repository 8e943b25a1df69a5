using System.Diagnostics;
using System.Globalization;
using System.Text;
using Headwise.Training.Plots;

namespace Headwise.Training;

/// <summary>
/// Trains a <see cref="TrainableTransformer"/> on a token stream: AdamW, warmup + cosine or warmup-stable-decay, global-norm
/// clipping, gradient accumulation, held-out evaluation, atomic checkpoints that resume exactly, metrics.jsonl and loss.png.
/// </summary>
/// <remarks>
/// Deterministic: the same seed gives bitwise the same losses for any <see cref="Kernels.MaxThreads"/>, and a run
/// resumed from its step-k checkpoint continues bitwise as the uninterrupted run would. Output directory layout:
/// <c>OUT/checkpoint/</c> (see <see cref="TrainingCheckpoint"/>), <c>OUT/metrics.jsonl</c>, <c>OUT/loss.png</c>.
/// </remarks>
public sealed class Trainer
{
    private readonly TrainingData _data;
    private readonly TrainingRng _rng;
    private readonly AdamW _adam;
    private readonly IReadOnlyList<ParameterInfo> _trainable;
    private readonly IReadOnlyList<ParameterInfo> _frozen;
    private readonly ulong _dataHash;
    private readonly string? _tokenizerFile;
    private readonly List<StepMetrics> _history = [];
    private int _step;

    public TrainableTransformer Model { get; }
    public TrainerOptions Options { get; }
    public TrainingData Data => _data;

    /// <summary>Output directory (null: train in memory, no files).</summary>
    public string? OutDir { get; }

    public string? CheckpointDir => OutDir is null ? null : Path.Combine(OutDir, "checkpoint");

    /// <summary>The last completed optimizer step.</summary>
    public int Step => _step;

    /// <summary>A fresh run: <paramref name="model"/> as initialised, batches sampled from <paramref name="tokens"/>.</summary>
    public Trainer(TrainableTransformer model, TrainerOptions options, int[] tokens, string? outDir = null, string? tokenizerFile = null)
        : this(model, options, tokens, outDir, tokenizerFile, null)
    {
    }

    private Trainer(TrainableTransformer model, TrainerOptions options, int[] tokens, string? outDir, string? tokenizerFile, TrainingCheckpoint.State? resume)
    {
        options.Validate();
        int T = options.SeqLen > 0 ? options.SeqLen : model.Config.SeqLen;
        if (T > model.Config.SeqLen)
        {
            throw new InvalidInputException($"training options: sequence length {T} exceeds the model's {model.Config.SeqLen}");
        }
        foreach (int t in tokens)
        {
            if ((uint)t >= (uint)model.Config.VocabSize)
            {
                throw new InvalidInputException($"data: token id {t} is outside the model's vocabulary (0..{model.Config.VocabSize - 1})");
            }
        }
        if (options.BosTokenId is int bosId && bosId >= model.Config.VocabSize)
        {
            throw new InvalidInputException($"training options: BOS token id {bosId} is outside the model's vocabulary (0..{model.Config.VocabSize - 1})");
        }
        if (tokenizerFile is not null && !File.Exists(tokenizerFile))
        {
            throw new InvalidInputException($"--tokenizer: no file '{tokenizerFile}'");
        }
        Model = model;
        Options = options;
        OutDir = outDir;
        _tokenizerFile = tokenizerFile;
        _data = new TrainingData(tokens, T, options.HeldOutFraction);
        _dataHash = TrainingData.Hash(tokens);
        (_trainable, _frozen) = SplitFrozen(model, options.Frozen);
        _adam = new AdamW(model.ParameterCount) { Beta1 = options.Beta1, Beta2 = options.Beta2, Eps = options.AdamEps, WeightDecay = options.WeightDecay };
        _rng = new TrainingRng(options.Seed ^ 0x5EED_DA7AUL);
        if (resume is not null)
        {
            if (resume.DataHash != _dataHash)
            {
                throw new InvalidInputException("--resume: the data differs from the data of the run being resumed (exact resume needs the same token stream)");
            }
            resume.Params.CopyTo(model.Params, 0);
            resume.M.CopyTo(_adam.M, 0);
            resume.V.CopyTo(_adam.V, 0);
            _rng.State = resume.RngState;
            _step = resume.Step;
        }
    }

    // The parameters that --freeze names (by prefix) and the rest; a prefix that names nothing is an error, not a no-op.
    private static (IReadOnlyList<ParameterInfo> Trainable, IReadOnlyList<ParameterInfo> Frozen) SplitFrozen(TrainableTransformer model, IReadOnlyList<string> prefixes)
    {
        foreach (string prefix in prefixes)
        {
            if (string.IsNullOrEmpty(prefix) || !model.Parameters.Any(p => p.Name.StartsWith(prefix, StringComparison.Ordinal)))
            {
                string names = string.Join(", ", model.Parameters.Select(p => p.Name).Where(n => n.StartsWith("blocks.0.", StringComparison.Ordinal) || !n.StartsWith("blocks.", StringComparison.Ordinal)));
                throw new InvalidInputException($"--freeze (TrainerOptions.Frozen): '{prefix}' names no parameter of this model (names: {names}, and the same for blocks.1.. )");
            }
        }
        bool IsFrozen(ParameterInfo p) => prefixes.Any(f => p.Name.StartsWith(f, StringComparison.Ordinal));
        return ([.. model.Parameters.Where(p => !IsFrozen(p))], [.. model.Parameters.Where(IsFrozen)]);
    }

    /// <summary>
    /// Continues the run saved in <paramref name="checkpointDir"/> (a checkpoint, or a run directory holding one) on the same
    /// data. <paramref name="steps"/> may extend the run; everything else comes from the checkpoint. Nothing is written until
    /// <see cref="Train"/> succeeds at its first checkpoint.
    /// </summary>
    public static Trainer Resume(string checkpointDir, int[] tokens, string? outDir = null, int? steps = null, int? stopAfterStep = null, string? tokenizerFile = null)
    {
        string dir = Directory.Exists(Path.Combine(checkpointDir, "checkpoint")) ? Path.Combine(checkpointDir, "checkpoint") : checkpointDir;
        var (config, options, state) = TrainingCheckpoint.Read(dir);
        options = options with { Steps = steps ?? options.Steps, StopAfterStep = stopAfterStep };
        if (state.Step > options.Steps)
        {
            throw new InvalidInputException($"--resume: the checkpoint is at step {state.Step}, past --steps {options.Steps}");
        }
        var model = new TrainableTransformer(config);
        var trainer = new Trainer(model, options, tokens, outDir, tokenizerFile, state);
        if (outDir is not null)
        {
            trainer.LoadHistory();
        }
        return trainer;
    }

    /// <summary>Mean loss over the fixed held-out windows (NaN when there is no held-out split).</summary>
    public float Evaluate()
    {
        int B = Options.BatchSize, T = _data.SeqLen;
        int[] starts = _data.EvalStarts(Options.EvalBatches * B);
        if (starts.Length == 0) return float.NaN;
        var inputs = new int[B * T];
        var targets = new int[B * T];
        double sum = 0;
        int batches = 0;
        for (int i = 0; i + B <= starts.Length; i += B)
        {
            for (int b = 0; b < B; b++)
            {
                _data.HeldOut.AsSpan(starts[i + b], T).CopyTo(inputs.AsSpan(b * T));
                _data.HeldOut.AsSpan(starts[i + b] + 1, T).CopyTo(targets.AsSpan(b * T));
            }
            sum += Model.Forward(inputs, targets, B, T);
            batches++;
        }
        return (float)(sum / batches);
    }

    /// <summary>
    /// Runs optimizer steps until <see cref="TrainerOptions.Steps"/> (or <see cref="TrainerOptions.StopAfterStep"/>, or
    /// cancellation — each of which also writes a checkpoint), reporting progress after every step.
    /// </summary>
    public TrainingResult Train(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        int B = Options.BatchSize, T = _data.SeqLen, accum = Options.AccumulationSteps;
        int last = Math.Min(Options.Steps, Options.StopAfterStep ?? int.MaxValue);
        var inputs = new int[B * T];
        var targets = new int[B * T];
        var metrics = new List<StepMetrics>();
        StreamWriter? log = null;
        if (OutDir is not null)
        {
            Directory.CreateDirectory(OutDir);
            log = new StreamWriter(Path.Combine(OutDir, "metrics.jsonl"), append: false, new UTF8Encoding(false));
            foreach (var m in _history) log.WriteLine(ToJsonLine(m));
            log.Flush();
        }
        var clock = Stopwatch.StartNew();
        int firstStep = _step + 1;
        float? evalLoss = null;
        bool cancelled = false;
        try
        {
            while (_step < last)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;
                    break;
                }
                long t0 = Stopwatch.GetTimestamp();
                int step = _step + 1;
                Model.ZeroGrad();
                double loss = 0;
                for (int micro = 0; micro < accum; micro++)
                {
                    _data.SampleBatch(_rng, inputs, targets, B, Options.RepeatFraction, Options.RandomRepeatFraction, Model.Config.VocabSize, Options.BosTokenId ?? -1,
                        Options.PairRecallFraction);
                    loss += Model.Forward(inputs, targets, B, T);
                    Model.Backward(1f / accum);
                }
                loss /= accum;
                foreach (var p in _frozen) Model.Grads.AsSpan(p.Offset, p.Length).Clear();
                double norm = AdamW.GlobalNorm(Model.Grads);
                AdamW.ClipGradients(Model.Grads, norm, Options.GradClip);
                float lr = Options.LearningRateAt(step);
                _adam.Step(Model.Params, Model.Grads, _trainable, lr, step);
                _step = step;
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                double tokensPerSecond = (double)B * T * accum / Math.Max(seconds, 1e-9);
                float? eval = null;
                if ((Options.EvalEvery > 0 && step % Options.EvalEvery == 0) || step == Options.Steps)
                {
                    eval = Evaluate();
                    if (float.IsNaN(eval.Value)) eval = null;
                    evalLoss = eval ?? evalLoss;
                }
                var m = new StepMetrics(step, (float)loss, lr, norm, tokensPerSecond, eval);
                metrics.Add(m);
                _history.Add(m);
                log?.WriteLine(ToJsonLine(m));
                log?.Flush();
                if (!double.IsFinite(loss))
                {
                    throw new InvalidInputException($"training diverged at step {step} (loss {loss}); lower --lr — the last checkpoint is kept");
                }
                if (Options.CheckpointEvery > 0 && step % Options.CheckpointEvery == 0 && step < last)
                {
                    SaveCheckpoint();
                }
                double elapsed = clock.Elapsed.TotalSeconds;
                int done = step - firstStep + 1;
                var remaining = TimeSpan.FromSeconds(elapsed / done * (last - step));
                progress?.Report(new TrainingProgress(step, Options.Steps, (float)loss, tokensPerSecond, clock.Elapsed, remaining, eval));
            }
        }
        finally
        {
            log?.Dispose();
        }
        if (OutDir is not null)
        {
            SaveCheckpoint();
            LossPlot.Write(Path.Combine(OutDir, "loss.png"), _history);
        }
        return new TrainingResult(metrics, _step, !cancelled && _step >= Options.Steps, evalLoss, CheckpointDir);
    }

    /// <summary>Writes OUT/checkpoint atomically (see <see cref="TrainingCheckpoint"/>).</summary>
    public void SaveCheckpoint()
    {
        if (CheckpointDir is null) throw new InvalidOperationException("this trainer has no output directory");
        var state = new TrainingCheckpoint.State(_step, _rng.State, _dataHash, Model.Params, _adam.M, _adam.V);
        TrainingCheckpoint.Write(CheckpointDir, Model, Options with { StopAfterStep = null }, state, _tokenizerFile);
    }

    // On resume, keep the metrics of the steps up to the checkpoint (later lines came from a run that did not save them).
    private void LoadHistory()
    {
        string path = Path.Combine(OutDir!, "metrics.jsonl");
        if (!File.Exists(path)) return;
        foreach (string line in File.ReadLines(path))
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(line);
                var r = doc.RootElement;
                int step = r.GetProperty("step").GetInt32();
                if (step > _step) continue;
                float? eval = r.TryGetProperty("eval_loss", out var e) ? e.GetSingle() : null;
                _history.Add(new StepMetrics(step, r.GetProperty("loss").GetSingle(), r.GetProperty("lr").GetSingle(),
                    r.GetProperty("grad_norm").GetDouble(), r.GetProperty("tokens_per_s").GetDouble(), eval));
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                // a torn last line from a killed run: skip it
            }
        }
    }

    private static string ToJsonLine(StepMetrics m)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(ci, $"{{\"step\":{m.Step},\"loss\":{m.Loss.ToString("R", ci)},\"lr\":{m.Lr.ToString("R", ci)},");
        sb.Append(ci, $"\"grad_norm\":{m.GradNorm.ToString("R", ci)},\"tokens_per_s\":{m.TokensPerSecond.ToString("F1", ci)}");
        if (m.EvalLoss is float e) sb.Append(ci, $",\"eval_loss\":{e.ToString("R", ci)}");
        sb.Append('}');
        return sb.ToString();
    }
}
