namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // GELU, tanh form (HF "gelu_new", GPT-2): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> output)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            output[i] = (float)(0.5 * v * (1.0 + Math.Tanh(Math.Sqrt(2.0 / Math.PI) * (v + 0.044715 * v * v * v))));
        }
    }

    // GELU, exact form (HF "gelu", GPT-NeoX): 0.5·x·(1 + erf(x/√2))
    public static void GeluErf(ReadOnlySpan<float> x, Span<float> output)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            output[i] = (float)(0.5 * v * (1.0 + Erf(v / Math.Sqrt(2.0))));
        }
    }

    // SiLU: x·σ(x)
    public static void Silu(ReadOnlySpan<float> x, Span<float> output)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            output[i] = (float)(v / (1.0 + Math.Exp(-v)));
        }
    }

    // gate, up, out: (N) — SwiGLU: silu(gate) · up
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            output[i] = (float)(g / (1.0 + Math.Exp(-g)) * up[i]);
        }
    }

    /// <summary>erf in double precision (Abramowitz–Stegun 7.1.26 is too coarse; this is the W. J. Cody rational form via erfc).</summary>
    public static double Erf(double x)
    {
        // Uses the identity erf(x) = 1 - erfc(x) with a continued-fraction-free high-precision series/asymptotic split.
        if (double.IsInfinity(x)) return Math.Sign(x); // the continued fraction below would give ∞·0 = NaN
        double ax = Math.Abs(x);
        double r;
        if (ax < 2.5)
        {
            // Maclaurin series: erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 2.5.
            double sum = 0, term = ax;
            for (int n = 0; n < 60; n++)
            {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
                term *= -ax * ax / (n + 1);
            }
            r = 2.0 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // Continued fraction for erfc (Lentz), accurate for |x| ≥ 2.5.
            double f = ax, c = ax, d = 0, tiny = 1e-300;
            for (int n = 1; n < 200; n++)
            {
                double an = n / 2.0;
                d = ax + an * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
                c = ax + an / c; if (Math.Abs(c) < tiny) c = tiny;
                double delta = c * d; f *= delta;
                if (Math.Abs(delta - 1) < 1e-16) break;
            }
            r = 1.0 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }
}
