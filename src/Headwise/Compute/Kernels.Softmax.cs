using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Softmax over rows of attention scores, and the log-sum-exp that log-softmax, NLL and KL are built from.
// x: (R, S) — R rows (NH·T for attention patterns, T for next-token logits) of S keys or V vocabulary entries.
// Masked entries are −∞ and come out as exactly 0 (exp(−∞) = 0); a row with nothing visible becomes all zeros.
public static unsafe partial class Kernels
{
    /// <summary>Row softmax in place treating −∞ as masked; an all-masked row becomes zeros.</summary>
    // x: (R, S)
    public static void MaskedSoftmax(Span<float> x, int R, int S)
    {
        Require(R >= 0 && S >= 0 && x.Length >= (long)R * S, "MaskedSoftmax: x is shorter than R·S");
        fixed (float* px = x)
        {
            for (int r = 0; r < R; r++) SoftmaxRow(px + (long)r * S, S);
        }
    }

    // x: (S) in place: −∞ → 0, else softmax; all −∞ → all 0
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SoftmaxRow(float* x, int n)
    {
        float max = Max(x, n);
        if (float.IsNegativeInfinity(max))
        {
            new Span<float>(x, n).Clear();
            return;
        }
        float sum = ExpShiftSum(x, n, max);
        Scale(x, 1f / sum, n);
    }

    // x[i] = exp(x[i] − max) in place; returns Σ. exp(−∞) = 0. AVX-512: ExpSingle (≤ 2 ulp); narrower: the runtime's.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float ExpShiftSum(float* x, int n, float max)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated)
        {
            var m = Vector512.Create(max);
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var e = ExpSingle(Vector512.Load(x + i) - m);
                e.Store(x + i);
                acc += e;
            }
            sum += Vector512.Sum(acc);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var m = Vector256.Create(max);
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var e = Vector256.Exp(Vector256.Load(x + i) - m);
                e.Store(x + i);
                acc += e;
            }
            sum += Vector256.Sum(acc);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var m = Vector128.Create(max);
            var acc = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4)
            {
                var e = Vector128.Exp(Vector128.Load(x + i) - m);
                e.Store(x + i);
                acc += e;
            }
            sum += Vector128.Sum(acc);
        }
        // remainder
        for (; i < n; i++)
        {
            float e = MathF.Exp(x[i] - max);
            x[i] = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>log Σ exp(x), stably (max subtracted): the one log-softmax helper — log softmax(x)[i] = x[i] − LogSumExp(x),
    /// NLL = LogSumExp(row) − row[target]. −∞ for an empty x.</summary>
    // x: (V) — one row of logits. Exponentials in float (a GPT-2 vocabulary over a thousand positions is fifty million of
    // them per intervention metric), each lane's partial sum added into a double.
    public static double LogSumExp(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        int i = 0, W = Vector<float>.Count;
        if (x.Length >= W)
        {
            var vmax = new Vector<float>(float.NegativeInfinity);
            for (; i <= x.Length - W; i += W)
            {
                vmax = Vector.Max(vmax, new Vector<float>(x.Slice(i, W)));
            }
            for (int k = 0; k < W; k++)
            {
                max = MathF.Max(max, vmax[k]);
            }
        }
        // remainder
        for (; i < x.Length; i++)
        {
            max = MathF.Max(max, x[i]);
        }
        double sum = 0;
        i = 0;
        if (x.Length >= W)
        {
            var vm = new Vector<float>(max);
            var acc = Vector<float>.Zero;
            for (; i <= x.Length - W; i += W)
            {
                acc += Vector.Exp(new Vector<float>(x.Slice(i, W)) - vm);
            }
            for (int k = 0; k < W; k++)
            {
                sum += acc[k];
            }
        }
        // remainder (fewer than one vector)
        for (; i < x.Length; i++)
        {
            sum += Math.Exp(x[i] - max);
        }
        return max + Math.Log(sum);
    }
}
