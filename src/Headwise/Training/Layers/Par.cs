using System.Numerics;
using System.Runtime.CompilerServices;
using Headwise.Compute;

namespace Headwise.Training.Layers;

// Legend, as in llm.c: B = batch, T = sequence length, N = B·T rows, C = channels (d_model), OC = output channels,
// F = MLP width, V = vocabulary, NH = query heads, NKV = key/value heads, HD = query/key head size, HDV = value head size.
//
// Every layer is a pair Forward / Backward side by side. Backward accumulates (+=) into parameter gradients and, unless
// stated otherwise, into input gradients, so a residual stream's gradient is one buffer that each branch adds into.
// Parallel loops only ever split work whose outputs are disjoint, and each reduction runs in a fixed order inside one
// task, so results are bitwise the same for any thread count.

/// <summary>Small helpers shared by the layers: a parallel for-loop bounded by <see cref="Kernels.MaxThreads"/> and vector loops.</summary>
internal static class Par
{
    private static readonly ParallelOptions s_options = new();

    /// <summary>Runs body(i) for i in [0, n), split over at most MaxThreads threads when the work is large enough.</summary>
    public static void For(int n, long workPerItem, Action<int> body)
    {
        int threads = Kernels.MaxThreads;
        if (threads <= 1 || n <= 1 || (long)n * workPerItem < 32_768)
        {
            for (int i = 0; i < n; i++)
            {
                body(i);
            }
            return;
        }
        s_options.MaxDegreeOfParallelism = threads;
        Parallel.For(0, n, s_options, body);
    }

    /// <summary>Σ a[i]·b[i] in float, in a fixed order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length, i = 0;
        var acc = Vector<float>.Zero;
        for (; i + Vector<float>.Count <= n; i += Vector<float>.Count)
        {
            acc += new Vector<float>(a[i..]) * new Vector<float>(b[i..]);
        }
        float s = Vector.Sum(acc);
        for (; i < n; i++)
        {
            s += a[i] * b[i];
        }
        return s;
    }

    /// <summary>y[i] += alpha·x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length, i = 0;
        var va = new Vector<float>(alpha);
        for (; i + Vector<float>.Count <= n; i += Vector<float>.Count)
        {
            (new Vector<float>(y[i..]) + va * new Vector<float>(x[i..])).CopyTo(y[i..]);
        }
        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary>y[i] += x[i].</summary>
    public static void Add(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length, i = 0;
        for (; i + Vector<float>.Count <= n; i += Vector<float>.Count)
        {
            (new Vector<float>(y[i..]) + new Vector<float>(x[i..])).CopyTo(y[i..]);
        }
        for (; i < n; i++)
        {
            y[i] += x[i];
        }
    }
}
