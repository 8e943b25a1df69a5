using System.Text.Json;
using System.Text.Json.Serialization;

namespace Headwise.Training;

/// <summary>How the learning rate moves over the run (after <see cref="TrainerOptions.WarmupSteps"/> of linear warmup).</summary>
public enum LrSchedule
{
    /// <summary>Cosine from the peak down to MinLrFraction·peak at the last step.</summary>
    Cosine,
    /// <summary>Warmup-stable-decay: the peak until the last DecayFraction of the steps, then linear down to MinLrFraction·peak.</summary>
    WarmupStableDecay,
    /// <summary>The peak throughout.</summary>
    Constant,
}

/// <summary>Everything about a run except the model and the data. Stored in each checkpoint (trainer.json).</summary>
public sealed record TrainerOptions
{
    public int Steps { get; init; } = 1000;
    public int BatchSize { get; init; } = 8;
    /// <summary>Window length T; 0 = the model's SeqLen.</summary>
    public int SeqLen { get; init; }
    public float LearningRate { get; init; } = 1e-3f;
    public float MinLrFraction { get; init; } = 0.1f;
    public int WarmupSteps { get; init; }
    [JsonConverter(typeof(JsonStringEnumConverter<LrSchedule>))]
    public LrSchedule Schedule { get; init; } = LrSchedule.Cosine;
    public double DecayFraction { get; init; } = 0.2;
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float AdamEps { get; init; } = 1e-8f;
    /// <summary>Clip the global gradient norm to this; 0 = no clipping.</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>Micro-batches per optimizer step; the loss is their mean.</summary>
    public int AccumulationSteps { get; init; } = 1;
    /// <summary>Seeds the initial weights (when the trainer builds the model) and the batch sampler.</summary>
    public ulong Seed { get; init; }
    public double HeldOutFraction { get; init; } = 0.1;
    /// <summary>Evaluate every this many steps (and at the end); 0 = only at the end.</summary>
    public int EvalEvery { get; init; }
    /// <summary>Evaluation windows = EvalBatches × BatchSize.</summary>
    public int EvalBatches { get; init; } = 4;
    /// <summary>Write a checkpoint every this many steps (and at the end); 0 = only at the end.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Fraction of training windows that are a slice of the text followed by its repeat (a copying curriculum that
    /// makes induction heads form in short runs; see <see cref="TrainingData.SampleBatch"/>); 0 = plain windows.</summary>
    public double RepeatFraction { get; init; }
    /// <summary>A further fraction of training windows that are random tokens repeated with a random period (BOS first
    /// when <see cref="BosTokenId"/> is set; see <see cref="TrainingData.SampleBatch"/>); 0 = none.</summary>
    public double RandomRepeatFraction { get; init; }
    /// <summary>A further fraction of training windows that are random pairs shown again in shuffled order (BOS first when
    /// <see cref="BosTokenId"/> is set; see <see cref="TrainingData.SampleBatch"/>): teaches previous-token heads; 0 = none.</summary>
    public double PairRecallFraction { get; init; }
    /// <summary>The token that starts each random repeated window (the model's BOS); null = none.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>
    /// Parameters kept as they are: every parameter whose name (<see cref="ParameterInfo.Name"/>: <c>wte</c>, <c>wpe</c>,
    /// <c>blocks.2.attn.w_qkv</c>, …) starts with one of these prefixes gets no update and no weight decay, and its gradient
    /// does not enter the clipping norm. Empty = train everything.
    /// </summary>
    public IReadOnlyList<string> Frozen { get; init; } = [];
    /// <summary>Stop (with a checkpoint) after this step, as if interrupted; the schedule still assumes <see cref="Steps"/>.</summary>
    public int? StopAfterStep { get; init; }

    public float LearningRateAt(int step)
    {
        float peak = LearningRate, min = LearningRate * MinLrFraction;
        if (step <= WarmupSteps) return peak * step / Math.Max(1, WarmupSteps);
        switch (Schedule)
        {
            case LrSchedule.Cosine:
                double progress = (double)(step - WarmupSteps) / Math.Max(1, Steps - WarmupSteps);
                return (float)(min + 0.5 * (peak - min) * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
            case LrSchedule.WarmupStableDecay:
                int decaySteps = Math.Max(1, (int)Math.Round(DecayFraction * Steps));
                int decayStart = Steps - decaySteps;
                if (step <= decayStart) return peak;
                return (float)(peak + (min - peak) * Math.Min(1, (double)(step - decayStart) / decaySteps));
            default:
                return peak;
        }
    }

    public void Validate()
    {
        void Need(bool ok, string what)
        {
            if (!ok) throw new InvalidInputException($"training options: {what}");
        }
        Need(Steps > 0, $"steps must be positive (got {Steps})");
        Need(BatchSize > 0, $"batch size must be positive (got {BatchSize})");
        Need(SeqLen >= 0, $"sequence length must not be negative (got {SeqLen})");
        Need(LearningRate > 0 && float.IsFinite(LearningRate), $"learning rate must be positive (got {LearningRate})");
        Need(MinLrFraction is >= 0 and <= 1, "min lr fraction must be in [0, 1]");
        Need(WarmupSteps >= 0 && WarmupSteps <= Steps, $"warmup ({WarmupSteps}) must be between 0 and the steps ({Steps})");
        Need(DecayFraction is > 0 and <= 1, "decay fraction must be in (0, 1]");
        Need(WeightDecay >= 0, "weight decay must not be negative");
        Need(Beta1 is >= 0 and < 1 && Beta2 is >= 0 and < 1, "betas must be in [0, 1)");
        Need(AdamEps > 0, "Adam epsilon must be positive");
        Need(GradClip >= 0, "gradient clip must not be negative");
        Need(AccumulationSteps > 0, "accumulation steps must be positive");
        Need(EvalEvery >= 0 && EvalBatches > 0 && CheckpointEvery >= 0, "eval and checkpoint intervals must not be negative");
        Need(RepeatFraction is >= 0 and <= 1, $"repeat fraction must be in [0, 1] (got {RepeatFraction})");
        Need(RandomRepeatFraction >= 0 && RepeatFraction + RandomRepeatFraction <= 1,
            $"random repeat fraction must be ≥ 0 and, with the repeat fraction, at most 1 (got {RandomRepeatFraction} + {RepeatFraction})");
        Need(PairRecallFraction >= 0 && RepeatFraction + RandomRepeatFraction + PairRecallFraction <= 1,
            $"pair recall fraction must be ≥ 0 and, with the repeat fractions, at most 1 (got {PairRecallFraction} + {RandomRepeatFraction} + {RepeatFraction})");
        Need(BosTokenId is null or >= 0, $"BOS token id must not be negative (got {BosTokenId})");
    }

    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

/// <summary>Reported after every optimizer step.</summary>
public sealed record TrainingProgress(int Step, int TotalSteps, float Loss, double TokensPerSecond, TimeSpan Elapsed, TimeSpan Remaining, float? EvalLoss);

/// <summary>One line of metrics.jsonl.</summary>
public sealed record StepMetrics(int Step, float Loss, float Lr, double GradNorm, double TokensPerSecond, float? EvalLoss);

/// <summary>What a run did: the metrics of the steps run in this call, the last eval loss, and where the checkpoint is.</summary>
public sealed record TrainingResult(IReadOnlyList<StepMetrics> Steps, int LastStep, bool Completed, float? EvalLoss, string? CheckpointDir);
