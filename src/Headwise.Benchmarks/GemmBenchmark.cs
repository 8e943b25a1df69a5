using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Headwise.Compute.Reference;
using K = Headwise.Compute.Kernels;

namespace Headwise.Benchmarks;

/// <summary>GEMM throughput, in GFLOP/s (2·n³ flops per product). A null OpenBLAS figure means the library was not available.</summary>
/// <param name="N">Matrix size of the main measurements (n × n · n × n).</param>
/// <param name="Threads">Thread count of the multi-threaded measurements.</param>
/// <param name="OursSingleThread">Kernels.MatMul, one thread, median GFLOP/s.</param>
/// <param name="OursMultiThread">Kernels.MatMul with <paramref name="Threads"/> threads, median GFLOP/s.</param>
/// <param name="NaiveN">Size at which the scalar twin was timed (it is too slow for n).</param>
/// <param name="NaiveSingleThread">ScalarKernels.MatMul GFLOP/s at <paramref name="NaiveN"/>.</param>
/// <param name="OpenBlasSingleThread">cblas_sgemm from libopenblas, one thread; null when not available.</param>
/// <param name="OpenBlasMultiThread">cblas_sgemm with <paramref name="Threads"/> threads; null when not available.</param>
/// <param name="OpenBlasStatus">"ok", or why OpenBLAS was not measured.</param>
/// <param name="Isa">The SIMD width the kernels dispatched to.</param>
/// <param name="FmaPeakSingleThread">One core's measured FMA throughput at that width (16 independent FMA chains, no memory), GFLOP/s.</param>
public sealed record GemmBenchmarkResult(
    int N, int Threads,
    double OursSingleThread, double OursMultiThread,
    int NaiveN, double NaiveSingleThread,
    double? OpenBlasSingleThread, double? OpenBlasMultiThread, string OpenBlasStatus,
    string Isa, double FmaPeakSingleThread);

/// <summary>Measures Kernels.MatMul against its scalar twin and against OpenBLAS (loaded at run time if installed).</summary>
public static unsafe class GemmBenchmark
{
    /// <summary>Runs the benchmark: a warm-up, then the median of <paramref name="repetitions"/> timed products per configuration.
    /// <paramref name="cancel"/> is checked between products.</summary>
    public static GemmBenchmarkResult Run(int n = 1024, int threads = 0, int repetitions = 5, CancellationToken cancel = default)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), "n must be at least 1");
        if (threads <= 0) threads = Environment.ProcessorCount;
        repetitions = Math.Max(1, repetitions);
        var rng = new Random(1234);
        float[] a = RandomArray(rng, n * n), b = RandomArray(rng, n * n), c = new float[n * n];
        double flops = 2.0 * n * n * n;

        int saved = K.MaxThreads;
        double ours1, oursMt;
        try
        {
            K.MaxThreads = 1;
            ours1 = flops / Median(repetitions, () => K.MatMul(a, b, default, c, n, n, n, Headwise.Compute.WeightLayout.InOut), cancel) / 1e9;
            K.MaxThreads = threads;
            oursMt = flops / Median(repetitions, () => K.MatMul(a, b, default, c, n, n, n, Headwise.Compute.WeightLayout.InOut), cancel) / 1e9;
        }
        finally
        {
            K.MaxThreads = saved;
        }

        // the scalar twin is ~100× slower: time it at a size that takes well under a second
        int naiveN = Math.Min(n, 192);
        float[] na = RandomArray(rng, naiveN * naiveN), nb = RandomArray(rng, naiveN * naiveN), nc = new float[naiveN * naiveN];
        double naive = 2.0 * naiveN * naiveN * naiveN
            / Median(Math.Min(repetitions, 3), () => ScalarKernels.MatMul(na, nb, default, nc, naiveN, naiveN, naiveN, Headwise.Compute.WeightLayout.InOut), cancel) / 1e9;

        double? blas1 = null, blasMt = null;
        string status;
        if (OpenBlas.TryLoad(out status))
        {
            OpenBlas.SetThreads(1);
            blas1 = flops / Median(repetitions, () => OpenBlas.Sgemm(a, b, c, n), cancel) / 1e9;
            OpenBlas.SetThreads(threads);
            blasMt = flops / Median(repetitions, () => OpenBlas.Sgemm(a, b, c, n), cancel) / 1e9;
        }

        string isa = Vector512.IsHardwareAccelerated ? "Vector512"
            : Vector256.IsHardwareAccelerated ? "Vector256"
            : Vector128.IsHardwareAccelerated ? "Vector128" : "scalar";
        return new GemmBenchmarkResult(n, threads, ours1, oursMt, naiveN, naive, blas1, blasMt, status, isa, FmaPeak(cancel));
    }

    // 16 independent FMA chains hide the FMA latency, so this measures the issue rate: the ceiling for any GEMM.
    internal static double FmaPeak(CancellationToken cancel)
    {
        // many short runs, the fastest kept: a ceiling is best seen in a run no neighbour interrupted (a few ms each)
        const long iterations = 2_000_000;
        FmaChains(1000); // JIT and clock warm-up
        double best = double.MaxValue;
        for (int r = 0; r < PeakRuns; r++)
        {
            cancel.ThrowIfCancellationRequested();
            long start = Stopwatch.GetTimestamp();
            s_peakSink = FmaChains(iterations);
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 4;
        return iterations * 16.0 * lanes * 2 / Math.Max(best, 1e-9) / 1e9;
    }

    private static float s_peakSink;
    private const int PeakRuns = 30;

    // the FMA loop on `threads` threads at once, their rates summed: what many cores (or SMT siblings) really deliver
    internal static double FmaPeakOnThreads(int threads, CancellationToken cancel)
    {
        const long iterations = 2_000_000;
        FmaChains(1000);
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 4;
        double best = 0;
        for (int r = 0; r < PeakRuns; r++)
        {
            cancel.ThrowIfCancellationRequested();
            var seconds = new double[threads];
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
            {
                long start = Stopwatch.GetTimestamp();
                s_peakSink = FmaChains(iterations);
                seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            });
            best = Math.Max(best, seconds.Sum(s => iterations * 16.0 * lanes * 2 / Math.Max(s, 1e-9) / 1e9));
        }
        return best;
    }

    // the clock, from a chain of dependent one-cycle integer operations (add, xor): 8 per iteration, the loop's own
    // counter and branch run beside them; best of 3
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    internal static double ClockGHz()
    {
        const long iterations = 2_000_000;
        double best = double.MaxValue;
        ulong x = 1, y = 0x9E3779B97F4A7C15, z = 0xBF58476D1CE4E5B9;
        for (int r = 0; r <= PeakRuns; r++) // run 0 warms up
        {
            long start = Stopwatch.GetTimestamp();
            for (long i = 0; i < iterations; i++)
            {
                x += y; x ^= z; x += y; x ^= z; x += y; x ^= z; x += y; x ^= z;
            }
            if (r > 0) best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        s_peakSink = x;
        return iterations * 8.0 / best / 1e9;
    }

    // kept free of calls so the 16 accumulators live in registers
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float FmaChains(long iterations)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
                a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
            Vector512<float> m = Vector512.Create(0.9999999f), c = Vector512.Create(1e-7f);
            for (long i = 0; i < iterations; i++)
            {
                a0 = Vector512.FusedMultiplyAdd(a0, m, c); a1 = Vector512.FusedMultiplyAdd(a1, m, c);
                a2 = Vector512.FusedMultiplyAdd(a2, m, c); a3 = Vector512.FusedMultiplyAdd(a3, m, c);
                a4 = Vector512.FusedMultiplyAdd(a4, m, c); a5 = Vector512.FusedMultiplyAdd(a5, m, c);
                a6 = Vector512.FusedMultiplyAdd(a6, m, c); a7 = Vector512.FusedMultiplyAdd(a7, m, c);
                a8 = Vector512.FusedMultiplyAdd(a8, m, c); a9 = Vector512.FusedMultiplyAdd(a9, m, c);
                a10 = Vector512.FusedMultiplyAdd(a10, m, c); a11 = Vector512.FusedMultiplyAdd(a11, m, c);
                a12 = Vector512.FusedMultiplyAdd(a12, m, c); a13 = Vector512.FusedMultiplyAdd(a13, m, c);
                a14 = Vector512.FusedMultiplyAdd(a14, m, c); a15 = Vector512.FusedMultiplyAdd(a15, m, c);
            }
            return Vector512.Sum((((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + (((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15))));
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
                a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
            Vector256<float> m = Vector256.Create(0.9999999f), c = Vector256.Create(1e-7f);
            for (long i = 0; i < iterations; i++)
            {
                a0 = Vector256.MultiplyAddEstimate(a0, m, c); a1 = Vector256.MultiplyAddEstimate(a1, m, c);
                a2 = Vector256.MultiplyAddEstimate(a2, m, c); a3 = Vector256.MultiplyAddEstimate(a3, m, c);
                a4 = Vector256.MultiplyAddEstimate(a4, m, c); a5 = Vector256.MultiplyAddEstimate(a5, m, c);
                a6 = Vector256.MultiplyAddEstimate(a6, m, c); a7 = Vector256.MultiplyAddEstimate(a7, m, c);
                a8 = Vector256.MultiplyAddEstimate(a8, m, c); a9 = Vector256.MultiplyAddEstimate(a9, m, c);
                a10 = Vector256.MultiplyAddEstimate(a10, m, c); a11 = Vector256.MultiplyAddEstimate(a11, m, c);
                a12 = Vector256.MultiplyAddEstimate(a12, m, c); a13 = Vector256.MultiplyAddEstimate(a13, m, c);
                a14 = Vector256.MultiplyAddEstimate(a14, m, c); a15 = Vector256.MultiplyAddEstimate(a15, m, c);
            }
            return Vector256.Sum((((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + (((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15))));
        }
        {
            Vector128<float> a0 = Vector128.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
                a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
            Vector128<float> m = Vector128.Create(0.9999999f), c = Vector128.Create(1e-7f);
            for (long i = 0; i < iterations; i++)
            {
                a0 = Vector128.MultiplyAddEstimate(a0, m, c); a1 = Vector128.MultiplyAddEstimate(a1, m, c);
                a2 = Vector128.MultiplyAddEstimate(a2, m, c); a3 = Vector128.MultiplyAddEstimate(a3, m, c);
                a4 = Vector128.MultiplyAddEstimate(a4, m, c); a5 = Vector128.MultiplyAddEstimate(a5, m, c);
                a6 = Vector128.MultiplyAddEstimate(a6, m, c); a7 = Vector128.MultiplyAddEstimate(a7, m, c);
                a8 = Vector128.MultiplyAddEstimate(a8, m, c); a9 = Vector128.MultiplyAddEstimate(a9, m, c);
                a10 = Vector128.MultiplyAddEstimate(a10, m, c); a11 = Vector128.MultiplyAddEstimate(a11, m, c);
                a12 = Vector128.MultiplyAddEstimate(a12, m, c); a13 = Vector128.MultiplyAddEstimate(a13, m, c);
                a14 = Vector128.MultiplyAddEstimate(a14, m, c); a15 = Vector128.MultiplyAddEstimate(a15, m, c);
            }
            return Vector128.Sum((((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + (((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15))));
        }
    }

    private static float[] RandomArray(Random rng, int length)
    {
        var data = new float[length];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return data;
    }

    // one untimed warm-up (JIT tiering, page faults, pack buffers), then the median of the timed runs, in seconds;
    // cancellation is checked between runs (every benchmark times through here, so Ctrl-C stops within one run)
    internal static double Median(int repetitions, Action action, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        action();
        var times = new double[repetitions];
        for (int r = 0; r < repetitions; r++)
        {
            cancel.ThrowIfCancellationRequested();
            times[r] = Seconds(action);
        }
        return Math.Max(MedianOf(times), 1e-9);
    }

    /// <summary>Wall-clock seconds and the process's CPU seconds (all threads) of one call.</summary>
    internal static (double Wall, double Cpu) WallAndCpuSeconds(Action action)
    {
        var cpu0 = Environment.CpuUsage.TotalTime;
        long start = Stopwatch.GetTimestamp();
        action();
        double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return (wall, (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds);
    }

    // the FMA loop's rate per second of CPU time, best of runs long enough for the CPU clock's resolution (~20 ms each)
    internal static double FmaPeakCpuTime(CancellationToken cancel)
    {
        const long iterations = 10_000_000;
        FmaChains(1000);
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 4;
        double best = double.MaxValue;
        for (int r = 0; r < 10; r++)
        {
            cancel.ThrowIfCancellationRequested();
            var (_, cpu) = WallAndCpuSeconds(() => s_peakSink = FmaChains(iterations));
            best = Math.Min(best, cpu);
        }
        return iterations * 16.0 * lanes * 2 / Math.Max(best, 1e-9) / 1e9;
    }

    /// <summary>Wall-clock seconds of one call.</summary>
    internal static double Seconds(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>The middle value (the upper one of an even count).</summary>
    internal static double MedianOf(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted[sorted.Length / 2];
    }

    private static class OpenBlas
    {
        private const int RowMajor = 101, NoTrans = 111;
        private static bool s_tried, s_loaded;
        private static string s_status = "not tried";
        private static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> s_sgemm;
        private static delegate* unmanaged<int, void> s_setThreads;

        public static bool TryLoad(out string status)
        {
            if (!s_tried)
            {
                s_tried = true;
                s_status = "not available: libopenblas.so.0 not found";
                foreach (var name in new[] { "libopenblas.so.0", "libopenblas.so", "libopenblas" })
                {
                    if (NativeLibrary.TryLoad(name, out var handle))
                    {
                        if (NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var sgemm))
                        {
                            s_sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
                            if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var set))
                            {
                                s_setThreads = (delegate* unmanaged<int, void>)set;
                            }
                            s_loaded = true;
                            s_status = "ok";
                        }
                        else
                        {
                            s_status = $"not available: {name} has no cblas_sgemm";
                        }
                        break;
                    }
                }
            }
            status = s_status;
            return s_loaded;
        }

        public static void SetThreads(int threads)
        {
            if (s_setThreads != null) s_setThreads(threads);
        }

        public static void Sgemm(float[] a, float[] b, float[] c, int n)
        {
            fixed (float* pa = a, pb = b, pc = c)
            {
                s_sgemm(RowMajor, NoTrans, NoTrans, n, n, n, 1f, pa, n, pb, n, 0f, pc, n);
            }
        }
    }
}

/// <summary>One GEMM of the forward at one row count and thread count: GFLOP/s (2·M·K·N flops) and the share of the
/// measured FMA peak of as many cores (<see cref="GemmShapesResult"/>).</summary>
/// <param name="Name">Which weight: qkv, attn_out, mlp_in, mlp_out, unembed.</param>
/// <param name="M">Rows (tokens).</param>
/// <param name="K">Depth (input features).</param>
/// <param name="N">Output features.</param>
/// <param name="Threads">Threads the GEMM ran on.</param>
/// <param name="Seconds">Median seconds per product.</param>
/// <param name="GFlops">2·M·K·N ÷ seconds, in GFLOP/s.</param>
/// <param name="OfPeak">GFlops ÷ (Threads × the single-core FMA peak).</param>
/// <param name="CpuSeconds">Median CPU time of the process per product (all its threads): unlike the wall time, not
/// stretched while a neighbour holds the core — on a shared machine the steadier measure of the kernel itself.</param>
/// <param name="CpuOfPeak">2·M·K·N ÷ CpuSeconds ÷ the single-core peak measured the same way: the share of the FMA peak
/// each busy core reaches (idle waits for a slower thread are not counted; the wall-time figures count them).</param>
public sealed record GemmShapeTiming(string Name, int M, int K, int N, int Threads, double Seconds, double GFlops, double OfPeak,
    double CpuSeconds, double CpuOfPeak);

/// <summary>The forward's GEMMs at the model's shapes (GPT-2 small: C 768, 3·C 2,304, F 3,072, V 50,257), prepacked as
/// prefill runs them, against the single-core FMA peak measured in the same run.</summary>
/// <param name="Isa">The SIMD width the kernels dispatched to.</param>
/// <param name="Lanes">float lanes of that width (16 with AVX-512).</param>
/// <param name="FmaPeakSingleThread">One core's FMA throughput (16 independent FMA chains, no memory), GFLOP/s.</param>
/// <param name="FmaPeakAllThreads">The same loop on <see cref="Threads"/> threads at once, summed: below Threads × the
/// single-core peak when the vCPUs share a core's FMA units (SMT siblings) or the neighbours' load takes a core.</param>
/// <param name="Threads">The multi-threaded rows' thread count.</param>
/// <param name="ClockGHz">Estimated core clock: a chain of dependent one-cycle integer operations.</param>
/// <param name="FmaPerCycle">FMA instructions per cycle at that clock: FmaPeakSingleThread ÷ (2 · Lanes · ClockGHz).</param>
/// <param name="FmaPeakCpuTime">The single-core FMA peak per second of CPU time (best of the same short runs).</param>
/// <param name="Rows">One row per (shape, M, threads).</param>
public sealed record GemmShapesResult(string Isa, int Lanes, double FmaPeakSingleThread, double FmaPeakAllThreads, int Threads,
    double ClockGHz, double FmaPerCycle, double FmaPeakCpuTime, IReadOnlyList<GemmShapeTiming> Rows);

/// <summary>Times every GEMM of a GPT-2-small forward at M = 128, 512 and 1,024 tokens on 1 and all threads.</summary>
public static class GemmShapesBenchmark
{
    /// <summary>(name, K, N, layout) of the GEMMs of one GPT-2-small layer and the unembedding, as the forward calls them.</summary>
    public static readonly (string Name, int K, int N, Headwise.Compute.WeightLayout Layout)[] Gpt2Small =
    [
        ("qkv", 768, 2304, Headwise.Compute.WeightLayout.InOut),
        ("attn_out", 768, 768, Headwise.Compute.WeightLayout.InOut),
        ("mlp_in", 768, 3072, Headwise.Compute.WeightLayout.InOut),
        ("mlp_out", 3072, 768, Headwise.Compute.WeightLayout.InOut),
        ("unembed", 768, 50257, Headwise.Compute.WeightLayout.OutIn),
    ];

    /// <summary>Measures the peak, then each shape at each M and thread count: a warm-up, then the median of
    /// <paramref name="repetitions"/> products, the thread counts alternating product by product.</summary>
    public static GemmShapesResult Run(int[] rows, int threads = 0, int repetitions = 5, CancellationToken cancel = default)
    {
        if (threads <= 0) threads = Environment.ProcessorCount;
        repetitions = Math.Max(1, repetitions);
        int[] threadCounts = threads > 1 ? [1, threads] : [1];
        double peakCpu = GemmBenchmark.FmaPeakCpuTime(cancel);
        double peak1 = GemmBenchmark.FmaPeak(cancel), peakN = threads > 1 ? GemmBenchmark.FmaPeakOnThreads(threads, cancel) : peak1;
        double clock = GemmBenchmark.ClockGHz();
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 4;
        var rng = new Random(4321);
        var timings = new List<GemmShapeTiming>();
        int saved = K.MaxThreads;
        try
        {
            foreach (var (name, k, n, layout) in Gpt2Small)
            {
                float[] w = RandomArray(rng, k * n), bias = RandomArray(rng, n);
                var packed = K.PackWeight(w, k, n, layout);
                foreach (int m in rows)
                {
                    float[] x = RandomArray(rng, m * k), output = new float[m * n];
                    double flops = 2.0 * m * k * n;
                    var times = threadCounts.Select(_ => new double[repetitions]).ToArray();
                    var cpuTimes = threadCounts.Select(_ => new double[repetitions]).ToArray();
                    for (int r = -1; r < repetitions; r++) // r = −1: the warm-up round
                    {
                        for (int i = 0; i < threadCounts.Length; i++)
                        {
                            cancel.ThrowIfCancellationRequested();
                            K.MaxThreads = threadCounts[i];
                            var (s, cpu) = GemmBenchmark.WallAndCpuSeconds(() => K.MatMul(x, w, packed, bias, output, m, k, n, layout));
                            if (r >= 0)
                            {
                                times[i][r] = s;
                                cpuTimes[i][r] = cpu;
                            }
                        }
                    }
                    for (int i = 0; i < threadCounts.Length; i++)
                    {
                        double seconds = Math.Max(GemmBenchmark.MedianOf(times[i]), 1e-9), gflops = flops / seconds / 1e9;
                        double cpuSeconds = Math.Max(GemmBenchmark.MedianOf(cpuTimes[i]), 1e-9);
                        timings.Add(new GemmShapeTiming(name, m, k, n, threadCounts[i], seconds, gflops, gflops / (threadCounts[i] * peak1),
                            cpuSeconds, flops / cpuSeconds / 1e9 / peakCpu));
                    }
                }
            }
        }
        finally
        {
            K.MaxThreads = saved;
        }
        string isa = Vector512.IsHardwareAccelerated ? "Vector512" : Vector256.IsHardwareAccelerated ? "Vector256" : Vector128.IsHardwareAccelerated ? "Vector128" : "scalar";
        return new GemmShapesResult(isa, lanes, peak1, peakN, threads, clock, peak1 / (2.0 * lanes * clock), peakCpu, timings);
    }

    /// <summary>The result as a JSON-ready object (bench's <c>gemm_shapes</c>).</summary>
    public static object Json(GemmShapesResult r) => new
    {
        isa = r.Isa,
        lanes = r.Lanes,
        fma_peak_1t_gflops = r.FmaPeakSingleThread,
        fma_peak_mt_gflops = r.FmaPeakAllThreads,
        threads = r.Threads,
        clock_ghz = r.ClockGHz,
        fma_per_cycle = r.FmaPerCycle,
        fma_peak_cpu_gflops = r.FmaPeakCpuTime,
        rows = r.Rows.Select(t => new
        {
            name = t.Name,
            m = t.M,
            k = t.K,
            n = t.N,
            threads = t.Threads,
            seconds = t.Seconds,
            gflops = t.GFlops,
            of_peak = t.OfPeak,
            cpu_seconds = t.CpuSeconds,
            cpu_of_peak = t.CpuOfPeak,
        }).ToArray(),
    };

    /// <summary>The result as bench prints it: two lines, then the table of shapes.</summary>
    public static IEnumerable<BenchText> Describe(GemmShapesResult r)
    {
        yield return $"gemm shapes            GPT-2 small's GEMMs, weights prepacked; FMA peak {r.FmaPeakSingleThread:F1} GFLOP/s on 1 thread " +
            $"(≈ {r.FmaPerCycle:F1} {r.Isa} FMAs/cycle at ≈ {r.ClockGHz:F2} GHz), {r.FmaPeakAllThreads:F1} on {r.Threads} threads at once";
        yield return $"                       (per CPU-second: peak {r.FmaPeakCpuTime:F1} GFLOP/s; \"CPU\" = the share of it each busy core reaches, steadier when the machine is shared)";
        yield return BenchText.Table(["shape", ">M", ">K", ">N", ">threads", ">GFLOP/s", ">% of threads × peak (target 80% on 1, 75% on 2)", ">CPU %"],
            r.Rows.Select(t => new[] { t.Name, $"{t.M}", $"{t.K}", $"{t.N}", $"{t.Threads}", $"{t.GFlops:F1}", $"{t.OfPeak:P0}", $"{t.CpuOfPeak:P0}" }));
    }

    private static float[] RandomArray(Random rng, int length)
    {
        var data = new float[length];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return data;
    }
}
