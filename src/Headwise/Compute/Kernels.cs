namespace Headwise.Compute;

// Legend, as in llm.c: B = batch, T = sequence length (query rows), S = key positions,
// C = channels (d_model), OC = output channels, F = MLP width, V = vocabulary, NH = query heads, NKV = key/value heads,
// HD = head size; N = the length of a flat vector, R = rows.
//
// One operation per file: Kernels.<Op>.cs holds the fast path, Reference/ScalarKernels.<Op>.cs its scalar twin,
// which is the algorithmic reference the tests compare against.

/// <summary>How a weight matrix is stored. Hugging Face <c>nn.Linear</c> stores (OC, C); GPT-2's <c>Conv1D</c> stores (C, OC).</summary>
public enum WeightLayout
{
    /// <summary>w: (OC, C) — out = x · wᵀ (nn.Linear).</summary>
    OutIn,
    /// <summary>w: (C, OC) — out = x · w (GPT-2 Conv1D).</summary>
    InOut,
}

/// <summary>The engine's kernels. Each public method validates its arguments and delegates to a vectorized core.</summary>
public static partial class Kernels
{
    private static int _maxThreads = Environment.ProcessorCount;

    /// <summary>Upper bound on worker threads for row- and head-parallel kernels (1 = single-threaded).</summary>
    public static int MaxThreads
    {
        get => _maxThreads;
        set => _maxThreads = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), "thread count must be at least 1");
    }

    internal static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new ArgumentException(what);
        }
    }
}
