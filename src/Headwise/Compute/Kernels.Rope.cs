using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Rotary position embedding in place: x: (T, NH, HD)  positions: (T)  cos, sin: (maxPos, R/2), R = rotary dims ≤ HD.
//
// Each rotated value is x0·c − x1·s or x1·c + x0·s with separately rounded products, as in the scalar twin,
// so the vector paths are bit-exact (no FMA contraction on purpose).
public static unsafe partial class Kernels
{
    /// <summary>Rotary position embedding in place on the first <paramref name="rotaryDims"/> dims of each head.</summary>
    // x: (T, NH, HD)  positions: (T)  cos, sin: (maxPos, R/2)
    public static void Rope(Span<float> x, ReadOnlySpan<int> positions, int T, int NH, int HD, int rotaryDims,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeLayout layout)
    {
        Require(rotaryDims % 2 == 0 && rotaryDims <= HD, "Rope: rotaryDims must be even and ≤ head size");
        Require(T >= 0 && NH >= 0 && rotaryDims >= 0, "Rope: negative dimension");
        Require(x.Length >= (long)T * NH * HD && positions.Length >= T, "Rope: x or positions too short");
        int half = rotaryDims / 2;
        if (half == 0) return;
        int maxPos = Math.Min(cos.Length, sin.Length) / half;
        fixed (float* px = x, pc = cos, ps = sin)
        {
            for (int t = 0; t < T; t++)
            {
                int pos = positions[t];
                if ((uint)pos >= (uint)maxPos)
                {
                    throw new ArgumentOutOfRangeException(nameof(positions), $"Rope: position {pos} is outside the cos/sin tables ({maxPos} positions)");
                }
                float* c = pc + (long)pos * half, s = ps + (long)pos * half;
                for (int h = 0; h < NH; h++)
                {
                    float* v = px + ((long)t * NH + h) * HD;
                    if (layout == RopeLayout.RotateHalf) RotateHalf(v, v + half, c, s, half);
                    else RotateInterleaved(v, c, s, half);
                }
            }
        }
    }

    // pairs (i, i + R/2): two contiguous halves
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateHalf(float* a, float* b, float* c, float* s, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                Vector512<float> x0 = Vector512.Load(a + i), x1 = Vector512.Load(b + i), cv = Vector512.Load(c + i), sv = Vector512.Load(s + i);
                (x0 * cv - x1 * sv).Store(a + i);
                (x1 * cv + x0 * sv).Store(b + i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                Vector256<float> x0 = Vector256.Load(a + i), x1 = Vector256.Load(b + i), cv = Vector256.Load(c + i), sv = Vector256.Load(s + i);
                (x0 * cv - x1 * sv).Store(a + i);
                (x1 * cv + x0 * sv).Store(b + i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 4 <= n; i += 4)
            {
                Vector128<float> x0 = Vector128.Load(a + i), x1 = Vector128.Load(b + i), cv = Vector128.Load(c + i), sv = Vector128.Load(s + i);
                (x0 * cv - x1 * sv).Store(a + i);
                (x1 * cv + x0 * sv).Store(b + i);
            }
        }
        // remainder
        for (; i < n; i++)
        {
            float x0 = a[i], x1 = b[i];
            a[i] = x0 * c[i] - x1 * s[i];
            b[i] = x1 * c[i] + x0 * s[i];
        }
    }

    // pairs (2i, 2i + 1): out = x·[c0 c0 c1 c1 …] + swap(x)·[−s0 s0 −s1 s1 …]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateInterleaved(float* v, float* c, float* s, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var dup = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            var swap = Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
            var sign = Vector512.Create(-1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f);
            for (; i + 8 <= n; i += 8)
            {
                var x = Vector512.Load(v + 2 * i);
                var cv = Vector512.Shuffle(Vector256.Load(c + i).ToVector512Unsafe(), dup);
                var sv = Vector512.Shuffle(Vector256.Load(s + i).ToVector512Unsafe(), dup) * sign;
                (x * cv + Vector512.Shuffle(x, swap) * sv).Store(v + 2 * i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var dup = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
            var swap = Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6);
            var sign = Vector256.Create(-1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f);
            for (; i + 4 <= n; i += 4)
            {
                var x = Vector256.Load(v + 2 * i);
                var cv = Vector256.Shuffle(Vector128.Load(c + i).ToVector256Unsafe(), dup);
                var sv = Vector256.Shuffle(Vector128.Load(s + i).ToVector256Unsafe(), dup) * sign;
                (x * cv + Vector256.Shuffle(x, swap) * sv).Store(v + 2 * i);
            }
        }
        // remainder
        for (; i < n; i++)
        {
            float x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * c[i] - x1 * s[i];
            v[2 * i + 1] = x1 * c[i] + x0 * s[i];
        }
    }
}
