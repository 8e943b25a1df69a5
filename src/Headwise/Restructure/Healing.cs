using System.Diagnostics;
using Headwise.Evaluation;
using Headwise.Models;
using Headwise.Training;
using Headwise.Training.Layers;

namespace Headwise.Restructure;

/// <summary>How <see cref="Healing.Heal"/> trains.</summary>
public sealed record HealingOptions
{
    /// <summary>Optimizer steps (each one batch of <see cref="BatchSize"/> windows of <see cref="SeqLen"/> tokens).</summary>
    public required int Steps { get; init; }
    /// <summary>AdamW's learning rate, constant (no warmup: the student starts trained).</summary>
    public float LearningRate { get; init; } = 3e-4f;
    /// <summary>Tokens per window; 0 = derive: 64, or less when the text or the context is shorter.</summary>
    public int SeqLen { get; init; }
    public int BatchSize { get; init; } = 4;
    /// <summary>Seeds the window offsets.</summary>
    public ulong Seed { get; init; } = 1;
    /// <summary>Global gradient-norm clip (≤ 0: none).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>The window length for <paramref name="tokens"/> training tokens and a context of <paramref name="context"/>.</summary>
    public int WindowFor(int tokens, int context) => SeqLen > 0 ? SeqLen : Math.Min(64, Math.Min(context, tokens));
}

/// <summary>One step of <see cref="Healing.Heal"/>: the batch's mean KL(teacher ‖ student) before the update.</summary>
public readonly record struct HealingProgress(int Step, int Steps, double Kl, double TokensPerSecond);

/// <summary>A model scored on held-out tokens as <c>headwise eval</c> scores them (same sliding windows): mean NLL of the
/// predicted tokens, and the mean KL(teacher ‖ model) of the same rows' next-token distributions.</summary>
public sealed record HeldOutScore(double Nll, double Kl, int Predicted);

/// <summary>
/// Healing a converted model (convert gqa, convert prune, convert mla) by distillation to its original: the converted model's
/// parameters, imported into the trainer (<see cref="TrainableTransformer.FromModel"/>: latent attention keeps its latent
/// projections), are trained with AdamW to
/// minimise KL(teacher ‖ student) of the next-token distributions on windows of a text, the teacher's logits coming from
/// the engine's forward of the original on the same windows (temperature 1). Every parameter trains, with two
/// constraints: grouped-query attention stays grouped (the trainer's NKvHeads) and pruned heads — all-zero W_O blocks —
/// stay zero (their W_O gradient is masked, and AdamW without weight decay then never moves them).
/// </summary>
public static class Healing
{
    /// <summary>The heads whose whole W_O block is zero (what <c>convert prune</c> writes), per layer.</summary>
    public static (int Layer, int Head)[] ZeroedHeads(TrainableTransformer model)
    {
        var c = model.Config;
        int C = c.DModel, NH = c.NHeads, HD = c.HeadSize;
        var heads = new List<(int, int)>();
        for (int l = 0; l < c.NLayers; l++)
        {
            // w_o: (C, NH·HD); head h owns columns h·HD .. (h + 1)·HD of every row
            var wo = model.Param($"blocks.{l}.attn.w_o");
            for (int h = 0; h < NH; h++)
            {
                bool zero = true;
                for (int r = 0; r < C && zero; r++) zero = !wo.Slice(r * NH * HD + h * HD, HD).ContainsAnyExcept(0f);
                if (zero) heads.Add((l, h));
            }
        }
        return [.. heads];
    }

    /// <summary>
    /// Trains <paramref name="student"/> in place towards <paramref name="teacher"/> on random windows of
    /// <paramref name="tokens"/>. Returns the batch KL of every step (before its update).
    /// </summary>
    public static double[] Heal(TrainableTransformer student, TransformerModel teacher, int[] tokens, HealingOptions options,
        IProgress<HealingProgress>? progress = null, CancellationToken cancel = default)
    {
        var sc = student.Config;
        int V = sc.VocabSize, B = options.BatchSize, T = options.WindowFor(tokens.Length, sc.SeqLen);
        if (teacher.Config.VocabSize != V)
        {
            throw new InvalidInputException($"the teacher's vocabulary ({teacher.Config.VocabSize}) differs from the student's ({V}): distillation compares distributions over the same tokens");
        }
        if (options.Steps < 1) throw new InvalidInputException($"steps must be at least 1 (got {options.Steps})");
        if (B < 1) throw new InvalidInputException($"batch must be at least 1 (got {B})");
        if (!(options.LearningRate > 0 && float.IsFinite(options.LearningRate))) throw new InvalidInputException($"learning rate must be positive (got {options.LearningRate})");
        int context = Math.Min(sc.SeqLen, teacher.Config.MaxPositions);
        if (T < 2 || T > context) throw new InvalidInputException($"sequence length must be in [2, {context}] (got {T})");
        if (tokens.Length < T) throw new InvalidInputException($"the training text has {tokens.Length} tokens, fewer than one window of {T}");
        new ModelInput(tokens, 1, tokens.Length).Validate(V);

        var pruned = ZeroedHeads(student);
        var adam = new AdamW(student.ParameterCount) { WeightDecay = 0 };
        var rng = new TrainingRng(options.Seed ^ 0x4EA1_D15EUL);
        int N = B * T;
        var batch = new int[N];
        var teacherLogProbs = new float[N * V];
        var probs = new float[N * V];
        var losses = new float[N];
        float[]? teacherLogits = null;
        var kls = new double[options.Steps];
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= options.Steps; step++)
        {
            cancel.ThrowIfCancellationRequested();
            for (int b = 0; b < B; b++) tokens.AsSpan(rng.NextInt(tokens.Length - T + 1), T).CopyTo(batch.AsSpan(b * T, T));
            // the teacher's next-token distributions on the same windows, once per batch
            teacherLogits = teacher.Forward(new ModelInput(batch, B, T), null, teacherLogits);
            KlDivergence.LogSoftmax(teacherLogits, teacherLogProbs, N, V);
            student.Forward(batch, default, B, T);
            kls[step - 1] = KlDivergence.Forward(student.Logits, teacherLogProbs, probs, losses, N, V);
            KlDivergence.Backward(probs, teacherLogProbs, N, V, 1f / N);
            student.ZeroGrad();
            student.BackwardFromLogits(probs);
            MaskZeroedHeads(student, pruned);
            AdamW.ClipGradients(student.Grads, AdamW.GlobalNorm(student.Grads), options.MaxGradNorm);
            adam.Step(student.Params, student.Grads, student.Parameters, options.LearningRate, step);
            progress?.Report(new HealingProgress(step, options.Steps, kls[step - 1], (double)step * N / clock.Elapsed.TotalSeconds));
        }
        return kls;
    }

    // a zeroed head's W_O columns get no gradient, so AdamW (no weight decay) leaves them exactly 0
    private static void MaskZeroedHeads(TrainableTransformer student, (int Layer, int Head)[] heads)
    {
        var c = student.Config;
        int C = c.DModel, NH = c.NHeads, HD = c.HeadSize;
        foreach (var (l, h) in heads)
        {
            var g = student.Grad($"blocks.{l}.attn.w_o");
            for (int r = 0; r < C; r++) g.Slice(r * NH * HD + h * HD, HD).Clear();
        }
    }

    /// <summary>
    /// <paramref name="model"/> on <paramref name="ids"/> with the sliding window <c>headwise eval</c> uses by default
    /// (the context, stride half of it): the mean NLL is <see cref="Perplexity.Evaluate"/>'s, and the KL to
    /// <paramref name="teacher"/> is averaged over the same predicted rows.
    /// </summary>
    public static HeldOutScore Score(TransformerModel model, TransformerModel teacher, int[] ids, CancellationToken cancel = default)
    {
        int V = model.Config.VocabSize, window = model.Config.MaxPositions, stride = Math.Max(1, window / 2);
        Perplexity.Check(model, ids, window, stride);
        if (teacher.Config.VocabSize != V)
        {
            throw new InvalidInputException($"the teacher's vocabulary ({teacher.Config.VocabSize}) differs from the model's ({V})");
        }
        if (teacher.Config.MaxPositions < Math.Min(window, ids.Length))
        {
            throw new InvalidInputException($"the teacher's context ({teacher.Config.MaxPositions}) is shorter than the model's ({window})");
        }
        var nll = new float[ids.Length - 1];
        double kl = 0;
        int windows = 0;
        float[]? logits = null, teacherLogits = null;
        var t = new float[V];
        var s = new float[V];
        var probs = new float[V];
        var loss = new float[1];
        foreach (var w in Perplexity.Windows(ids.Length, window, stride))
        {
            cancel.ThrowIfCancellationRequested();
            var input = ModelInput.Single(ids[w.Begin..w.End]);
            logits = model.Forward(input, null, logits);
            teacherLogits = teacher.Forward(input, null, teacherLogits);
            windows++;
            Perplexity.ScoreWindow(logits.AsSpan(0, (w.End - w.Begin) * V), V, ids, w, nll);
            for (int target = w.FirstTarget; target < w.End; target++)
            {
                int row = target - 1 - w.Begin;
                KlDivergence.LogSoftmax(teacherLogits.AsSpan(row * V, V), t, 1, V);
                kl += KlDivergence.Forward(logits.AsSpan(row * V, V), t, probs, loss, 1, V);
            }
        }
        var result = Perplexity.Result(nll, windows);
        return new HeldOutScore(result.MeanNll, kl / nll.Length, nll.Length);
    }

    /// <summary>
    /// Splits a text into a training part and a held-out tail of about <paramref name="fraction"/> of its characters: the tail
    /// starts at the first line start at or after the cut when one lies within 5% of the text's length from it, else after
    /// the first whitespace after the cut, else at the cut itself — so that the tail, as a file of its own, is what
    /// <c>headwise eval --text-file</c> scores. Returns the tail's first character.
    /// </summary>
    public static int HeldOutStart(string text, double fraction = 0.1)
    {
        if (!(fraction > 0 && fraction < 1)) throw new InvalidInputException($"held-out fraction must be in (0, 1) (got {fraction})");
        int cut = (int)(text.Length * (1 - fraction));
        int line = text.IndexOf('\n', Math.Max(0, cut - 1));
        if (line >= 0 && line + 1 < text.Length && line + 1 - cut < text.Length / 20 + 1) return line + 1;
        for (int i = cut; i < text.Length; i++)
        {
            if (char.IsWhiteSpace(text[i])) return i + 1 < text.Length ? i + 1 : cut;
        }
        return cut;
    }
}
