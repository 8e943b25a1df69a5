using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// LayerNorm and RMSNorm over the last dimension: x, out: (T, C)  weight, bias: (C)  one statistic per row t.
//
// Row statistics are accumulated in double (widened vectors), as in the scalar twins, so a large mean cannot eat the
// variance; the normalised value is rounded to float and then scaled with separate float multiply and add, exactly
// like the reference expression, so outputs agree to the last bit except where the sum order flips a rounding.
public static unsafe partial class Kernels
{
    /// <summary>LayerNorm over the last dimension; optionally writes each row's scale √(var + ε).</summary>
    // x: (T, C)  weight, bias: (C)  out: (T, C)  scale: (T) or empty
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output,
        Span<float> scale, int T, int C, float eps)
    {
        Require(T >= 0 && C >= 0, "LayerNorm: negative dimension");
        Require(x.Length >= T * C && output.Length >= T * C && weight.Length >= C, "LayerNorm: shape mismatch");
        Require(bias.IsEmpty || bias.Length >= C, "LayerNorm: bias is shorter than C");
        Require(scale.IsEmpty || scale.Length >= T, "LayerNorm: scale is shorter than T");
        if (C == 0) return;
        fixed (float* px = x, pw = weight, pb = bias, po = output, ps = scale)
        {
            ForRows(new NormPass { X = px, W = pw, B = bias.IsEmpty ? null : pb, Out = po, Scale = scale.IsEmpty ? null : ps, C = C, Eps = eps }, T, C);
        }
    }

    /// <summary>RMSNorm over the last dimension; optionally writes each row's scale √(mean(x²) + ε).</summary>
    // x: (T, C)  weight: (C)  out: (T, C)  scale: (T) or empty
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> output, Span<float> scale,
        int T, int C, float eps)
    {
        Require(T >= 0 && C >= 0, "RmsNorm: negative dimension");
        Require(x.Length >= T * C && output.Length >= T * C && weight.Length >= C, "RmsNorm: shape mismatch");
        Require(scale.IsEmpty || scale.Length >= T, "RmsNorm: scale is shorter than T");
        if (C == 0) return;
        fixed (float* px = x, pw = weight, po = output, ps = scale)
        {
            ForRows(new NormPass { X = px, W = pw, Out = po, Scale = scale.IsEmpty ? null : ps, C = C, Eps = eps, Rms = true }, T, C);
        }
    }

    // rows [r0, r1) of LayerNorm (or RMSNorm: no mean, no bias); B, Scale: null when absent
    private struct NormPass : IRowPass
    {
        public float* X, W, B, Out, Scale;
        public int C;
        public float Eps;
        public bool Rms;

        public readonly void Run(int r0, int r1)
        {
            for (int t = r0; t < r1; t++)
            {
                float* row = X + (long)t * C;
                double s;
                double mean = 0;
                if (Rms)
                {
                    s = Math.Sqrt(SumShiftedPow(row, C, 0, square: true) / C + Eps);
                }
                else
                {
                    mean = SumShiftedPow(row, C, 0, square: false) / C;
                    double variance = SumShiftedPow(row, C, mean, square: true) / C; // two-pass: no E[x²] − E[x]² cancellation
                    s = Math.Sqrt(variance + Eps);
                }
                if (Scale != null) Scale[t] = (float)s;
                NormalizeRow(row, W, B, Out + (long)t * C, C, mean, s);
            }
        }
    }

    // Σ (x[i] − shift) or Σ (x[i] − shift)², in double.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double SumShiftedPow(float* x, int n, double shift, bool square)
    {
        int i = 0;
        double sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var m = Vector512.Create(shift);
            Vector512<double> a0 = default, a1 = default;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                lo -= m;
                hi -= m;
                a0 += square ? lo * lo : lo;
                a1 += square ? hi * hi : hi;
            }
            sum = Vector512.Sum(a0 + a1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var m = Vector256.Create(shift);
            Vector256<double> a0 = default, a1 = default;
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
                lo -= m;
                hi -= m;
                a0 += square ? lo * lo : lo;
                a1 += square ? hi * hi : hi;
            }
            sum = Vector256.Sum(a0 + a1);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            var m = Vector128.Create(shift);
            Vector128<double> a0 = default, a1 = default;
            for (; i + 4 <= n; i += 4)
            {
                var (lo, hi) = Vector128.Widen(Vector128.Load(x + i));
                lo -= m;
                hi -= m;
                a0 += square ? lo * lo : lo;
                a1 += square ? hi * hi : hi;
            }
            sum = Vector128.Sum(a0 + a1);
        }
        // remainder
        for (; i < n; i++)
        {
            double d = x[i] - shift;
            sum += square ? d * d : d;
        }
        return sum;
    }

    // out[i] = (float)((x[i] − mean) / s) · w[i] (+ b[i])
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NormalizeRow(float* x, float* w, float* b, float* output, int n, double mean, double s)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<double> m = Vector512.Create(mean), sv = Vector512.Create(s);
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                var y = Vector512.Narrow((lo - m) / sv, (hi - m) / sv) * Vector512.Load(w + i);
                if (b != null) y += Vector512.Load(b + i);
                y.Store(output + i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<double> m = Vector256.Create(mean), sv = Vector256.Create(s);
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
                var y = Vector256.Narrow((lo - m) / sv, (hi - m) / sv) * Vector256.Load(w + i);
                if (b != null) y += Vector256.Load(b + i);
                y.Store(output + i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            Vector128<double> m = Vector128.Create(mean), sv = Vector128.Create(s);
            for (; i + 4 <= n; i += 4)
            {
                var (lo, hi) = Vector128.Widen(Vector128.Load(x + i));
                var y = Vector128.Narrow((lo - m) / sv, (hi - m) / sv) * Vector128.Load(w + i);
                if (b != null) y += Vector128.Load(b + i);
                y.Store(output + i);
            }
        }
        // remainder
        for (; i < n; i++)
        {
            float y = (float)((x[i] - mean) / s) * w[i];
            output[i] = b == null ? y : y + b[i];
        }
    }
}
