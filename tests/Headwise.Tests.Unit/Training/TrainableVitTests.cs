using Headwise.Models;
using Headwise.Training;
using Headwise.Vision;

namespace Headwise.Tests.Unit.Training;

// The trainer's ViT: its backward against finite differences (as ModelGradientTests), its export against the inference
// engine's `vit` family, and the training loop's determinism.
public class TrainableVitTests
{
    // 4×4 images of 2 channels in 2×2 patches: T = 5 tokens, two blocks of two heads
    private static readonly VitTrainingConfig Tiny = new(ImageSize: 4, PatchSize: 2, Channels: 2, DModel: 8, NLayers: 2, NHeads: 2, MlpWidth: 12, Labels: 3);

    private static TrainableVit RandomModel(VitTrainingConfig config, double scale)
    {
        var model = new TrainableVit(config, seed: 5);
        // every parameter drawn at a scale where the gradient is far from 0 (biases and LayerNorm gains included)
        var r = new Random(7);
        for (int i = 0; i < model.Params.Length; i++) model.Params[i] = (float)((r.NextDouble() * 2 - 1) * scale);
        return model;
    }

    [Fact]
    public void EveryParameterTensorMatchesFiniteDifferences()
    {
        var model = RandomModel(Tiny, 0.5);
        int B = 2;
        var r = new Random(11);
        var pixels = LayerGradientTests.Rand(r, B * Tiny.ImageDim, 2);
        int[] labels = [2, 0];
        model.ZeroGrad();
        model.Forward(pixels, B, labels);
        model.Backward();
        var grads = (float[])model.Grads.Clone();
        // h = 1e-2 in float32: see ModelGradientTests for the tolerance. The direction is the backward's own gradient of
        // the tensor (the largest signal: a random direction in a small attention tensor can leave too little to check);
        // a wrong gradient still fails, as the true directional derivative along it is then not its norm.
        const float h = 1e-2f;
        foreach (var p in model.Parameters)
        {
            var u = grads.AsSpan(p.Offset, p.Length).ToArray();
            double norm = Math.Sqrt(u.Sum(x => (double)x * x));
            double analytic = 0;
            for (int i = 0; i < p.Length; i++)
            {
                u[i] = (float)(u[i] / norm);
                analytic += (double)u[i] * grads[p.Offset + i];
            }
            // b_k adds q·b_k to every key's score of a query: softmax ignores it, so its gradient is 0 (checked below)
            bool zero = p.Name.EndsWith("key.bias", StringComparison.Ordinal);
            Assert.True(zero ? Math.Abs(analytic) < 1e-6 : Math.Abs(analytic) > 1e-4, $"{p.Name}: gradient norm {analytic:G3}");
            if (zero) u = LayerGradientTests.Rand(r, p.Length);
            var saved = model.Params.AsSpan(p.Offset, p.Length).ToArray();
            for (int i = 0; i < p.Length; i++) model.Params[p.Offset + i] = saved[i] + h * u[i];
            double plus = model.Forward(pixels, B, labels);
            for (int i = 0; i < p.Length; i++) model.Params[p.Offset + i] = saved[i] - h * u[i];
            double minus = model.Forward(pixels, B, labels);
            saved.CopyTo(model.Params, p.Offset);
            double fd = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(fd - analytic) <= 1e-4 + 0.02 * Math.Abs(analytic), $"{p.Name}: finite difference {fd:G6} vs backward {analytic:G6}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ExportedCheckpointGivesTheTrainersLogits(int channels)
    {
        var config = Tiny with { Channels = channels, ImageSize = 6, PatchSize = 3, Labels = 4 };
        var model = RandomModel(config, 0.3);
        var r = new Random(3);
        int B = 3;
        var pixels = LayerGradientTests.Rand(r, B * config.ImageDim, 1.5);
        model.Forward(pixels, B);
        var expected = model.Logits.ToArray();
        string dir = Path.Combine(Path.GetTempPath(), $"headwise-vit-export-{Guid.NewGuid():N}");
        try
        {
            var processor = new ImagePreprocessor(true, 6, 6, ResampleFilter.Bilinear, true, 1 / 255.0, true, [.. Enumerable.Repeat(0.5f, channels)], [.. Enumerable.Repeat(0.25f, channels)]);
            model.SaveHf(dir, processor, ["zero", "one", "two", "three"]);
            using var loaded = ModelLoader.Load(dir);
            var vision = loaded.Config.Vision!;
            Assert.Equal(["zero", "one", "two", "three"], vision.Labels);
            Assert.Equal(channels, vision.Channels);
            var read = ImagePreprocessor.ForModel(dir, vision);
            Assert.Equal((6, 6, ResampleFilter.Bilinear), (read.Height, read.Width, read.Resample));
            Assert.Equal(processor.Mean, read.Mean);
            Assert.Equal(processor.Std, read.Std);
            for (int b = 0; b < B; b++)
            {
                var image = new ImagePixels(pixels.AsSpan(b * config.ImageDim, config.ImageDim).ToArray(), 1, channels, 6, 6);
                var logits = loaded.Model.Forward(ModelInput.Image(image, vision))[..config.Labels];
                for (int v = 0; v < config.Labels; v++)
                {
                    Assert.True(Math.Abs(logits[v] - expected[b * config.Labels + v]) <= 1e-4, $"image {b} label {v}: engine {logits[v]} vs trainer {expected[b * config.Labels + v]}");
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // two classes of 4×4 one-channel images: bright top half or bright bottom half, with noise
    private static VitDataset Halves(int n, int seed)
    {
        var r = new Random(seed);
        var pixels = new float[n * 16];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                    pixels[i * 16 + y * 4 + x] = ((y < 2) == (labels[i] == 0) ? 1f : -1f) + (float)(r.NextDouble() - 0.5);
        }
        return new VitDataset(pixels, labels, 16);
    }

    [Fact]
    public void TrainingLearnsAndRepeatsExactly()
    {
        var config = new VitTrainingConfig(ImageSize: 4, PatchSize: 2, Channels: 1, DModel: 8, NLayers: 1, NHeads: 2, MlpWidth: 16, Labels: 2);
        var options = new VitTrainOptions(Epochs: 4, BatchSize: 8, LearningRate: 1e-2f, WarmupSteps: 5, MaxShift: 1, Seed: 3);
        float[] background = [-1f];
        var first = new TrainableVit(config, 3);
        var r1 = VitTrainer.Train(first, Halves(64, 1), Halves(32, 2), options, background);
        var second = new TrainableVit(config, 3);
        var r2 = VitTrainer.Train(second, Halves(64, 1), Halves(32, 2), options, background);
        Assert.Equal(first.Params, second.Params);
        Assert.Equal(r1.EpochLosses, r2.EpochLosses);
        Assert.True(r1.EpochLosses[^1] < r1.EpochLosses[0], $"loss did not fall: {string.Join(", ", r1.EpochLosses)}");
        Assert.True(r1.TestAccuracy >= 0.9, $"test accuracy {r1.TestAccuracy}");
    }

    [Fact]
    public void BadShapesAreRefused()
    {
        Assert.Throws<InvalidInputException>(() => new TrainableVit(Tiny with { PatchSize = 3 }));
        Assert.Throws<InvalidInputException>(() => new TrainableVit(Tiny with { DModel = 9 }));
        var model = new TrainableVit(Tiny);
        Assert.Throws<InvalidInputException>(() => model.Forward(new float[Tiny.ImageDim + 1], 1));
    }
}
