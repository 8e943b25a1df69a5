using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Headwise.Compute;

namespace Headwise.Benchmarks;

/// <summary>One operation at one length: nanoseconds per call of our kernel and of System.Numerics.Tensors'
/// TensorPrimitives (medians, measured alternately in the same run), and — for reductions — whether the library's result
/// has the same bits wherever the input starts in memory.</summary>
public sealed record PrimitiveTiming(string Operation, int Length, double OursNs, double LibraryNs, bool? LibrarySameBitsAtEveryAlignment)
{
    /// <summary>Library time / our time: below 1 the library is faster.</summary>
    public double LibraryOverOurs => LibraryNs / OursNs;
}

/// <summary>Our hand-written vector kernels against TensorPrimitives, operation by operation: the measurement behind which
/// of them delegate to the library (see docs/performance.md, "Kernels and TensorPrimitives").</summary>
public static unsafe class PrimitivesBenchmark
{
    /// <summary>Vector lengths: a head's HD, GPT-2-small's C, its MLP width F, its vocabulary V.</summary>
    public static readonly int[] Lengths = [64, 768, 3_072, 50_257];

    /// <summary>Halves converted per call in the F16 row: a 2.4M-parameter tensor, as checkpoints are loaded.</summary>
    public const int HalfCount = 2_400_000;

    /// <summary>Times every operation at every length (about half a minute; <paramref name="reps"/> measurements of each).
    /// <paramref name="cancel"/> is checked between lengths.</summary>
    public static IReadOnlyList<PrimitiveTiming> Run(int reps = 21, CancellationToken cancel = default)
    {
        var rows = new List<PrimitiveTiming>();
        int maxLength = Math.Max(Lengths.Max(), HalfCount);
        // 64-byte aligned buffers, with room to shift the start for the alignment check
        float* a = Alloc(maxLength + 16), b = Alloc(maxLength + 16), y = Alloc(maxLength + 16), shifted = Alloc(maxLength + 16);
        ushort* halves = (ushort*)NativeMemory.AlignedAlloc((nuint)(HalfCount * sizeof(ushort)), 64);
        try
        {
            var rng = new Random(1);
            for (int i = 0; i < maxLength + 16; i++)
            {
                a[i] = (float)(rng.NextDouble() * 2 - 1);
                b[i] = (float)(rng.NextDouble() * 2 - 1);
                y[i] = 0f;
            }
            for (int i = 0; i < HalfCount; i++) halves[i] = BitConverter.HalfToUInt16Bits((Half)(rng.NextDouble() * 8 - 4));

            // the first pass only warms up: on a busy machine the library's code can still be tier-0 after a
            // per-row warm-up, and the first rows measured would time the JIT
            for (int pass = 0; pass < 2; pass++)
            {
                rows.Clear();
                foreach (int n in Lengths)
                {
                    cancel.ThrowIfCancellationRequested();
                    rows.Add(Time("add a + b", n, reps, () => HandWritten.Add(a, b, y, n),
                        () => TensorPrimitives.Add(In(a, n), In(b, n), Out(y, n))));
                    rows.Add(Time("scale x·α", n, reps, () => HandWritten.Scale(y, 1f, n),
                        () => TensorPrimitives.Multiply(Out(y, n), 1f, Out(y, n))));
                    rows.Add(Time("axpy y += α·x (unfused)", n, reps, () => HandWritten.Axpy(1e-7f, a, y, n),
                        () => TensorPrimitives.MultiplyAdd(In(a, n), 1e-7f, Out(y, n), Out(y, n))));
                    rows.Add(Time("max", n, reps, () => s_sink = Kernels.Max(a, n), () => s_sink = TensorPrimitives.Max(In(a, n)),
                        () => SameBitsAtEveryAlignment(a, shifted, n, p => TensorPrimitives.Max(In(p, n)))));
                    rows.Add(Time("sum", n, reps, () => s_sink = SumOurs(a, n), () => s_sink = TensorPrimitives.Sum(In(a, n)),
                        () => SameBitsAtEveryAlignment(a, shifted, n, p => TensorPrimitives.Sum(In(p, n)))));
                    rows.Add(Time("dot (inference kernels)", n, reps, () => s_sink = Kernels.Dot(a, b, n), () => s_sink = TensorPrimitives.Dot(In(a, n), In(b, n)),
                        () => SameBitsAtEveryAlignment(a, shifted, n, p => TensorPrimitives.Dot(In(p, n), In(b, n)))));
                    rows.Add(Time("dot (training order)", n, reps, () => s_sink = Kernels.Dot(In(a, n), In(b, n)), () => s_sink = TensorPrimitives.Dot(In(a, n), In(b, n))));
                    rows.Add(Time("f16 → f32", n, reps, () => Kernels.HalfToSingle(new ReadOnlySpan<ushort>(halves, n), Out(y, n)),
                        () => TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(halves, n), Out(y, n))));
                }
                rows.Add(Time("f16 → f32", HalfCount, reps, () => Kernels.HalfToSingle(new ReadOnlySpan<ushort>(halves, HalfCount), Out(y, HalfCount)),
                    () => TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(halves, HalfCount), Out(y, HalfCount))));
            }
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(y);
            NativeMemory.AlignedFree(shifted);
            NativeMemory.AlignedFree(halves);
        }
        return rows;
    }

    private static float s_sink; // results go here, so that no reduction is optimised away

    private static ReadOnlySpan<float> In(float* p, int n) => new(p, n);

    private static Span<float> Out(float* p, int n) => new(p, n);

    private static float* Alloc(int n) => (float*)NativeMemory.AlignedAlloc((nuint)(n * sizeof(float)), 64);

    // our kernels have no stand-alone sum (softmax fuses it with exp, the norms with squares): four Vector<float>
    // accumulators, the loop shape of our dot, stand in for "ours"
    private static float SumOurs(float* x, int n)
    {
        int i = 0, W = Vector<float>.Count;
        Vector<float> s0 = default, s1 = default, s2 = default, s3 = default;
        for (; i + 4 * W <= n; i += 4 * W)
        {
            s0 += *(Vector<float>*)(x + i);
            s1 += *(Vector<float>*)(x + i + W);
            s2 += *(Vector<float>*)(x + i + 2 * W);
            s3 += *(Vector<float>*)(x + i + 3 * W);
        }
        float sum = Vector.Sum((s0 + s1) + (s2 + s3));
        // remainder
        for (; i < n; i++) sum += x[i];
        return sum;
    }

    // The same n values copied to 16 start offsets (0..15 floats past a 64-byte boundary): does the result keep its bits?
    // A library that aligned its main loop to the vector size would sum in an order that follows the address, and a
    // reduction that feeds training must not depend on where the allocator put the array.
    private static bool SameBitsAtEveryAlignment(float* source, float* scratch, int n, ReduceAt reduce)
    {
        int? first = null;
        for (int offset = 0; offset < 16; offset++)
        {
            new ReadOnlySpan<float>(source, n).CopyTo(new Span<float>(scratch + offset, n));
            int bits = BitConverter.SingleToInt32Bits(reduce(scratch + offset));
            first ??= bits;
            if (bits != first)
            {
                return false;
            }
        }
        return true;
    }

    private delegate float ReduceAt(float* p);

    // ours and the library alternately, each call repeated over ~2M floats per measurement (~0.5 ms), medians in ns per call
    private static PrimitiveTiming Time(string operation, int n, int reps, Action ours, Action library, Func<bool>? sameBits = null)
    {
        int inner = Math.Max(1, 2_000_000 / Math.Max(n, 1));
        void Many(Action f)
        {
            for (int i = 0; i < inner; i++) f();
        }
        // warm-up long enough for tiered compilation to promote the library's generic code (our kernels are
        // AggressiveOptimization, compiled fully at once): a single call would time the library's tier-0 code
        long start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < 0.3)
        {
            Many(ours);
            Many(library);
        }
        var o = new double[reps];
        var l = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            o[r] = GemmBenchmark.Seconds(() => Many(ours));
            l[r] = GemmBenchmark.Seconds(() => Many(library));
        }
        // the alignment check runs after the timing, on the same (fully optimised) code
        return new PrimitiveTiming(operation, n, GemmBenchmark.MedianOf(o) / inner * 1e9, GemmBenchmark.MedianOf(l) / inner * 1e9, sameBits?.Invoke());
    }

    // The loops that add, scale and axpy had before they delegated to TensorPrimitives, kept (as llm.c keeps its kernel
    // variants in dev/) so that this comparison can be run again on another machine.
    private static class HandWritten
    {
        // out = a + b
        public static void Add(float* a, float* b, float* output, int n)
        {
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i + 16 <= n; i += 16) (Vector512.Load(a + i) + Vector512.Load(b + i)).Store(output + i);
            }
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 8 <= n; i += 8) (Vector256.Load(a + i) + Vector256.Load(b + i)).Store(output + i);
            }
            if (Vector128.IsHardwareAccelerated)
            {
                for (; i + 4 <= n; i += 4) (Vector128.Load(a + i) + Vector128.Load(b + i)).Store(output + i);
            }
            // remainder
            for (; i < n; i++) output[i] = a[i] + b[i];
        }

        // x *= alpha
        public static void Scale(float* x, float alpha, int n)
        {
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                var va = Vector512.Create(alpha);
                for (; i + 16 <= n; i += 16) (Vector512.Load(x + i) * va).Store(x + i);
            }
            if (Vector256.IsHardwareAccelerated)
            {
                var va = Vector256.Create(alpha);
                for (; i + 8 <= n; i += 8) (Vector256.Load(x + i) * va).Store(x + i);
            }
            if (Vector128.IsHardwareAccelerated)
            {
                var va = Vector128.Create(alpha);
                for (; i + 4 <= n; i += 4) (Vector128.Load(x + i) * va).Store(x + i);
            }
            // remainder
            for (; i < n; i++) x[i] *= alpha;
        }

        // y += alpha·x, multiply then add, one Vector<float> at a time (the training layers' loop)
        public static void Axpy(float alpha, float* x, float* y, int n)
        {
            int i = 0;
            var va = new Vector<float>(alpha);
            for (; i + Vector<float>.Count <= n; i += Vector<float>.Count)
            {
                (*(Vector<float>*)(y + i) + va * *(Vector<float>*)(x + i)).Store(y + i);
            }
            // remainder
            for (; i < n; i++) y[i] += alpha * x[i];
        }
    }
}
