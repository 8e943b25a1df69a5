using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Both sides evaluate in double and round once to float, so Silu, SwiGlu and GeluTanh differ only where the two exp
// implementations straddle a float rounding boundary: rel 2.4e-7 (2 ulp). GeluErf uses a Chebyshev erfc with
// fractional error < 1.2e-7, plus rounding: rel 2.5e-7. For x ≪ 0 the twins evaluate 1 + tanh(u) and 1 + erf(z), which
// cancel (absolute error ≈ |x|·1e-16, e.g. −0 where the true value is −1e-19); ours evaluates x·σ(2u) and erfc(−z)
// directly and keeps those tiny values, hence abs 1e-14 (|x| ≤ 10 here; invisible at float resolution of logits).
[Collection(KernelThreadsCollection.Name)]
public sealed class ActivationTests
{
    private const double Rel = 2.4e-7, RelErf = 2.5e-7, Abs = 1e-14;

    private static readonly float[] Specials =
        [0f, -0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 0.5f, -0.5f, 3f, -3f, 9f, -9f, 20f, -20f, 88f, -88f, 100f, -100f, 1e30f, -1e30f,
         float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, float.NaN];

    private static void Sweep(Action<float[], float[]> reference, Action<float[], float[]> fast, double rel, string name)
    {
        var rng = new Random(name.GetHashCode(StringComparison.Ordinal) & 0xffff);
        for (int n = 0; n <= 257; n++)
        {
            float[] x = RandomArray(rng, n, -10, 10);
            for (int i = 0; i < n; i += 7) x[i] = Specials[(i / 7 + n) % Specials.Length];
            float[] expected = new float[n], actual = new float[n];
            reference(x, expected);
            fast(x, actual);
            AssertClose(expected, actual, rel, Abs, $"{name} n={n}");
            // in place
            var inPlace = (float[])x.Clone();
            fast(inPlace, inPlace);
            AssertClose(expected, inPlace, rel, Abs, $"{name} in place n={n}");
        }
    }

    [Fact]
    public void GeluTanhMatchesTwin() => Sweep((x, o) => ScalarKernels.GeluTanh(x, o), (x, o) => K.GeluTanh(x, o), Rel, "GeluTanh");

    // The AVX-512 lanes of GeluTanh run in float past the range reduction (Kernels.Activations.cs): against the double
    // form x / (1 + e^(−2u)) (not rounded to float) at every 256th float of [−12, 12] and the specials, within 1.7e-7
    // relative where the value is above 1e-30 in magnitude, 1e-30 absolute below (where float e^t overflows).
    [Fact]
    public void GeluTanhIsWithinItsBoundEverywhere()
    {
        const double K2 = -2 * 0.7978845608028654, A = 0.044715;
        var values = new List<float>(Specials);
        for (uint bits = 0; bits <= BitConverter.SingleToUInt32Bits(12f); bits += 256)
        {
            float v = BitConverter.UInt32BitsToSingle(bits);
            values.Add(v);
            values.Add(-v);
        }
        float[] x = [.. values], actual = new float[x.Length];
        K.GeluTanh(x, actual);
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i], expected = v / (1.0 + Math.Exp(K2 * (v + A * v * v * v)));
            if (double.IsNaN(expected) || double.IsInfinity(expected))
            {
                Assert.True(expected.Equals((double)actual[i]), $"GeluTanh({x[i]:R}) = {actual[i]:R}, expected {expected:R}");
                continue;
            }
            double err = Math.Abs(actual[i] - expected);
            if (Math.Abs(expected) > 1e-30)
            {
                worst = Math.Max(worst, err / Math.Abs(expected));
                Assert.True(err <= 1.7e-7 * Math.Abs(expected), $"GeluTanh({x[i]:R}) = {actual[i]:R}, expected {expected:R}: relative {err / Math.Abs(expected):E2}");
            }
            else
            {
                Assert.True(err <= 1e-30, $"GeluTanh({x[i]:R}) = {actual[i]:R}, expected {expected:R}");
            }
        }
        Assert.True(worst > 0, "no value was compared");
    }

    [Fact]
    public void GeluErfMatchesTwin() => Sweep((x, o) => ScalarKernels.GeluErf(x, o), (x, o) => K.GeluErf(x, o), RelErf, "GeluErf");

    [Fact]
    public void SiluMatchesTwin() => Sweep((x, o) => ScalarKernels.Silu(x, o), (x, o) => K.Silu(x, o), Rel, "Silu");

    [Fact]
    public void SwiGluMatchesTwin()
    {
        var rng = new Random(42);
        for (int n = 0; n <= 257; n++)
        {
            float[] gate = RandomArray(rng, n, -10, 10), up = RandomArray(rng, n, -3, 3);
            float[] expected = new float[n], actual = new float[n];
            ScalarKernels.SwiGlu(gate, up, expected);
            K.SwiGlu(gate, up, actual);
            AssertClose(expected, actual, Rel, Abs, $"SwiGlu n={n}");
            K.SwiGlu(gate, up, gate); // out aliases gate
            AssertClose(expected, gate, Rel, Abs, $"SwiGlu aliased n={n}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void LargeTensorsSplitAcrossThreads(int threads)
    {
        // several 32 Ki-element tasks and a ragged last one
        var rng = new Random(60 + threads);
        float[] x = RandomArray(rng, 100_003, -10, 10), up = RandomArray(rng, x.Length);
        float[] expected = new float[x.Length], actual = new float[x.Length];
        using var scope = new ThreadScope(threads);
        ScalarKernels.GeluErf(x, expected);
        K.GeluErf(x, actual);
        AssertClose(expected, actual, RelErf, Abs, $"GeluErf large threads={threads}");
        ScalarKernels.SwiGlu(x, up, expected);
        K.SwiGlu(x, up, actual);
        AssertClose(expected, actual, Rel, Abs, $"SwiGlu large threads={threads}");
    }

    [Fact]
    public void GeluErfIsAccurateOnADenseGrid()
    {
        // 200k points over [−10, 10]: the Chebyshev erfc bound holds everywhere, not just at random samples
        var x = new float[200_001];
        for (int i = 0; i < x.Length; i++) x[i] = -10f + 20f * i / (x.Length - 1);
        float[] expected = new float[x.Length], actual = new float[x.Length];
        ScalarKernels.GeluErf(x, expected);
        K.GeluErf(x, actual);
        AssertClose(expected, actual, RelErf, Abs, "GeluErf grid");
    }
}
