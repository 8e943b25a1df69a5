using Headwise.Compute;

namespace Headwise.Training.Layers;

// Legend, as in llm.c: B = batch, T = sequence length, N = B·T rows, C = channels (d_model), OC = output channels,
// F = MLP width, V = vocabulary, NH = query heads, NKV = key/value heads, HD = query/key head size, HDV = value head size.
//
// Every layer is a pair Forward / Backward side by side. Backward accumulates (+=) into parameter gradients and, unless
// stated otherwise, into input gradients, so a residual stream's gradient is one buffer that each branch adds into.
// Parallel loops only ever split work whose outputs are disjoint, and each reduction runs in a fixed order inside one
// task, so results are bitwise the same for any thread count.

/// <summary>The layers' parallel for-loop, bounded by <see cref="Kernels.MaxThreads"/>. The vector loops they share with the
/// inference kernels (Dot, Axpy, Add) are in Compute/Kernels.VectorMath.cs and Kernels.Elementwise.cs.</summary>
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
}
