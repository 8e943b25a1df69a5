using System.Diagnostics;
using Headwise.Generation;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

public sealed record PrefillResult(int Tokens, double Seconds, double TokensPerSecond, double GFlops, double ForwardGFlop);

/// <param name="UnpackedSeconds">Prefill with <see cref="TransformerModel.Prepack"/> off (each GEMM packs its weight).</param>
/// <param name="PackedSeconds">Prefill reading the weights packed once.</param>
/// <param name="WeightBytes">The weights as float32 (parameters × 4 bytes).</param>
/// <param name="PackedBytes">The packed copies, after prefill made them.</param>
public sealed record PrepackResult(int Tokens, double UnpackedSeconds, double PackedSeconds, long WeightBytes, long PackedBytes)
{
    public double Speedup => UnpackedSeconds / PackedSeconds;
    public double ResidentRatio => (double)(WeightBytes + PackedBytes) / WeightBytes;
}

public sealed record DecodeResult(int Tokens, double Seconds, double TokensPerSecond, long WeightBytes);

/// <summary>Prefill of a gated-MLP (SwiGLU) model with silu(gate)·up in the gate GEMM's store against the separate pass,
/// alternating in rounds; <see cref="Speedup"/> = separate ÷ fused (median of the per-round ratios). <see cref="Bitwise"/>:
/// the two gave the same logits to the bit.</summary>
public sealed record GatedFusionResult(int Tokens, double FusedSeconds, double SplitSeconds, double Speedup, bool Bitwise);

/// <summary>Decode against the memory-bandwidth bound, measured in alternation: each round probes the bandwidth, then times
/// <see cref="TokensPerRound"/> decode steps. Figures are medians over the rounds; <see cref="MedianRatio"/> is the median
/// of the per-round ratios (decode tokens/s ÷ that round's bound), which a neighbour slowing both alike leaves unchanged.</summary>
/// <param name="BoundTokensPerSecond">Median over rounds of bandwidth ÷ <see cref="WeightBytes"/>: reading every weight once per token.</param>
public sealed record DecodeBoundResult(int Rounds, int TokensPerRound, long WeightBytes, double TokensPerSecond, double GBps,
    double BoundTokensPerSecond, double MedianRatio, double MinRatio, double MaxRatio);

/// <param name="FullCacheSeconds">RunWithCache with a new cache each run (every activation copied into fresh arrays).</param>
/// <param name="ReusedCacheSeconds">RunWithCache refilling the previous run's cache (the loop-over-inputs pattern).</param>
public sealed record HookOverheadResult(double PlainSeconds, double NoOpHookSeconds, double FullCacheSeconds, double ReusedCacheSeconds)
{
    public double NoOpRatio => NoOpHookSeconds / PlainSeconds;
    public double FullCacheRatio => FullCacheSeconds / PlainSeconds;
    public double ReusedCacheRatio => ReusedCacheSeconds / PlainSeconds;
}

public sealed record LoadResult(long CheckpointBytes, double LoadSeconds, double FirstForwardSeconds, long RssGrowthBytes, bool AllMapped)
{
    public double RssRatio => (double)RssGrowthBytes / CheckpointBytes;
}

/// <summary>Whole-model measurements on random weights of a given shape (no download): prefill, decode, hooks, loading.</summary>
public static class ModelBenchmarks
{
    /// <summary>FLOPs of one forward over T tokens: 2·(matmul parameters)·T for the projections and unembedding, plus 2·T²·(NH·HD) per layer for causal q·kᵀ and pattern·v.</summary>
    public static double ForwardFlops(ModelConfig c, int T) => (c.NLayers * LayerFlops(c, T)) + UnembedFlops(c, T);

    /// <summary>FLOPs of one block over T positions: its matmuls and causal attention.</summary>
    public static double LayerFlops(ModelConfig c, int T)
    {
        double C = c.DModel, qd = c.NHeads * c.DHead, kvd = c.NKvHeads * c.DHead, F = c.DMlp;
        double perToken = C * qd + 2 * C * kvd + qd * C + (c.GatedMlp ? 3 : 2) * C * F;
        return (2.0 * T * perToken) + (2.0 * (double)T * T * qd); // causal attention: T²/2 pairs × 2 products × 2 FLOPs
    }

    /// <summary>FLOPs of the unembedding of <paramref name="rows"/> positions.</summary>
    public static double UnembedFlops(ModelConfig c, int rows) => 2.0 * rows * c.DModel * c.VocabSize;

    public static TransformerModel RandomModel(ModelConfig c, int seed = 1) => TransformerModel.Create(CanonicalWeights.Random(c, seed));

    private static int[] RandomTokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>Median time of <paramref name="reps"/> runs after one warm-up, in seconds (the benchmarks' one timer);
    /// <paramref name="cancel"/> is checked between runs.</summary>
    public static double Median(int reps, Action run, CancellationToken cancel = default) => GemmBenchmark.Median(reps, run, cancel);

    public static PrefillResult Prefill(TransformerModel model, int tokens, int reps = 3, CancellationToken cancel = default)
    {
        var input = ModelInput.Single(RandomTokens(tokens, model.Config.VocabSize, 7));
        double s = Median(reps, () => model.Forward(input), cancel);
        double flops = ForwardFlops(model.Config, tokens);
        return new PrefillResult(tokens, s, tokens / s, flops / s / 1e9, flops / 1e9);
    }

    /// <summary>Prefill with prepacked weights against prefill packing on every call, alternating in rounds (this machine's
    /// speed drifts over seconds); each figure is the unpacked median times the median per-round ratio. Leaves
    /// <see cref="TransformerModel.Prepack"/> as it found it.</summary>
    public static PrepackResult PrefillPrepack(TransformerModel model, int tokens, int reps = 3, CancellationToken cancel = default)
    {
        var input = ModelInput.Single(RandomTokens(tokens, model.Config.VocabSize, 7));
        bool saved = model.Prepack;
        float[]? logits = null;
        try
        {
            model.Prepack = true;
            logits = model.Forward(input, null, logits); // packs every weight (not timed) and warms up
            model.Prepack = false;
            logits = model.Forward(input, null, logits);
            int rounds = Math.Max(3, 2 * reps + 1);
            var unpacked = new double[rounds];
            var ratios = new double[rounds];
            for (int i = 0; i < rounds; i++)
            {
                cancel.ThrowIfCancellationRequested();
                model.Prepack = false;
                unpacked[i] = GemmBenchmark.Seconds(() => logits = model.Forward(input, null, logits));
                model.Prepack = true;
                ratios[i] = GemmBenchmark.Seconds(() => logits = model.Forward(input, null, logits)) / unpacked[i];
            }
            double u = GemmBenchmark.MedianOf(unpacked);
            return new PrepackResult(tokens, u, u * GemmBenchmark.MedianOf(ratios),
                model.Config.ParameterCount * 4L, model.PackedWeightBytes);
        }
        finally
        {
            model.Prepack = saved;
        }
    }

    /// <summary>Prefill of <paramref name="tokens"/> tokens on a gated-MLP model, SiLU·up fused into the gate GEMM's store
    /// (a plain forward) against the separate SwiGLU pass, which a no-op hook on every layer's hook_post forces.</summary>
    public static GatedFusionResult PrefillGatedFusion(TransformerModel model, int tokens, int rounds, CancellationToken cancel = default)
    {
        var input = ModelInput.Single(RandomTokens(tokens, model.Config.VocabSize, 7));
        var hooks = Enumerable.Range(0, model.Config.NLayers).Select(l => ($"blocks.{l}.mlp.hook_post", (HookFunction)(_ => { }))).ToArray();
        // one of each untimed (warm-up, packing), and the check that the fusion changes nothing
        var fusedLogits = model.Forward(input);
        var splitLogits = model.RunWithHooks(input, hooks);
        bool bitwise = fusedLogits.Length == splitLogits.Length
            && fusedLogits.Zip(splitLogits).All(p => BitConverter.SingleToInt32Bits(p.First) == BitConverter.SingleToInt32Bits(p.Second));
        double[] fused = new double[rounds], split = new double[rounds], ratios = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            cancel.ThrowIfCancellationRequested();
            fused[r] = GemmBenchmark.Seconds(() => model.Forward(input));
            split[r] = GemmBenchmark.Seconds(() => model.RunWithHooks(input, hooks));
            ratios[r] = split[r] / fused[r];
        }
        return new GatedFusionResult(tokens, GemmBenchmark.MedianOf(fused), GemmBenchmark.MedianOf(split), GemmBenchmark.MedianOf(ratios), bitwise);
    }

    /// <summary>Decode at batch 1 against the bandwidth bound, a bandwidth probe of <paramref name="megabytes"/> MiB on
    /// <paramref name="threads"/> threads before every decode round (<see cref="DecodeBoundResult"/>).</summary>
    public static DecodeBoundResult DecodeAgainstBandwidth(TransformerModel model, int rounds, int newTokens, int megabytes, int threads,
        int promptTokens = 16, CancellationToken cancel = default)
    {
        var prompt = RandomTokens(promptTokens, model.Config.VocabSize, 11);
        long weightBytes = 4 * model.Config.ParameterCount;
        using var probe = new BandwidthProbe(megabytes);
        var logits = new float[model.Config.VocabSize];
        var step = new int[1];
        double Round()
        {
            model.ResetCache(1, promptTokens + newTokens);
            logits = model.ForwardChunk(prompt, null, promptTokens, null, lastOnly: true, logits);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < newTokens; i++)
            {
                step[0] = Sampler.ArgMax(logits);
                logits = model.ForwardChunk(step, null, 1, null, lastOnly: true, logits);
            }
            return newTokens / sw.Elapsed.TotalSeconds;
        }
        probe.MeasureGBps(threads, 1, cancel); // warm-up: both paths once before anything is kept
        Round();
        double[] tps = new double[rounds], gbps = new double[rounds], ratios = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            cancel.ThrowIfCancellationRequested();
            gbps[r] = probe.MeasureGBps(threads, 3, cancel);
            tps[r] = Round();
            ratios[r] = tps[r] / (gbps[r] * 1e9 / weightBytes);
        }
        double medianGBps = GemmBenchmark.MedianOf(gbps);
        return new DecodeBoundResult(rounds, newTokens, weightBytes, GemmBenchmark.MedianOf(tps), medianGBps, medianGBps * 1e9 / weightBytes,
            GemmBenchmark.MedianOf(ratios), ratios.Min(), ratios.Max());
    }

    public static DecodeResult Decode(TransformerModel model, int promptTokens = 16, int newTokens = 64, CancellationToken cancel = default)
    {
        var prompt = RandomTokens(promptTokens, model.Config.VocabSize, 11);
        // time only the decode steps: prefill first, then one position at a time with the KV cache
        double best = double.MaxValue;
        for (int rep = 0; rep < 3; rep++)
        {
            cancel.ThrowIfCancellationRequested();
            model.ResetCache(1, promptTokens + newTokens);
            var logits = model.ForwardChunk(prompt, null, promptTokens, lastOnly: true);
            var step = new int[1];
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < newTokens; i++)
            {
                // as generation does: the next id, then its logits over the last step's (no allocation per token)
                step[0] = Sampler.ArgMax(logits);
                logits = model.ForwardChunk(step, null, 1, null, lastOnly: true, logits);
            }
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        long weightBytes = 4 * model.Config.ParameterCount;
        return new DecodeResult(newTokens, best, newTokens / best, weightBytes);
    }

    /// <summary>
    /// A plain forward against one with a no-op hook, with a full activation cache in new arrays, and with the previous
    /// run's cache refilled. The machine may be shared and its speed drifts between seconds: the four are timed in rounds
    /// (plain first in each) and each ratio is the median over rounds of (variant ÷ that round's plain forward).
    /// </summary>
    public static HookOverheadResult Hooks(TransformerModel model, int tokens, int reps = 3, CancellationToken cancel = default)
    {
        var input = ModelInput.Single(RandomTokens(tokens, model.Config.VocabSize, 13));
        var noop = new HookSet(model.Config.NLayers);
        noop.Add(new HookPoint(model.Config.NLayers - 1, HookKind.ResidPost), _ => { });
        var (_, reuse) = model.RunWithCache(input);
        model.Forward(input, noop);
        int rounds = Math.Max(3, 2 * reps + 1);
        var plain = new double[rounds];
        var ratios = new double[3][];
        for (int k = 0; k < 3; k++)
        {
            ratios[k] = new double[rounds];
        }
        for (int i = 0; i < rounds; i++)
        {
            cancel.ThrowIfCancellationRequested();
            plain[i] = GemmBenchmark.Seconds(() => model.Forward(input));
            ratios[0][i] = GemmBenchmark.Seconds(() => model.Forward(input, noop)) / plain[i];
            ratios[1][i] = GemmBenchmark.Seconds(() => model.RunWithCache(input)) / plain[i];
            ratios[2][i] = GemmBenchmark.Seconds(() => model.RunWithCache(input, reuse: reuse)) / plain[i];
        }
        double p = GemmBenchmark.MedianOf(plain);
        return new HookOverheadResult(p, p * GemmBenchmark.MedianOf(ratios[0]), p * GemmBenchmark.MedianOf(ratios[1]), p * GemmBenchmark.MedianOf(ratios[2]));
    }

    /// <summary>Writes a random F32 checkpoint of <paramref name="config"/> to <paramref name="dir"/>, then times loading it and
    /// measures how much resident memory grows through the load and a first short forward (which touches every weight).</summary>
    public static LoadResult Load(ModelConfig config, string dir, CancellationToken cancel = default)
    {
        if (!File.Exists(Path.Combine(dir, "model.safetensors")))
        {
            CanonicalWeights.Random(config, seed: 3).SaveHf(dir);
        }
        cancel.ThrowIfCancellationRequested(); // writing the checkpoint is the slow half
        long bytes = new FileInfo(Path.Combine(dir, "model.safetensors")).Length;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long rssBefore = Process.GetCurrentProcess().WorkingSet64;
        var sw = Stopwatch.StartNew();
        using var loaded = ModelLoader.Load(dir);
        double load = sw.Elapsed.TotalSeconds;
        sw.Restart();
        loaded.Model.Forward(ModelInput.Single(RandomTokens(8, config.VocabSize, 5)));
        double first = sw.Elapsed.TotalSeconds;
        var p = Process.GetCurrentProcess();
        p.Refresh();
        long growth = p.WorkingSet64 - rssBefore;
        return new LoadResult(bytes, load, first, growth, loaded.Model.Weights.ConvertedBytes == 0);
    }
}
