using System.Globalization;
using Headwise.Training;
using Headwise.Vision;

namespace Headwise.Cli.Commands;

public sealed class TrainVitCommand : ICommand
{
    public string Name => "train-vit";
    public string Summary => "train a small Vision Transformer on labelled images and export it as a Hugging Face ViT";
    public string Usage => """
        headwise train-vit --image-dir DIR --out DIR [--test-dir DIR] [--channels 1|3] [--patch P] [--d-model N]
                           [--layers N] [--heads N] [--mlp N] [--epochs N] [--batch N] [--lr X] [--weight-decay X]
                           [--shift N] [--seed S] [--threads N] [--json]
        """;

    public string Description => """
        Trains a Vision Transformer with the trainer (patch embedding, CLS token, learned positions, pre-LayerNorm blocks
        with bidirectional attention and a GELU MLP, the classifier on the CLS; cross-entropy, AdamW, warm-up then cosine
        decay, random-shift augmentation) and writes a Hugging Face ViTForImageClassification checkpoint into --out:
        config.json (id2label = the label folders' names), model.safetensors, preprocessor_config.json (rescale by 1/255,
        normalise with the training images' per-channel mean and std). The run is seeded: the same command gives the same
        weights. Progress on stderr; prints the test accuracy (with --test-dir) and the time.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("image-dir", "DIR", "training images: each sub-folder of DIR is a label (its name becomes the id2label name; folders\nin name order are the ids) holding that label's *.png, *.jpg, *.jpeg, all of one square size\n(dev/vision/get-mnist.sh writes MNIST this way)"),
        CliOption.Text("test-dir", "DIR", "held-out images in the same layout (the same folder names): the accuracy printed at the end"),
        CliOption.Text("out", "DIR", "model directory to write"),
        CliOption.Integer("channels", "1|3", "decode images as grayscale (1, default) or RGB (3)"),
        CliOption.Integer("patch", "P", "patch size in pixels (default 7; must divide the image size)"),
        CliOption.Integer("d-model", "N", "width (default 64)"),
        CliOption.Integer("layers", "N", "blocks (default 4)"),
        CliOption.Integer("heads", "N", "attention heads (default 4)"),
        CliOption.Integer("mlp", "N", "MLP width (default 4·d-model)"),
        CliOption.Integer("epochs", "N", "passes over the training images (default 10)"),
        CliOption.Integer("batch", "N", "images per step (default 64)"),
        CliOption.Number("lr", "X", "peak learning rate (default 1e-3; 100 warm-up steps, cosine decay to 0)"),
        CliOption.Number("weight-decay", "X", "AdamW weight decay of the matrices (default 0.05)"),
        CliOption.Integer("shift", "N", "shift each training image by up to N pixels along each axis (default 2; 0 = no augmentation)"),
        CliOption.Integer("seed", "S", "seed of the weights, the shuffling and the shifts (default 0)"),
        CliOption.Integer("threads", "N", "worker threads (default: all cores)"),
        CliOption.Flag("json", "print {\"out\", \"parameters\", \"train_images\", \"test_images\", \"test_correct\", \"test_accuracy\",\n\"epoch_losses\", \"seconds\"}"),
    ];

    public string Examples => """
        Example:
          headwise train-vit --image-dir dev/vision/.data/mnist/train --test-dir dev/vision/.data/mnist/test --out models/mnist-vit
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string trainDir = args.Require("image-dir", "a folder of labelled training images");
        string outDir = args.Require("out", "model directory");
        string? testDir = args.Get("test-dir");
        int channels = args.GetInt("channels", 1, 1, 3);
        if (channels == 2) throw new UsageException("--channels expects 1 (grayscale) or 3 (RGB), got 2");
        int dModel = args.GetInt("d-model", 64, 4);
        var o = new VitTrainOptions(
            Epochs: args.GetInt("epochs", 10, 1),
            BatchSize: args.GetInt("batch", 64, 1),
            LearningRate: (float)args.GetDouble("lr", 1e-3, 1e-7, 1),
            WeightDecay: (float)args.GetDouble("weight-decay", 0.05, 0, 1),
            MaxShift: args.GetInt("shift", 2, 0, 64),
            Seed: (ulong)args.GetInt("seed", 0, 0));
        ModelArgs.ApplyThreads(args);
        bool json = args.Flag("json");
        if (!Directory.Exists(trainDir)) throw new UsageException($"--image-dir: {trainDir} is not a directory");
        if (testDir is not null && !Directory.Exists(testDir)) throw new UsageException($"--test-dir: {testDir} is not a directory");
        string[] labels = [.. Directory.GetDirectories(trainDir).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
        if (labels.Length < 2) throw new UsageException($"--image-dir: {trainDir} needs at least two label sub-folders (DIR/<label>/*.png)");

        // the images' size, from the first one; rescale only, then normalise with the training set's own mean and std
        string first = Directory.GetFiles(Path.Combine(trainDir, labels[0])).Order(StringComparer.Ordinal)
            .FirstOrDefault(f => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg")
            ?? throw new UsageException($"--image-dir: {Path.Combine(trainDir, labels[0])} holds no .png, .jpg or .jpeg file");
        var probe = DecodedImage.Load(first, channels);
        if (probe.Height != probe.Width) throw new UsageException($"--image-dir: {first} is {probe.Width}×{probe.Height}; train-vit needs square images");
        int size = probe.Height;
        int patch = args.GetInt("patch", 7, 1, size);
        if (size % patch != 0) throw new UsageException($"--patch: {patch} does not divide the image size {size}");
        var config = new VitTrainingConfig(size, patch, channels, dModel, args.GetInt("layers", 4, 1), args.GetInt("heads", 4, 1),
            args.GetInt("mlp", 4 * dModel, 1), labels.Length);
        if (dModel % config.NHeads != 0) throw new UsageException($"--d-model {dModel} is not a multiple of --heads {config.NHeads}");

        var ones = Enumerable.Repeat(1f, channels).ToArray();
        var rescaled = new ImagePreprocessor(true, size, size, ResampleFilter.Bilinear, true, 1 / 255.0, false, new float[channels], ones);
        stderr.WriteLine($"reading {trainDir} …");
        var train = VitDataset.Load(trainDir, labels, rescaled, channels);
        var (mean, std) = ChannelStatistics(train, channels);
        var processor = rescaled with { DoNormalize = true, Mean = mean, Std = std };
        Normalize(train, mean, std, channels);
        VitDataset? test = null;
        if (testDir is not null)
        {
            test = VitDataset.Load(testDir, labels, rescaled, channels);
            Normalize(test, mean, std, channels);
        }
        var background = mean.Select((m, c) => -m / std[c]).ToArray();
        var model = new TrainableVit(config, o.Seed);
        stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{train.Count} training images, {test?.Count ?? 0} test images, {labels.Length} labels; ViT {config.NLayers} layers × {config.NHeads} heads, d_model {dModel}, patch {patch}: {model.Params.Length} parameters"));
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        int lastEpoch = 0;
        float lossSum = 0;
        int lossCount = 0;
        var r = VitTrainer.Train(model, train, test, o, background, p =>
        {
            bar.Report(new Analysis.AnalysisProgress("train", p.Step, p.Steps));
            lossSum += p.Loss;
            lossCount++;
            if (p.Step * (long)o.Epochs % p.Steps == 0 && p.Epoch != lastEpoch)
            {
                lastEpoch = p.Epoch;
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch}/{o.Epochs}: mean loss {lossSum / lossCount:F4}, {p.Seconds:F0} s"));
                lossSum = 0;
                lossCount = 0;
            }
        }, CliMain.Cancellation);
        model.SaveHf(outDir, processor, labels);
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                @out = outDir,
                parameters = model.Params.Length,
                train_images = train.Count,
                test_images = test?.Count ?? 0,
                test_correct = r.TestCorrect,
                test_accuracy = test is null ? (double?)null : r.TestAccuracy,
                epoch_losses = r.EpochLosses,
                seconds = r.Seconds,
            }));
            return 0;
        }
        string accuracy = test is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; test accuracy {r.TestAccuracy:P2} ({r.TestCorrect}/{r.TestCount})");
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{o.Epochs} epochs in {r.Seconds:F0} s; final epoch loss {r.EpochLosses[^1]:F4}{accuracy}"));
        stdout.WriteLine(outDir);
        return 0;
    }

    // per-channel mean and standard deviation of the rescaled training pixels
    private static (float[] Mean, float[] Std) ChannelStatistics(VitDataset data, int channels)
    {
        int plane = data.ImageDim / channels;
        var sum = new double[channels];
        var sq = new double[channels];
        for (int i = 0; i < data.Count; i++)
        {
            for (int c = 0; c < channels; c++)
            {
                foreach (float v in data.Pixels.AsSpan(i * data.ImageDim + c * plane, plane))
                {
                    sum[c] += v;
                    sq[c] += (double)v * v;
                }
            }
        }
        double n = (double)data.Count * plane;
        var mean = sum.Select(s => (float)Math.Round(s / n, 4)).ToArray();
        var std = sq.Select((s, c) => (float)Math.Round(Math.Sqrt(Math.Max(1e-12, s / n - (sum[c] / n) * (sum[c] / n))), 4)).ToArray();
        return (mean, std);
    }

    // (x − mean) / std in float32, as ImagePreprocessor.Process normalises (so the checkpoint sees the same pixels)
    private static void Normalize(VitDataset data, float[] mean, float[] std, int channels)
    {
        int plane = data.ImageDim / channels;
        for (int i = 0; i < data.Count; i++)
        {
            for (int c = 0; c < channels; c++)
            {
                var span = data.Pixels.AsSpan(i * data.ImageDim + c * plane, plane);
                for (int j = 0; j < span.Length; j++) span[j] = (span[j] - mean[c]) / std[c];
            }
        }
    }
}
