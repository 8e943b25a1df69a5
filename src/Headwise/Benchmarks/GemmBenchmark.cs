using System.Diagnostics;
using System.Runtime.InteropServices;
using Headwise.Kernels.Reference;
using K = Headwise.Kernels.Kernels;

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
public sealed record GemmBenchmarkResult(
    int N, int Threads,
    double OursSingleThread, double OursMultiThread,
    int NaiveN, double NaiveSingleThread,
    double? OpenBlasSingleThread, double? OpenBlasMultiThread, string OpenBlasStatus,
    string Isa);

/// <summary>Measures Kernels.MatMul against its scalar twin and against OpenBLAS (loaded at run time if installed).</summary>
public static unsafe class GemmBenchmark
{
    /// <summary>Runs the benchmark: a warm-up, then the median of <paramref name="repetitions"/> timed products per configuration.</summary>
    public static GemmBenchmarkResult Run(int n = 1024, int threads = 0, int repetitions = 5)
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
            ours1 = flops / Median(repetitions, () => K.MatMul(a, b, default, c, n, n, n, Headwise.Kernels.WeightLayout.InOut)) / 1e9;
            K.MaxThreads = threads;
            oursMt = flops / Median(repetitions, () => K.MatMul(a, b, default, c, n, n, n, Headwise.Kernels.WeightLayout.InOut)) / 1e9;
        }
        finally
        {
            K.MaxThreads = saved;
        }

        // the scalar twin is ~100× slower: time it at a size that takes well under a second
        int naiveN = Math.Min(n, 192);
        float[] na = RandomArray(rng, naiveN * naiveN), nb = RandomArray(rng, naiveN * naiveN), nc = new float[naiveN * naiveN];
        double naive = 2.0 * naiveN * naiveN * naiveN
            / Median(Math.Min(repetitions, 3), () => ScalarKernels.MatMul(na, nb, default, nc, naiveN, naiveN, naiveN, Headwise.Kernels.WeightLayout.InOut)) / 1e9;

        double? blas1 = null, blasMt = null;
        string status;
        if (OpenBlas.TryLoad(out status))
        {
            OpenBlas.SetThreads(1);
            blas1 = flops / Median(repetitions, () => OpenBlas.Sgemm(a, b, c, n)) / 1e9;
            OpenBlas.SetThreads(threads);
            blasMt = flops / Median(repetitions, () => OpenBlas.Sgemm(a, b, c, n)) / 1e9;
        }

        string isa = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "Vector512"
            : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "Vector256"
            : System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated ? "Vector128" : "scalar";
        return new GemmBenchmarkResult(n, threads, ours1, oursMt, naiveN, naive, blas1, blasMt, status, isa);
    }

    private static float[] RandomArray(Random rng, int length)
    {
        var data = new float[length];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return data;
    }

    // one untimed warm-up (JIT tiering, page faults, pack buffers), then the median of the timed runs, in seconds
    internal static double Median(int repetitions, Action action)
    {
        action();
        var times = new double[repetitions];
        for (int r = 0; r < repetitions; r++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            times[r] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        Array.Sort(times);
        return Math.Max(times[repetitions / 2], 1e-9);
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
