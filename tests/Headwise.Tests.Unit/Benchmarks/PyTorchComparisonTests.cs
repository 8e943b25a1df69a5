using System.Globalization;
using Headwise.Benchmarks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Tests.Unit.Compute;
using static Headwise.Tests.Unit.Benchmarks.OnnxComparisonTests;

namespace Headwise.Tests.Unit.Benchmarks;

// PyTorchComparison's plumbing without PyTorch: a stand-in interpreter (bash running a script that speaks
// dev/bench/torch_prefill.py's line protocol) answers each forward with a fixed time and a given NLL. The real script is
// run by `bench --pytorch` where torch is installed (docs/performance.md); CI machines have no torch.
[Collection(KernelThreadsCollection.Name)]
public sealed class PyTorchComparisonTests
{
    private static readonly ModelConfig Tiny = OnnxComparisonTests.Tiny; // the ORT tests' tiny GPT-2

    // the tokens Compare draws for each token count (Random(17), in order), and our NLL on each
    private static Dictionary<int, double> OurNlls(TransformerModel model, int[] tokenCounts)
    {
        var rng = new Random(17);
        var nlls = new Dictionary<int, double>();
        foreach (int T in tokenCounts)
        {
            var tokens = Enumerable.Range(0, T).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
            nlls[T] = OnnxComparison.MeanNll(model.Forward(ModelInput.Single(tokens)), tokens, model.Config.VocabSize);
        }
        return nlls;
    }

    // a script for bash: "ready", then per "run THREADS IDS" the seconds and the NLL given for that many ids
    private static string FakeScript(Dictionary<int, double> nllByTokens, double seconds)
    {
        string path = Path.Combine(Path.GetTempPath(), "hw-fake-torch-" + Guid.NewGuid().ToString("N")[..8] + ".sh");
        var cases = string.Join("\n", nllByTokens.Select(kv =>
            $"    {kv.Key}) echo \"{seconds.ToString("R", CultureInfo.InvariantCulture)} {kv.Value.ToString("R", CultureInfo.InvariantCulture)}\" ;;"));
        File.WriteAllText(path, "echo ready openblas 0.0-standin\nwhile read -r cmd threads ids; do\n  [ \"$cmd\" = quit ] && exit 0\n" +
            "  n=$(printf '%s' \"$ids\" | tr -cd , | wc -c); n=$((n + 1))\n  case $n in\n" + cases + "\n    *) echo \"0 0\" ;;\n  esac\ndone\n");
        return path;
    }

    [Fact]
    public void CompareChecksTheNllsThenTimesEveryTokenAndThreadCount()
    {
        Assert.SkipUnless(File.Exists("/bin/bash"), "the stand-in interpreter is bash");
        using var model = ModelBenchmarks.RandomModel(Tiny, seed: 6);
        int[] counts = [16, 33];
        string script = FakeScript(OurNlls(model, counts), seconds: 0.25);
        try
        {
            var r = PyTorchComparison.Compare(model, "/bin/bash", script, counts, [1, 2], rounds: 1);
            Assert.True(r.MaxNllDiff <= PyTorchComparison.NllTolerance, $"NLL differs by {r.MaxNllDiff:E2}");
            Assert.Equal(("openblas", "0.0-standin"), (r.Blas, r.TorchVersion)); // from the script's "ready BLAS VERSION"
            Assert.Equal([(16, 1), (33, 1), (16, 2), (33, 2)], r.Timings.Select(t => (t.Tokens, t.Threads)));
            // the stand-in's 0.25 s is PyTorch's time; the ratio is that over ours, so tokens/s ours ÷ theirs
            Assert.All(r.Timings, t => Assert.True(Math.Abs(t.TorchSeconds - 0.25) < 1e-12 && Math.Abs(t.Ratio - 0.25 / t.HeadwiseSeconds) < 1e-9,
                $"T={t.Tokens}: torch {t.TorchSeconds} s, ours {t.HeadwiseSeconds} s, ratio {t.Ratio}"));
            // the peak columns: the forward's FLOPs by the model's shape, a measured peak, and the stand-in's 0.25 s
            Assert.All(r.Timings, t =>
            {
                OnnxComparisonTests.AssertPeakColumns(t, model.Config);
                AssertNear(t.ForwardGFlop / 0.25 / t.PeakGFlops, t.TorchOfPeak);
                AssertNear(0.25 * t.PeakGFlops / t.ForwardGFlop, t.CeilingRatio);
                AssertNear(t.Ratio, t.CeilingRatio * t.HeadwiseOfPeak); // ours at the peak would be the ceiling
            });
        }
        finally
        {
            File.Delete(script);
        }
    }

    [Fact]
    public void ANllThatDisagreesStopsTheComparisonBeforeTiming()
    {
        Assert.SkipUnless(File.Exists("/bin/bash"), "the stand-in interpreter is bash");
        using var model = ModelBenchmarks.RandomModel(Tiny, seed: 7);
        int[] counts = [16];
        var nlls = OurNlls(model, counts);
        nlls[16] += 1e-3; // a forward that is not ours
        string script = FakeScript(nlls, seconds: 0.25);
        try
        {
            var e = Assert.Throws<InvalidOperationException>(() => PyTorchComparison.Compare(model, "/bin/bash", script, counts, [1], rounds: 1));
            Assert.Contains("disagrees", e.Message, StringComparison.Ordinal);
            Assert.Contains("nothing was timed", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(script);
        }
    }
}
