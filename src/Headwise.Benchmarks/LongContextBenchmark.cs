using System.Diagnostics;
using Headwise.Compute;
using Headwise.Sparse;
using K = Headwise.Compute.Kernels;

namespace Headwise.Benchmarks;

/// <summary>One spec at one length: the attention's seconds (median over the reps), the policy's selection seconds
/// (<c>AttentionPolicy.Select</c>:
/// building the <see cref="AttentionSparsity"/> and counting its pairs), and dense's seconds from the same rounds.</summary>
public sealed record LongContextRow(int Tokens, string Spec, double Density, int Reps, double AttentionSeconds, double SelectionSeconds, double DenseSeconds)
{
    /// <summary>Dense time ÷ this spec's attention time (the selection not counted).</summary>
    public double Speedup => DenseSeconds / AttentionSeconds;

    /// <summary>Dense time ÷ (selection + attention).</summary>
    public double SpeedupWithSelection => DenseSeconds / (AttentionSeconds + SelectionSeconds);
}

/// <summary>Memory of one prefill of attention at <see cref="Tokens"/> tokens. Computed: q, k, v, z (float32) and the blocked
/// kernel's per-thread scratch × threads. Measured: the process's peak working set (<see cref="Process.PeakWorkingSet64"/>,
/// VmHWM on Linux, reset first through /proc/self/clear_refs where that works) after allocating and filling q, k, v, z and
/// running the dense prefill once, minus <see cref="Process.WorkingSet64"/> just before allocating.</summary>
public sealed record LongContextMemory(int Tokens, long TensorBytes, long ScratchBytes, long WorkingSetBefore, long PeakWorkingSet, bool PeakReset)
{
    public long ComputedBytes => TensorBytes + ScratchBytes;
    public long PeakDelta => PeakWorkingSet - WorkingSetBefore;
}

public sealed record LongContextResult(int NH, int NKV, int HD, int Threads, int BlockSize, double TargetDensity, int Window, int Sinks,
    IReadOnlyList<LongContextRow> Rows, LongContextMemory? Memory);

/// <summary>
/// Long-context sparse attention (issue 13, point 4): attention alone — the blocked kernel (<c>Kernels.BlockedAttention</c>)
/// — on one random Llama-shaped layer (GQA: NH 32, NKV 8, HD 128), causal prefill from an empty cache, no padding: dense,
/// <c>topk-blocks:64,K</c> with K chosen for a density nearest 10%, and <c>window:4096,sinks:4</c>. Per length the specs are
/// timed alternately in rounds (dense, then each spec's selection and attention), median over the rounds; q and k look
/// RoPE'd: per head a fixed random direction plus noise, rotated at its position (θ base 10,000, halves rotated as in
/// Llama), so the scores depend on relative position as a trained model's do.
/// </summary>
public static class LongContextBenchmark
{
    public const int DefaultNH = 32, DefaultNKV = 8, DefaultHD = 128;

    /// <summary>Runs every length (ascending is best: the largest is where memory is measured). <paramref name="reps"/> rounds
    /// per length, one above <paramref name="oneRepAbove"/> tokens (dense at 32K takes minutes on two cores).</summary>
    public static LongContextResult Run(int[] tokens, int reps = 3, int oneRepAbove = 16384, int blockSize = 64, double targetDensity = 0.1,
        int window = 4096, int sinks = 4, int NH = DefaultNH, int NKV = DefaultNKV, int HD = DefaultHD, bool measureMemory = true,
        Action<string>? progress = null, CancellationToken cancel = default)
    {
        var rows = new List<LongContextRow>();
        LongContextMemory? memory = null;
        int largest = tokens.Max();
        float scale = 1f / MathF.Sqrt(HD);
        foreach (int T in tokens)
        {
            cancel.ThrowIfCancellationRequested();
            int keep = KeepForDensity(T, blockSize, targetDensity);
            AttentionPolicy[] policies = [new TopKBlocksPolicy(blockSize, keep), new WindowPolicy(window, sinks)];
            int n = T > oneRepAbove ? 1 : reps;
            progress?.Invoke($"long context: {T:N0} tokens, dense / {string.Join(" / ", policies.Select(p => p.Spec))}, {n} round(s)");

            bool measure = measureMemory && T == largest;
            long before = 0;
            bool reset = false;
            if (measure)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
                reset = ResetPeak();
                before = CurrentWorkingSet();
            }
            var (q, k, v) = RandomLayer(T, NH, NKV, HD, seed: 13);
            var zDense = new float[(long)T * NH * HD > int.MaxValue ? throw new InvalidOperationException("long context: q is over 2³¹ floats") : T * NH * HD];
            void Dense() => K.BlockedAttention(q, k, v, zDense, T, T, NH, NKV, HD, 0, scale, [], AttentionSparsity.Dense);
            float[]? zSparse = null;

            var dense = new double[n];
            var attention = new double[policies.Length, n];
            var selection = new double[policies.Length, n];
            var density = new double[policies.Length];
            bool warm = T <= 4096; // a warm-up round where it is cheap; at 16K and 32K the JIT is long warm from the smaller lengths
            for (int r = warm ? -1 : 0; r < n; r++)
            {
                cancel.ThrowIfCancellationRequested();
                double d = GemmBenchmark.Seconds(Dense);
                if (r >= 0) dense[r] = d;
                if (measure && memory is null)
                {
                    // the peak of allocating q, k, v, z and one dense prefill; the sparse output is allocated after it
                    memory = new LongContextMemory(T, 4L * T * HD * (2 * NH + 2 * NKV),
                        4L * K.BlockedAttentionScratchFloats(NH, NKV, HD) * Math.Min(K.MaxThreads, Environment.ProcessorCount)
                            + 4L * K.BlockedAttentionTileStoreFloats(T, T, NKV, HD, 0),
                        before, PeakWorkingSet(), reset);
                }
                var zOut = zSparse ??= new float[zDense.Length];
                for (int p = 0; p < policies.Length; p++)
                {
                    cancel.ThrowIfCancellationRequested();
                    var policy = policies[p];
                    AttentionSparsity sparsity = AttentionSparsity.Dense;
                    bool keepsAll = false;
                    policy.ResetCounts();
                    double s = GemmBenchmark.Seconds(() => sparsity = policy.Select(0, 0, q, k, T, T, NH, NKV, HD, 0, [], out keepsAll));
                    density[p] = policy.Density;
                    // a decision that drops nothing runs the dense path, as the forward does
                    var chosen = keepsAll ? AttentionSparsity.Dense : sparsity;
                    double a = GemmBenchmark.Seconds(() => K.BlockedAttention(q, k, v, zOut, T, T, NH, NKV, HD, 0, scale, [], chosen));
                    if (r >= 0)
                    {
                        selection[p, r] = s;
                        attention[p, r] = a;
                    }
                }
            }
            double denseMedian = GemmBenchmark.MedianOf(dense);
            rows.Add(new LongContextRow(T, "dense", 1, n, denseMedian, 0, denseMedian));
            for (int p = 0; p < policies.Length; p++)
            {
                rows.Add(new LongContextRow(T, policies[p].Spec, density[p], n, GemmBenchmark.MedianOf(Row(attention, p)),
                    GemmBenchmark.MedianOf(Row(selection, p)), denseMedian));
            }
        }
        return new LongContextResult(NH, NKV, HD, K.MaxThreads, blockSize, targetDensity, window, sinks, rows, memory);
    }

    /// <summary>The K of <c>topk-blocks:B,K</c> whose density on a causal prefill of T tokens is nearest
    /// <paramref name="target"/> (the lower K on a tie). The density does not depend on the data: query block qb keeps
    /// min(max(K, 2), qb + 1) blocks (block 0 and the diagonal are forced), each off-diagonal one full.</summary>
    public static int KeepForDensity(int T, int B, double target)
    {
        int nb = (T + B - 1) / B, best = 1;
        double bestGap = double.PositiveInfinity;
        for (int keep = 1; keep <= nb; keep++)
        {
            double gap = Math.Abs(TopKDensity(T, B, keep) - target);
            if (gap < bestGap)
            {
                best = keep;
                bestGap = gap;
            }
        }
        return best;
    }

    /// <summary>Computed pairs ÷ causal pairs of <c>topk-blocks:B,K</c> on a causal prefill of T tokens (no padding).</summary>
    public static double TopKDensity(int T, int B, int keep)
    {
        int nb = (T + B - 1) / B;
        double kept = 0;
        for (int qb = 0; qb < nb; qb++)
        {
            long rows = Math.Min(B, T - qb * B);
            int blocks = Math.Min(Math.Max(keep, 2), qb + 1);
            kept += (blocks - 1) * rows * B + rows * (rows + 1) / 2;
        }
        return kept / (T * (T + 1.0) / 2);
    }

    /// <summary>A random layer's q (T, NH, HD), k and v (T, NKV, HD): q and k per head a fixed random direction (std 1 per
    /// component) plus as much noise, rotated by RoPE at their position (pairs (d, d + HD/2), θ_j = 10,000^(−2j/HD)); v uniform.</summary>
    public static (float[] Q, float[] K, float[] V) RandomLayer(int T, int NH, int NKV, int HD, int seed)
    {
        var rng = new Random(seed);
        int half = HD / 2;
        var cos = new float[(long)T * half];
        var sin = new float[(long)T * half];
        for (int t = 0; t < T; t++)
        {
            for (int j = 0; j < half; j++)
            {
                double angle = t * Math.Pow(10000, -2.0 * j / HD);
                cos[(long)t * half + j] = (float)Math.Cos(angle);
                sin[(long)t * half + j] = (float)Math.Sin(angle);
            }
        }
        float[] Rotated(int heads)
        {
            var dir = new float[heads * HD];
            for (int i = 0; i < dir.Length; i++) dir[i] = Uniform(rng);
            var x = new float[T * heads * HD];
            var row = new float[HD];
            for (int t = 0; t < T; t++)
            {
                for (int h = 0; h < heads; h++)
                {
                    for (int d = 0; d < HD; d++) row[d] = dir[h * HD + d] + Uniform(rng);
                    var dst = x.AsSpan((t * heads + h) * HD, HD);
                    for (int j = 0; j < half; j++)
                    {
                        float c = cos[(long)t * half + j], s = sin[(long)t * half + j], a = row[j], b = row[j + half];
                        dst[j] = a * c - b * s;
                        dst[j + half] = b * c + a * s;
                    }
                    if ((HD & 1) != 0) dst[HD - 1] = row[HD - 1];
                }
            }
            return x;
        }
        var q = Rotated(NH);
        var k = Rotated(NKV);
        var v = new float[T * NKV * HD];
        for (int i = 0; i < v.Length; i++) v[i] = Uniform(rng);
        return (q, k, v);
    }

    // uniform with standard deviation 1
    private static float Uniform(Random rng) => (float)((rng.NextDouble() * 2 - 1) * 1.7320508075688772);

    private static double[] Row(double[,] a, int p)
    {
        var row = new double[a.GetLength(1)];
        for (int r = 0; r < row.Length; r++) row[r] = a[p, r];
        return row;
    }

    // Linux: writing 5 to /proc/self/clear_refs resets the peak resident set (VmHWM) to the current one
    private static bool ResetPeak()
    {
        try
        {
            if (!OperatingSystem.IsLinux()) return false;
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long CurrentWorkingSet()
    {
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }

    private static long PeakWorkingSet()
    {
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }

    /// <summary>What <c>headwise bench --long-context</c> prints: two lines, the table of specs and lengths, the memory line.</summary>
    public static IEnumerable<BenchText> Describe(LongContextResult r)
    {
        yield return $"long context           attention alone (blocked kernel), one random Llama-shaped layer (NH {r.NH}, NKV {r.NKV}, HD {r.HD}, RoPE'd q/k), causal prefill, {r.Threads} thread(s);";
        yield return $"                       topk-blocks at B {r.BlockSize} with K for density ≈ {r.TargetDensity:P0}; medians of alternating rounds; speed-up = dense ÷ spec (+ sel.: with the selection)";
        yield return BenchText.Table([">tokens", "spec", ">density", ">rounds", ">attention s", ">selection s", ">speed-up", ">+ sel."],
            r.Rows.Select(row => new[] { $"{row.Tokens}", row.Spec, $"{row.Density:P1}", $"{row.Reps}", $"{row.AttentionSeconds:F3}", $"{row.SelectionSeconds:F3}", $"{row.Speedup:F2}×", $"{row.SpeedupWithSelection:F2}×" }));
        if (r.Memory is { } m)
        {
            yield return $"                       memory at {m.Tokens:N0} tokens: computed {m.ComputedBytes / 1048576.0:F0} MiB (q, k, v, z {m.TensorBytes / 1048576.0:F0} MiB + kernel scratch {m.ScratchBytes / 1024.0:F0} KiB); " +
                $"measured peak working set − working set before = {m.PeakDelta / 1048576.0:F0} MiB{(m.PeakReset ? "" : " (peak not reset: an upper bound of the process's whole run)")}";
        }
    }

    /// <summary>The <c>long_context</c> JSON object.</summary>
    public static object Json(LongContextResult r) => new
    {
        nh = r.NH,
        nkv = r.NKV,
        hd = r.HD,
        threads = r.Threads,
        block_size = r.BlockSize,
        target_density = r.TargetDensity,
        window = r.Window,
        sinks = r.Sinks,
        rows = r.Rows.Select(x => new
        {
            tokens = x.Tokens,
            spec = x.Spec,
            density = x.Density,
            rounds = x.Reps,
            attention_s = x.AttentionSeconds,
            selection_s = x.SelectionSeconds,
            dense_s = x.DenseSeconds,
            speedup = x.Speedup,
            speedup_with_selection = x.SpeedupWithSelection,
        }).ToArray(),
        memory = r.Memory is not { } m ? null : new
        {
            tokens = m.Tokens,
            tensor_bytes = m.TensorBytes,
            scratch_bytes = m.ScratchBytes,
            computed_bytes = m.ComputedBytes,
            working_set_before = m.WorkingSetBefore,
            peak_working_set = m.PeakWorkingSet,
            peak_delta_bytes = m.PeakDelta,
            peak_reset = m.PeakReset,
        },
    };
}
