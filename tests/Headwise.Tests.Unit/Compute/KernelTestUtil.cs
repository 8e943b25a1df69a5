using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

/// <summary>Tests that change the process-wide <see cref="K.MaxThreads"/> run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelThreadsCollection
{
    public const string Name = "Kernels.MaxThreads";
}

/// <summary>Sets the kernel thread count (and forces the parallel paths when above 1) for the scope's lifetime.</summary>
internal sealed class ThreadScope : IDisposable
{
    private readonly int _saved = K.MaxThreads;
    private readonly bool _savedForce = K.ForceParallel;

    public ThreadScope(int threads)
    {
        K.MaxThreads = threads;
        K.ForceParallel = threads > 1;
    }

    public void Dispose()
    {
        K.MaxThreads = _saved;
        K.ForceParallel = _savedForce;
    }
}

internal static class KernelTestUtil
{
    public static readonly float Eps = MathF.BitIncrement(1f) - 1f; // 2^-23

    public static float[] RandomArray(Random rng, int n, double lo = -1, double hi = 1)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return a;
    }

    /// <summary>|actual − expected| ≤ abs + rel·|expected| elementwise; NaN matches NaN, infinities must match exactly.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double rel, double abs, string what)
    {
        Assert.True(actual.Length >= expected.Length, $"{what}: output too short");
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNaN(e) || float.IsNaN(a))
            {
                Assert.True(float.IsNaN(e) && float.IsNaN(a), $"{what}: [{i}] expected {e} got {a}");
                continue;
            }
            if (float.IsInfinity(e) || float.IsInfinity(a))
            {
                Assert.True(e == a, $"{what}: [{i}] expected {e} got {a}");
                continue;
            }
            double diff = Math.Abs((double)a - e);
            if (diff > abs + rel * Math.Abs(e))
            {
                Assert.Fail($"{what}: [{i}] expected {e:R} got {a:R} (|Δ| = {diff:E3} > {abs:E1} + {rel:E1}·|e|)");
            }
        }
    }

    /// <summary>Bit-for-bit equality (NaN payloads aside).</summary>
    public static void AssertExact(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNaN(e) && float.IsNaN(a)) continue;
            if (BitConverter.SingleToInt32Bits(e) != BitConverter.SingleToInt32Bits(a))
            {
                Assert.Fail($"{what}: [{i}] expected {e:R} (0x{BitConverter.SingleToInt32Bits(e):x8}) got {a:R} (0x{BitConverter.SingleToInt32Bits(a):x8})");
            }
        }
    }
}
