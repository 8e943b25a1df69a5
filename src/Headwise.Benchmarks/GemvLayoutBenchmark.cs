using Headwise.Compute;
using K = Headwise.Compute.Kernels;

namespace Headwise.Benchmarks;

/// <summary>One decode-sized product (T ≤ 4 rows) of one GPT-2-small weight shape, streamed three ways: from the weight in
/// Conv1D's (in, out) layout, from the weight in nn.Linear's (out, in) layout, and from its packed panels (the packed GEMV):
/// the weight's bytes per second (4·K·N ÷ the median time) and that as a share of the memory bandwidth measured in the same
/// run on as many threads.</summary>
/// <param name="Name">Which weight: qkv, attn_out, mlp_in, mlp_out, unembed.</param>
/// <param name="K">Depth (input features).</param>
/// <param name="N">Output features.</param>
/// <param name="T">Rows per product (1: a decode step).</param>
/// <param name="Threads">Threads the product ran on.</param>
/// <param name="InOutGBps">Unpacked GEMV, weight (K, N).</param>
/// <param name="OutInGBps">Unpacked GEMV, weight (N, K).</param>
/// <param name="PackedGBps">Packed GEMV over the GEMM's panels.</param>
/// <param name="BandwidthGBps">The read bandwidth on <see cref="Threads"/> threads (bench's memory bandwidth figure).</param>
public sealed record GemvLayoutTiming(string Name, int K, int N, int T, int Threads, double InOutGBps, double OutInGBps, double PackedGBps,
    double BandwidthGBps);

/// <summary>Which layout a decode step should stream each weight from (the issue's "decode keeps its GEMV layout choice:
/// measure which is faster per layout"): the unpacked GEMV of either layout against the packed GEMV, at GPT-2 small's
/// shapes, 1 and 4 rows, on 1 and all threads. Twelve different weights of each shape are cycled (one for the 154 MB
/// unembedding), so every product streams from memory as in a 12-layer forward, not from the cache; the three ways
/// alternate product by product after a warm-up, and each figure is the median of <c>rounds</c>.</summary>
public static class GemvLayoutBenchmark
{
    public static IReadOnlyList<GemvLayoutTiming> Run(MemoryBandwidthResult bandwidth, int threads = 0, int rounds = 21, bool quick = false,
        CancellationToken cancel = default)
    {
        if (threads <= 0) threads = Environment.ProcessorCount;
        int[] threadCounts = threads > 1 ? [1, threads] : [1];
        var rng = new Random(2718);
        var rows = new List<GemvLayoutTiming>();
        int saved = K.MaxThreads;
        try
        {
            foreach (var (name, k, n, _) in GemmShapesBenchmark.Gpt2Small)
            {
                if (quick && name == "unembed") continue;
                int copies = name == "unembed" ? 1 : quick ? 3 : 12;
                var inOut = Enumerable.Range(0, copies).Select(_ => RandomArray(rng, k * n)).ToArray();
                var outIn = Enumerable.Range(0, copies).Select(_ => RandomArray(rng, k * n)).ToArray();
                var packed = inOut.Select(w => K.PackWeight(w, k, n, WeightLayout.InOut)).ToArray();
                float[] bias = RandomArray(rng, n);
                foreach (int T in new[] { 1, 4 })
                {
                    float[] x = RandomArray(rng, T * k), output = new float[T * n];
                    foreach (int th in threadCounts)
                    {
                        K.MaxThreads = th;
                        var times = new[] { new double[rounds], new double[rounds], new double[rounds] };
                        int next = 0;
                        for (int r = -3; r < rounds; r++) // r < 0: warm-up rounds
                        {
                            for (int way = 0; way < 3; way++)
                            {
                                cancel.ThrowIfCancellationRequested();
                                int i = next++ % copies;
                                double s = way switch
                                {
                                    0 => GemmBenchmark.Seconds(() => K.MatMul(x, inOut[i], null, bias, output, T, k, n, WeightLayout.InOut)),
                                    1 => GemmBenchmark.Seconds(() => K.MatMul(x, outIn[i], null, bias, output, T, k, n, WeightLayout.OutIn)),
                                    _ => GemmBenchmark.Seconds(() => K.MatMul(x, default, packed[i], bias, output, T, k, n, WeightLayout.InOut)),
                                };
                                if (r >= 0) times[way][r] = s;
                            }
                        }
                        double bytes = 4.0 * k * n;
                        double Rate(double[] t) => bytes / Math.Max(GemmBenchmark.MedianOf(t), 1e-9) / 1e9;
                        rows.Add(new GemvLayoutTiming(name, k, n, T, th, Rate(times[0]), Rate(times[1]), Rate(times[2]),
                            th == 1 ? bandwidth.SingleThreadGBps : bandwidth.MultiThreadGBps));
                    }
                }
            }
        }
        finally
        {
            K.MaxThreads = saved;
        }
        return rows;
    }

    /// <summary>The rows as a JSON-ready array (bench's <c>gemv_layouts</c>).</summary>
    public static object Json(IReadOnlyList<GemvLayoutTiming> rows) => rows.Select(t => new
    {
        name = t.Name,
        k = t.K,
        n = t.N,
        t = t.T,
        threads = t.Threads,
        in_out_gbps = t.InOutGBps,
        out_in_gbps = t.OutInGBps,
        packed_gbps = t.PackedGBps,
        bandwidth_gbps = t.BandwidthGBps,
    }).ToArray();

    /// <summary>The rows as bench prints them.</summary>
    public static IEnumerable<BenchText> Describe(IReadOnlyList<GemvLayoutTiming> rows)
    {
        yield return "gemv layouts           decode-sized products streamed from (in, out), (out, in) or the packed panels: weight GB/s (share of the bandwidth)";
        yield return BenchText.Table(["shape", ">K", ">N", ">T", ">threads", ">(in, out)", ">(out, in)", ">packed", ">fastest"],
            rows.Select(t => new[]
            {
                t.Name, $"{t.K}", $"{t.N}", $"{t.T}", $"{t.Threads}",
                $"{t.InOutGBps:F1} ({t.InOutGBps / t.BandwidthGBps:P0})", $"{t.OutInGBps:F1} ({t.OutInGBps / t.BandwidthGBps:P0})",
                $"{t.PackedGBps:F1} ({t.PackedGBps / t.BandwidthGBps:P0})",
                t.PackedGBps >= Math.Max(t.InOutGBps, t.OutInGBps) ? "packed" : t.InOutGBps >= t.OutInGBps ? "(in, out)" : "(out, in)",
            }));
    }

    private static float[] RandomArray(Random rng, int length)
    {
        var data = new float[length];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return data;
    }
}
