using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Headwise.Benchmarks;

/// <summary>Streaming read bandwidth in GB/s (10⁹ bytes per second), the ceiling for decode, which reads every weight once per token.</summary>
/// <param name="Bytes">Size of the buffer read, chosen ≫ last-level cache.</param>
/// <param name="Threads">Thread count of the multi-threaded measurement.</param>
/// <param name="SingleThreadGBps">One thread, median GB/s.</param>
/// <param name="MultiThreadGBps">All threads, each reading its own slice, median GB/s.</param>
public sealed record MemoryBandwidthResult(long Bytes, int Threads, double SingleThreadGBps, double MultiThreadGBps);

/// <summary>Measures how fast the machine can stream a large buffer into registers.</summary>
public static unsafe class MemoryBandwidthBenchmark
{
    /// <summary>Reads a <paramref name="megabytes"/> MiB buffer repeatedly; returns the median bandwidth after a warm-up.</summary>
    public static MemoryBandwidthResult Run(int megabytes = 512, int threads = 0, int repetitions = 5, CancellationToken cancel = default)
    {
        if (megabytes < 1) throw new ArgumentOutOfRangeException(nameof(megabytes), "megabytes must be at least 1");
        if (threads <= 0) threads = Environment.ProcessorCount;
        repetitions = Math.Max(1, repetitions);
        long bytes = (long)megabytes << 20;
        long floats = bytes / sizeof(float);
        float* buffer = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            // touch every page so the timing sees DRAM, not page faults
            new Span<float>(buffer, (int)Math.Min(floats, int.MaxValue)).Fill(1f);
            for (long i = int.MaxValue; i < floats; i++) buffer[i] = 1f;
            double one = bytes / GemmBenchmark.Median(repetitions, () => Sum(buffer, floats), cancel) / 1e9;
            long slice = (floats / threads + 63) / 64 * 64;
            nint basePtr = (nint)buffer;
            double many = bytes / GemmBenchmark.Median(repetitions, () =>
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    long start = t * slice;
                    long count = Math.Max(0, Math.Min(slice, floats - start));
                    Sum((float*)basePtr + start, count);
                }), cancel) / 1e9;
            return new MemoryBandwidthResult(bytes, threads, one, many);
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    private static volatile float s_sink;

    // x: (n) — a sum with four independent accumulators, so the loop is load-bound, not add-latency-bound
    private static void Sum(float* x, long n)
    {
        long i = 0;
        float total = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 32 <= n; i += 32)
            {
                s0 += Vector256.Load(x + i);
                s1 += Vector256.Load(x + i + 8);
                s2 += Vector256.Load(x + i + 16);
                s3 += Vector256.Load(x + i + 24);
            }
            total = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        // remainder
        for (; i < n; i++) total += x[i];
        s_sink = total;
    }
}
