using Headwise.Benchmarks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

// The ONNX graph of the GPT-2 forward, run by ONNX Runtime, against our own forward on the same random weights.
[Collection(KernelThreadsCollection.Name)]
public sealed class OnnxComparisonTests
{
    internal static readonly ModelConfig Tiny = ModelConfig.Gpt2Small with { NLayers = 2, VocabSize = 96, DModel = 32, NHeads = 4, NKvHeads = 4, DHead = 8, DMlp = 128, MaxPositions = 64 };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OrtLogitsEqualOursOnATinyModel(bool tied)
    {
        using var model = ModelBenchmarks.RandomModel(Tiny with { TiedEmbeddings = tied }, seed: 4);
        var rng = new Random(2);
        var tokens = Enumerable.Range(0, 40).Select(_ => rng.Next(Tiny.VocabSize)).ToArray();
        var ours = model.Forward(ModelInput.Single(tokens));
        using var session = OnnxComparison.Session(OnnxGraph.Gpt2(model), threads: 1);
        var theirs = new float[ours.Length];
        OnnxComparison.Run(session, tokens, theirs);
        double maxDiff = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(ours[i] - theirs[i]));
        }
        // fp32 both sides, different summation orders and tanh implementations: agreement to ~1e-6 in practice
        Assert.True(maxDiff <= 1e-4, $"max |Δlogit| = {maxDiff:E2} > 1e-4");
    }

    [Fact]
    public void CompareChecksThenTimesEveryTokenAndThreadCount()
    {
        using var model = ModelBenchmarks.RandomModel(Tiny, seed: 5);
        var r = OnnxComparison.Compare(model, [16, 33], [1, 2], rounds: 1);
        Assert.True(r.MaxNllDiff <= OnnxComparison.NllTolerance, $"NLL differs by {r.MaxNllDiff:E2}");
        Assert.Equal([(16, 1), (33, 1), (16, 2), (33, 2)], r.Timings.Select(t => (t.Tokens, t.Threads)));
        Assert.All(r.Timings, t => Assert.True(t.HeadwiseSeconds > 0 && t.OrtSeconds > 0 && Math.Abs(t.Ratio - t.OrtSeconds / t.HeadwiseSeconds) < 1e-9));
        Assert.All(r.Timings, t => AssertPeakColumns(t, model.Config));
        Assert.False(string.IsNullOrEmpty(r.OrtVersion));
    }

    // the peak columns of a comparison row (ORT's or PyTorch's): the forward's FLOPs by the model's shape, a measured peak,
    // both engines' shares of it, and the ceiling a forward at that peak would reach
    internal static void AssertPeakColumns(PrefillComparisonTiming t, ModelConfig config)
    {
        AssertNear(ModelBenchmarks.ForwardFlops(config, t.Tokens) / 1e9, t.ForwardGFlop);
        Assert.True(t.PeakGFlops > 0, $"peak {t.PeakGFlops}");
        AssertNear(t.Ratio, t.HeadwiseOfPeak / t.OtherOfPeak);
        AssertNear(1.0, t.CeilingRatio * t.OtherOfPeak);
    }

    // equal within 1e-9 relative: the same quantity computed two ways
    internal static void AssertNear(double expected, double actual) =>
        Assert.True(Math.Abs(expected - actual) <= 1e-9 * Math.Abs(expected), $"expected {expected:R}, got {actual:R}");
}
