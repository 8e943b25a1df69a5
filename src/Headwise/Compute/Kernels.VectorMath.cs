using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Inlined exp for the AVX-512 paths. The runtime's Vector512.Exp is a non-inlined call that spills its argument and
// measured ~9 cycles per float here, which made activations and softmax cost as much as a small matmul.
public static partial class Kernels
{
    // x: (8 lanes) — e^x in double. Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, then the degree-11 Taylor
    // polynomial (truncation error r¹²/12! < 5e-15 relative) and 2^n from the exponent bits. Inputs are clamped to
    // [−708, 709] (results stay normal); the activations only need ~1e-12, their outputs are rounded to float.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<double> ExpDouble(Vector512<double> x)
    {
        const double Log2E = 1.4426950408889634, Ln2Hi = 0.693147180369123816490, Ln2Lo = 1.90821492927058770002e-10;
        var xc = Vector512.Min(Vector512.Max(x, Vector512.Create(-708.0)), Vector512.Create(709.0));
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
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt64(n) + Vector512.Create(1023L), 52).AsDouble();
        var result = p * scale;
        // outside the clamp: overflow to +∞, underflow to 0; NaN stays NaN
        result = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(709.0)), Vector512.Create(double.PositiveInfinity), result);
        result = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-708.0)), Vector512<double>.Zero, result);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), result, x);
    }

    // x: (16 lanes) — e^x in float for softmax (x ≤ 0 there). Cody–Waite reduction and the Cephes expf minimax
    // polynomial: ≤ 2 ulp (rel ≤ 2.4e-7). x < −87.3 (including −∞) gives exactly 0, so masked scores vanish.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ExpSingle(Vector512<float> x)
    {
        var xc = Vector512.Min(Vector512.Max(x, Vector512.Create(-87.3f)), Vector512.Create(88.3f));
        var n = Vector512.Round(xc * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        p = Vector512.FusedMultiplyAdd(p * r, r, r) + Vector512<float>.One;
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        var result = p * scale;
        result = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(88.3f)), Vector512.Create(float.PositiveInfinity), result);
        result = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-87.3f)), Vector512<float>.Zero, result);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), result, x);
    }
}
