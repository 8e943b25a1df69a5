using Headwise.Vision;

namespace Headwise.Training;

/// <summary>Labelled images in memory, preprocessed: pixels (n, channels, H, W) and label ids (n).</summary>
public sealed record VitDataset(float[] Pixels, int[] Labels, int ImageDim)
{
    public int Count => Labels.Length;

    /// <summary>
    /// The images of a labelled folder DIR/&lt;label&gt;/*.png|jpg|jpeg (the layout of <c>eval --image-dir</c>; sub-folders
    /// named by <paramref name="labels"/>, folders and files in name order), decoded into <paramref name="channels"/>
    /// channels and preprocessed by <paramref name="processor"/>. A folder whose name is not a label is refused.
    /// </summary>
    public static VitDataset Load(string dir, IReadOnlyList<string> labels, ImagePreprocessor processor, int channels)
    {
        if (!Directory.Exists(dir)) throw new InvalidInputException($"{dir}: not a directory");
        var pixels = new List<float[]>();
        var ids = new List<int>();
        foreach (string sub in Directory.GetDirectories(dir).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(sub);
            int label = labels.ToList().IndexOf(name);
            if (label < 0) throw new InvalidInputException($"{sub}: the folder's name is not one of the labels ({string.Join(", ", labels)})");
            foreach (string file in Directory.GetFiles(sub).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg").Order(StringComparer.Ordinal))
            {
                var image = processor.Process(DecodedImage.Load(file, channels));
                pixels.Add(image.Data);
                ids.Add(label);
            }
        }
        if (ids.Count == 0) throw new InvalidInputException($"{dir}: no labelled image (expected DIR/<label>/*.png)");
        int dim = pixels[0].Length;
        var all = new float[(long)ids.Count * dim];
        for (int i = 0; i < pixels.Count; i++)
        {
            if (pixels[i].Length != dim) throw new InvalidInputException($"{dir}: images of different sizes after preprocessing");
            pixels[i].CopyTo(all, (long)i * dim);
        }
        return new VitDataset(all, [.. ids], dim);
    }
}

/// <summary>How <see cref="VitTrainer.Train"/> trains.</summary>
/// <param name="MaxShift">Augmentation: each training image is shifted by a random whole number of pixels in
/// [−MaxShift, MaxShift] along each axis, the uncovered border filled with the background (the normalised value of a
/// black pixel); 0 turns it off.</param>
/// <param name="WarmupSteps">Linear warm-up of the learning rate, then a cosine decay to 0 at the last step.</param>
public sealed record VitTrainOptions(int Epochs = 10, int BatchSize = 64, float LearningRate = 1e-3f, float WeightDecay = 0.05f,
    int WarmupSteps = 100, double ClipNorm = 1.0, int MaxShift = 2, ulong Seed = 0);

/// <summary>One line of progress: after each <paramref name="Step"/> (1-based) of <paramref name="Steps"/>.</summary>
public sealed record VitTrainProgress(int Epoch, int Step, int Steps, float Loss, float LearningRate, double Seconds);

/// <summary>The end of training: the test accuracy (NaN without a test set) and the loss of each epoch.</summary>
public sealed record VitTrainResult(double TestAccuracy, int TestCorrect, int TestCount, float[] EpochLosses, double Seconds);

/// <summary>
/// Trains a <see cref="TrainableVit"/> on labelled images: AdamW on shuffled mini-batches (seeded, so a run repeats
/// exactly), random-shift augmentation, gradient clipping, warm-up then cosine decay.
/// </summary>
public static class VitTrainer
{
    public static VitTrainResult Train(TrainableVit model, VitDataset train, VitDataset? test, VitTrainOptions options, float[] background,
        Action<VitTrainProgress>? progress = null, CancellationToken cancel = default)
    {
        if (train.ImageDim != model.Config.ImageDim)
        {
            throw new InvalidInputException($"training images have {train.ImageDim} values; the model reads {model.Config.ImageDim}");
        }
        if (options.Epochs <= 0 || options.BatchSize <= 0) throw new InvalidInputException("epochs and batch size must be positive");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var rng = new TrainingRng(options.Seed ^ 0x5EEDF00DUL);
        var optimizer = new AdamW(model.Params.Length) { WeightDecay = options.WeightDecay, Beta2 = 0.999f };
        int n = train.Count, B = options.BatchSize, dim = train.ImageDim;
        int perEpoch = (n + B - 1) / B, steps = perEpoch * options.Epochs;
        var order = Enumerable.Range(0, n).ToArray();
        var batch = new float[B * dim];
        var labels = new int[B];
        var epochLosses = new float[options.Epochs];
        int step = 0;
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            // Fisher–Yates with the run's generator
            for (int i = n - 1; i > 0; i--)
            {
                int j = rng.NextInt(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
            double lossSum = 0;
            for (int start = 0; start < n; start += B)
            {
                cancel.ThrowIfCancellationRequested();
                int b = Math.Min(B, n - start);
                for (int i = 0; i < b; i++)
                {
                    int k = order[start + i];
                    int dy = options.MaxShift > 0 ? rng.NextInt(2 * options.MaxShift + 1) - options.MaxShift : 0;
                    int dx = options.MaxShift > 0 ? rng.NextInt(2 * options.MaxShift + 1) - options.MaxShift : 0;
                    Shift(train.Pixels.AsSpan(k * dim, dim), batch.AsSpan(i * dim, dim), model.Config.Channels, model.Config.ImageSize, dy, dx, background);
                    labels[i] = train.Labels[k];
                }
                step++;
                float lr = LearningRate(options, step, steps);
                model.ZeroGrad();
                float loss = model.Forward(batch.AsSpan(0, b * dim), b, labels.AsSpan(0, b));
                model.Backward();
                AdamW.ClipGradients(model.Grads, AdamW.GlobalNorm(model.Grads), options.ClipNorm);
                optimizer.Step(model.Params, model.Grads, model.Parameters, lr, step);
                lossSum += loss * b;
                progress?.Invoke(new VitTrainProgress(epoch + 1, step, steps, loss, lr, clock.Elapsed.TotalSeconds));
            }
            epochLosses[epoch] = (float)(lossSum / n);
        }
        var (correct, count) = test is null ? (0, 0) : Evaluate(model, test, B);
        return new VitTrainResult(test is null ? double.NaN : (double)correct / count, correct, count, epochLosses, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Images whose most probable label (ties: lowest id) is the true one, and the number of images.</summary>
    public static (int Correct, int Count) Evaluate(TrainableVit model, VitDataset data, int batchSize = 64)
    {
        int correct = 0, dim = data.ImageDim, NL = model.Config.Labels;
        for (int start = 0; start < data.Count; start += batchSize)
        {
            int b = Math.Min(batchSize, data.Count - start);
            model.Forward(data.Pixels.AsSpan(start * dim, b * dim), b);
            var logits = model.Logits;
            for (int i = 0; i < b; i++)
            {
                var row = logits.Slice(i * NL, NL);
                int best = 0;
                for (int v = 1; v < NL; v++) if (row[v] > row[best]) best = v;
                correct += best == data.Labels[start + i] ? 1 : 0;
            }
        }
        return (correct, data.Count);
    }

    /// <summary>Linear warm-up to the peak over WarmupSteps, then cosine decay to 0 at <paramref name="steps"/>.</summary>
    public static float LearningRate(VitTrainOptions o, int step, int steps)
    {
        if (step <= o.WarmupSteps) return o.LearningRate * step / Math.Max(1, o.WarmupSteps);
        double progress = (double)(step - o.WarmupSteps) / Math.Max(1, steps - o.WarmupSteps);
        return (float)(o.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
    }

    // src, dst: (ch, S, S); dst[c, y, x] = src[c, y − dy, x − dx], or the channel's background outside the image
    private static void Shift(ReadOnlySpan<float> src, Span<float> dst, int ch, int S, int dy, int dx, float[] background)
    {
        for (int c = 0; c < ch; c++)
        {
            for (int y = 0; y < S; y++)
            {
                var row = dst.Slice((c * S + y) * S, S);
                int sy = y - dy;
                if (sy < 0 || sy >= S)
                {
                    row.Fill(background[c]);
                    continue;
                }
                for (int x = 0; x < S; x++)
                {
                    int sx = x - dx;
                    row[x] = sx < 0 || sx >= S ? background[c] : src[(c * S + sy) * S + sx];
                }
            }
        }
    }
}
