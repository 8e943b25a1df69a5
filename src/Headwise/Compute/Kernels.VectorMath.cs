using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// The vector helpers every kernel and every training layer share: inlined exp, dot products, axpy, scale, max.
// x, y, a, b: (n) — plain vectors; the kernels call the pointer forms on rows of their own (T, C) or (S, HD) buffers.
//
// Two dot products, on purpose: the pointer form (inference kernels) keeps four independent FMA chains to hide their
// latency; the span form (training layers) keeps one 8-lane chain with separate multiply and add, the order the
// trainer has always used, so trained weights and the figures quoted in docs/training.md stay bitwise the same.
// Both are serial inside one call, so neither depends on the thread count.
public static unsafe partial class Kernels
{
    // Inlined exp for the AVX-512 paths. The runtime's Vector512.Exp is a non-inlined call that spills its argument and
    // measured ~9 cycles per float here, which made activations and softmax cost as much as a small matmul.
    // x: (8 lanes) — e^x in double. Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, then the degree-11 Taylor
    // polynomial (truncation error r¹²/12! < 5e-15 relative) and 2^n from the exponent bits. Inputs are clamped to
    // [−708, 709] (results stay normal); the activations only need ~1e-12, their outputs are rounded to float.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<double> ExpDouble(Vector512<double> x)
    {
        const double Log2E = 1.4426950408889634, Ln2Hi = 0.693147180369123816490, Ln2Lo = 1.90821492927058770002e-10;
        // the *Native min, max and conversion: the IEEE forms add a fix-up per instruction for NaN and ±0 (and saturation),
        // which cannot matter here — a NaN x is returned as itself below, and n is a whole number well inside int64 —
        // so the bits are the same and each exp is 3 instructions shorter
        var xc = Vector512.MinNative(Vector512.MaxNative(x, Vector512.Create(-708.0)), Vector512.Create(709.0));
        var n = Vector512.Round(xc * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.Create(1.0 / 39916800);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 3628800));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 362880));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 40320));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 5040));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<double>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<double>.One);
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt64Native(n) + Vector512.Create(1023L), 52).AsDouble();
        var result = p * scale;
        // outside the clamp: overflow to +∞, underflow to 0; NaN stays NaN
        result = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(709.0)), Vector512.Create(double.PositiveInfinity), result);
        result = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-708.0)), Vector512<double>.Zero, result);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), result, x);
    }

    // x: (16 lanes) — e^x in float for softmax (x ≤ 0 there). Cody–Waite reduction and the Cephes expf minimax
    // polynomial: ≤ 2 ulp (rel ≤ 2.4e-7). x < −87.3 (including −∞) gives exactly 0, so masked scores vanish; e^x past the
    // float range gives ∞; NaN stays NaN.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ExpSingle(Vector512<float> x)
    {
        // x clamped to [−87.3, 89]: vmaxps/vminps return their second operand when either is NaN, so a NaN x passes through
        var xc = Avx512F.Min(Vector512.Create(89f), Avx512F.Max(Vector512.Create(-87.3f), x));
        var n = Vector512.Round(xc * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = ExpReducedSingle(r);
        // p·2ⁿ by vscalefps: the same rounded product as multiplying by 2ⁿ built from exponent bits (n ≥ −126 here), and
        // ∞ past the float range (n = 128 at x = 89) without a compare and select
        var result = Avx512F.Scale(p, n);
        return Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-87.3f)), Vector512<float>.Zero, result);
    }

    // e^r for a reduced argument |r| ≤ ln 2 / 2: the Cephes expf minimax polynomial (ExpSingle, and the float GELU's lanes)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ExpReducedSingle(Vector512<float> r)
    {
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        return Vector512.FusedMultiplyAdd(p * r, r, r) + Vector512<float>.One;
    }

    // Σ a[i]·b[i] with independent accumulators (FMA latency hiding)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 64 <= n; i += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 32), Vector512.Load(b + i + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 48), Vector512.Load(b + i + 48), s3);
            }
            for (; i + 16 <= n; i += 16)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
            }
            sum = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 32 <= n; i += 32)
            {
                s0 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
                s2 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 16), Vector256.Load(b + i + 16), s2);
                s3 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 24), Vector256.Load(b + i + 24), s3);
            }
            for (; i + 8 <= n; i += 8)
            {
                s0 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            }
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            Vector128<float> s0 = default, s1 = default;
            for (; i + 8 <= n; i += 8)
            {
                s0 = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), s0);
                s1 = Vector128.MultiplyAddEstimate(Vector128.Load(a + i + 4), Vector128.Load(b + i + 4), s1);
            }
            for (; i + 4 <= n; i += 4)
            {
                s0 = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), s0);
            }
            sum = Vector128.Sum(s0 + s1);
        }
        // remainder
        for (; i < n; i++) sum = sum + a[i] * b[i];
        return sum;
    }

    // y += alpha·x
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)), y + i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.MultiplyAddEstimate(va, Vector256.Load(x + i), Vector256.Load(y + i)), y + i);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(alpha);
            for (; i + 4 <= n; i += 4) Vector128.Store(Vector128.MultiplyAddEstimate(va, Vector128.Load(x + i), Vector128.Load(y + i)), y + i);
        }
        // remainder
        for (; i < n; i++) y[i] = y[i] + alpha * x[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Max(float* x, int n)
    {
        int i = 0;
        float max = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var m = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= n; i += 16) m = Vector512.Max(m, Vector512.Load(x + i));
            max = MaxAcross(m.GetLower(), m.GetUpper());
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var m = Vector256.Create(float.NegativeInfinity);
            for (; i + 8 <= n; i += 8) m = Vector256.Max(m, Vector256.Load(x + i));
            max = MaxAcross(m, m);
        }
        // remainder
        for (; i < n; i++) max = Math.Max(max, x[i]);
        return max;
    }

    private static float MaxAcross(Vector256<float> a, Vector256<float> b)
    {
        var m = Vector256.Max(a, b);
        var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
        return Math.Max(Math.Max(m4[0], m4[1]), Math.Max(m4[2], m4[3]));
    }

    // x *= alpha — TensorPrimitives.Multiply: as fast as our loop from HD to V floats (`headwise bench --primitives`),
    // one rounding per element, so the bits are those of any other loop
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Scale(float* x, float alpha, int n) =>
        TensorPrimitives.Multiply(new ReadOnlySpan<float>(x, n), alpha, new Span<float>(x, n));

    /// <summary>Σ a[i]·b[i] in the training layers' order: one Vector&lt;float&gt; accumulator, multiply then add (not
    /// fused), then the lanes, then the tail.</summary>
    // a, b: (n)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length, i = 0;
        Require(b.Length >= n, "Dot: b is shorter than a");
        ref float pa = ref MemoryMarshal.GetReference(a), pb = ref MemoryMarshal.GetReference(b);
        var acc = Vector<float>.Zero;
        for (; i + Vector<float>.Count <= n; i += Vector<float>.Count)
        {
            acc += Vector.LoadUnsafe(ref pa, (nuint)i) * Vector.LoadUnsafe(ref pb, (nuint)i);
        }
        float s = Vector.Sum(acc);
        // remainder
        for (; i < n; i++)
        {
            s += a[i] * b[i];
        }
        return s;
    }

    /// <summary>y[i] += alpha·x[i], multiply then add (not fused), as the training layers have always computed it.</summary>
    // x, y: (n) — TensorPrimitives.MultiplyAdd (x·alpha + y, two roundings per element like our loop, so the same bits),
    // measured several times faster than the Vector<float> loop it replaced (`headwise bench --primitives`)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y) =>
        TensorPrimitives.MultiplyAdd(x, alpha, y[..x.Length], y[..x.Length]);
}
