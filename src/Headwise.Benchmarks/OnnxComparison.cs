using Headwise.Compute;
using Headwise.Models;
using Microsoft.ML.OnnxRuntime;

namespace Headwise.Benchmarks;

/// <summary>One (token count, thread count) of a prefill comparison against another engine (ONNX Runtime, PyTorch).</summary>
/// <param name="OtherSeconds">The other engine's forward time (the median over rounds of ours × that round's ratio).</param>
/// <param name="Ratio">Headwise tokens/s ÷ the other engine's: the median over rounds of (its time ÷ ours) in that round.</param>
/// <param name="ForwardGFlop">The forward's necessary arithmetic (<see cref="ModelBenchmarks.ForwardFlops"/>: its matmuls and
/// the causal half of attention), GFLOP.</param>
/// <param name="PeakGFlops">The FMA peak of <paramref name="Threads"/> threads at once, measured in the same run
/// (<see cref="PeakOf"/>).</param>
public abstract record PrefillComparisonTiming(int Tokens, int Threads, double HeadwiseSeconds, double OtherSeconds, double Ratio,
    double ForwardGFlop, double PeakGFlops)
{
    public double HeadwiseTokensPerSecond => Tokens / HeadwiseSeconds;
    public double OtherTokensPerSecond => Tokens / OtherSeconds;
    /// <summary>Our forward's FLOP rate as a share of the FMA peak.</summary>
    public double HeadwiseOfPeak => ForwardGFlop / HeadwiseSeconds / PeakGFlops;
    /// <summary>The other engine's, the same way.</summary>
    public double OtherOfPeak => ForwardGFlop / OtherSeconds / PeakGFlops;
    /// <summary>The ratio a forward doing only the necessary arithmetic at the FMA peak would reach against the other
    /// engine's time: no engine exceeds it on this machine (a target above it cannot be met here).</summary>
    public double CeilingRatio => OtherSeconds * PeakGFlops / ForwardGFlop;

    /// <summary>The FMA peak of <paramref name="threads"/> threads at once, GFLOP/s (<see cref="GemmBenchmark"/>'s probe:
    /// independent FMA chains, no memory).</summary>
    public static double PeakOf(int threads, CancellationToken cancel = default) =>
        threads > 1 ? GemmBenchmark.FmaPeakOnThreads(threads, cancel) : GemmBenchmark.FmaPeak(cancel);
}

/// <summary>Against ONNX Runtime (<see cref="PrefillComparisonTiming"/>, the other engine's figures under ORT's name).</summary>
public sealed record OnnxTiming(int Tokens, int Threads, double HeadwiseSeconds, double OrtSeconds, double Ratio, double ForwardGFlop, double PeakGFlops)
    : PrefillComparisonTiming(Tokens, Threads, HeadwiseSeconds, OrtSeconds, Ratio, ForwardGFlop, PeakGFlops)
{
    public double OrtTokensPerSecond => OtherTokensPerSecond;
    public double OrtOfPeak => OtherOfPeak;
}

/// <param name="MaxLogitDiff">Largest |Δlogit| between the two engines over every checked token count.</param>
/// <param name="MaxNllDiff">Largest |Δ mean next-token NLL| over every checked token count (must be ≤ 1e-5).</param>
public sealed record OnnxComparisonResult(string OrtVersion, double MaxLogitDiff, double MaxNllDiff, double Nll, IReadOnlyList<OnnxTiming> Timings);

/// <summary>
/// Prefill against ONNX Runtime (Microsoft.ML.OnnxRuntime, a benchmark-only dependency) on the same weights and math: the
/// model's forward written as an ONNX graph (<see cref="OnnxGraph"/>), checked to give the same NLL before anything is timed,
/// then both engines alternate in rounds at each token count and thread count.
/// </summary>
public static class OnnxComparison
{
    /// <summary>The NLL agreement required before timing (mean next-token NLL in nats).</summary>
    public const double NllTolerance = 1e-5;

    /// <summary>Milliseconds of idle before each timed forward of either engine. ORT's intra-op threads spin after a run
    /// (its default), so a forward timed right after ORT's shared the cores with them: at 128 tokens on 2 threads ours
    /// took 133–152 ms back to back against 108–111 ms after a pause, while ORT's moved little (109–126 against 109–112;
    /// docs/performance.md). Each engine is timed starting from an idle machine, as a single call would run.</summary>
    public const int IdleBeforeRunMs = 50;

    /// <summary>An ORT session of <paramref name="onnxModel"/> on <paramref name="threads"/> intra-op threads, sequential
    /// execution, every graph optimisation.</summary>
    public static InferenceSession Session(byte[] onnxModel, int threads)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        return new InferenceSession(onnxModel, options);
    }

    /// <summary>Logits (T, V) of <paramref name="tokens"/> from an ORT session of <see cref="OnnxGraph.Gpt2"/>, into
    /// <paramref name="logits"/> (T·V floats).</summary>
    public static void Run(InferenceSession session, int[] tokens, float[] logits)
    {
        int T = tokens.Length;
        var ids = tokens.Select(t => (long)t).ToArray();
        var positions = Enumerable.Range(0, T).Select(t => (long)t).ToArray();
        var mask = new bool[T * T];
        for (int q = 0; q < T; q++)
        {
            for (int k = 0; k <= q; k++) mask[q * T + k] = true; // causal: key k ≤ query q
        }
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [T]);
        using var positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [T]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [T, T]);
        using var output = OrtValue.CreateTensorValueFromMemory(logits, [T, logits.Length / T]);
        using var runOptions = new RunOptions();
        session.Run(runOptions, ["input_ids", "position_ids", "causal_mask"], [idsValue, positionsValue, maskValue], ["logits"], [output]);
    }

    /// <summary>Our forward against another engine's, alternating: one warm-up of each (this machine's speed drifts over
    /// seconds), then per round <paramref name="idleMs"/> of idle before each timed forward (the other engine's threads
    /// may still spin) and the ratio of their time to ours; the median of our times and of the ratios.</summary>
    internal static (double HeadwiseSeconds, double Ratio) Alternate(Action ours, Func<double> theirSeconds, int rounds, int idleMs,
        CancellationToken cancel)
    {
        ours();
        theirSeconds();
        var headwise = new double[rounds];
        var ratios = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            cancel.ThrowIfCancellationRequested();
            Thread.Sleep(idleMs);
            headwise[r] = GemmBenchmark.Seconds(ours);
            Thread.Sleep(idleMs);
            ratios[r] = theirSeconds() / headwise[r];
        }
        return (GemmBenchmark.MedianOf(headwise), GemmBenchmark.MedianOf(ratios));
    }

    /// <summary>Mean next-token NLL of <paramref name="tokens"/> under <paramref name="logits"/> (T, V), in double.</summary>
    public static double MeanNll(float[] logits, int[] tokens, int V)
    {
        double sum = 0;
        for (int t = 0; t + 1 < tokens.Length; t++)
        {
            var row = logits.AsSpan(t * V, V);
            double max = double.NegativeInfinity;
            foreach (float v in row) max = Math.Max(max, v);
            double z = 0;
            foreach (float v in row) z += Math.Exp(v - max);
            sum += max + Math.Log(z) - row[tokens[t + 1]];
        }
        return sum / Math.Max(1, tokens.Length - 1);
    }

    /// <summary>Checks ORT against <paramref name="model"/> at every token count (throws when the NLLs differ by more than
    /// <see cref="NllTolerance"/>), then times prefill of each token count with each thread count.</summary>
    public static OnnxComparisonResult Compare(TransformerModel model, int[] tokenCounts, int[] threadCounts, int rounds = 3,
        CancellationToken cancel = default)
    {
        int V = model.Config.VocabSize;
        var onnx = OnnxGraph.Gpt2(model);
        var sessions = threadCounts.Select(n => Session(onnx, n)).ToArray();
        onnx = null; // the sessions hold their own copy
        int savedThreads = Kernels.MaxThreads;
        try
        {
            var rng = new Random(17);
            double maxLogitDiff = 0, maxNllDiff = 0, nll = 0;
            var inputs = new Dictionary<int, int[]>();
            var ours = new Dictionary<int, float[]>();
            var theirs = new Dictionary<int, float[]>();
            foreach (int T in tokenCounts)
            {
                cancel.ThrowIfCancellationRequested();
                var tokens = Enumerable.Range(0, T).Select(_ => rng.Next(V)).ToArray();
                inputs[T] = tokens;
                ours[T] = model.Forward(ModelInput.Single(tokens));
                theirs[T] = new float[(long)T * V];
                Run(sessions[0], tokens, theirs[T]);
                for (long i = 0; i < ours[T].LongLength; i++)
                {
                    maxLogitDiff = Math.Max(maxLogitDiff, Math.Abs(ours[T][i] - theirs[T][i]));
                }
                nll = MeanNll(ours[T], tokens, V);
                double diff = Math.Abs(nll - MeanNll(theirs[T], tokens, V));
                maxNllDiff = Math.Max(maxNllDiff, diff);
                if (!(diff <= NllTolerance))
                {
                    throw new InvalidOperationException($"ONNX Runtime disagrees with Headwise at {T} tokens: mean NLL differs by {diff:E2} " +
                        $"(tolerance {NllTolerance:E0}), max |Δlogit| {maxLogitDiff:E2}: the ONNX graph does not compute our forward; nothing was timed");
                }
            }

            var timings = new List<OnnxTiming>();
            for (int s = 0; s < threadCounts.Length; s++)
            {
                Kernels.MaxThreads = threadCounts[s];
                double peak = PrefillComparisonTiming.PeakOf(threadCounts[s], cancel);
                foreach (int T in tokenCounts)
                {
                    var input = ModelInput.Single(inputs[T]);
                    var logits = ours[T];
                    var session = sessions[s];
                    var (h, ratio) = Alternate(() => model.Forward(input, null, logits),
                        () => GemmBenchmark.Seconds(() => Run(session, inputs[T], theirs[T])), rounds, IdleBeforeRunMs, cancel);
                    timings.Add(new OnnxTiming(T, threadCounts[s], h, h * ratio, ratio, ModelBenchmarks.ForwardFlops(model.Config, T) / 1e9, peak));
                }
            }
            return new OnnxComparisonResult(OrtEnv.Instance().GetVersionString(), maxLogitDiff, maxNllDiff, nll, timings);
        }
        finally
        {
            Kernels.MaxThreads = savedThreads;
            foreach (var session in sessions)
            {
                session.Dispose();
            }
        }
    }
}
