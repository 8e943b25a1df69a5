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
            double many = bytes / GemmBenchmark.Median(repetitions, () => ReadAll(buffer, floats, threads), cancel) / 1e9;
            return new MemoryBandwidthResult(bytes, threads, one, many);
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    // every thread reads its own slice of buffer (floats values) once
    internal static void ReadAll(float* buffer, long floats, int threads)
    {
        long slice = (floats / threads + 63) / 64 * 64;
        nint basePtr = (nint)buffer;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            long start = t * slice;
            long count = Math.Max(0, Math.Min(slice, floats - start));
            Sum((float*)basePtr + start, count);
        });
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

/// <summary>A buffer kept between bandwidth probes, so that another measurement (decode) can be preceded, round after round
/// in the same process, by the bandwidth it is compared with: neighbours on a shared host then move both alike.</summary>
public sealed unsafe class BandwidthProbe : IDisposable
{
    private readonly long _bytes;
    private float* _buffer;

    /// <summary>Allocates and touches <paramref name="megabytes"/> MiB (≫ last-level cache).</summary>
    public BandwidthProbe(int megabytes)
    {
        if (megabytes < 1) throw new ArgumentOutOfRangeException(nameof(megabytes), "megabytes must be at least 1");
        _bytes = (long)megabytes << 20;
        _buffer = (float*)NativeMemory.AlignedAlloc((nuint)_bytes, 64);
        new Span<float>(_buffer, (int)Math.Min(_bytes / sizeof(float), int.MaxValue)).Fill(1f);
        for (long i = int.MaxValue; i < _bytes / sizeof(float); i++) _buffer[i] = 1f;
    }

    /// <summary>Streaming-read GB/s on <paramref name="threads"/> threads: the median of <paramref name="passes"/> reads of the buffer.</summary>
    public double MeasureGBps(int threads, int passes = 3, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_buffer == null, this);
        float* buffer = _buffer;
        long floats = _bytes / sizeof(float);
        return _bytes / GemmBenchmark.Median(passes, () => MemoryBandwidthBenchmark.ReadAll(buffer, floats, threads), cancel) / 1e9;
    }

    public void Dispose()
    {
        if (_buffer != null)
        {
            NativeMemory.AlignedFree(_buffer);
            _buffer = null;
        }
    }
}
