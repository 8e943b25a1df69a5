using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Row gathers, residual adds and checkpoint-format conversions.
// table: (V, C)  ids: (T)  out: (T, C);  a, b, out: (N);  src (F16 or BF16 bits), dst: (N)
public static unsafe partial class Kernels
{
    /// <summary>Gathers rows of an embedding table.</summary>
    // table: (V, C)  ids: (T)  out: (T, C)
    public static void Embedding(ReadOnlySpan<float> table, ReadOnlySpan<int> ids, Span<float> output, int C)
    {
        Require(C >= 0 && output.Length >= (long)ids.Length * C, "Embedding: out is shorter than T·C");
        int vocab = C == 0 ? int.MaxValue : table.Length / C;
        for (int t = 0; t < ids.Length; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"Embedding: token id {id} at position {t} is outside the table (V = {vocab})");
            }
            // a row copy is a memmove, already vectorized by the runtime
            table.Slice(id * C, C).CopyTo(output.Slice(t * C, C));
        }
    }

    /// <summary>out = a + b (residual add). out may be a or b (the same start), not a partial overlap.</summary>
    // a, b, out: (N) — TensorPrimitives.Add: as fast as our loop (`headwise bench --primitives`), and one rounding per
    // element, so the bits are the same in any order or vector width.
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> output)
    {
        Require(b.Length >= a.Length && output.Length >= a.Length, "Add: b or out is shorter than a");
        int n = a.Length;
        TensorPrimitives.Add(a, b[..n], output[..n]);
    }

    /// <summary>IEEE binary16 → float32.</summary>
    // src, dst: (N)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void HalfToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        Require(dst.Length >= src.Length, "HalfToSingle: dst is shorter than src");
        int n = src.Length;
        fixed (ushort* ps = src)
        fixed (float* pd = dst)
        {
            // Exact bit trick (no F16C in the BCL): shift exponent+mantissa into float position and multiply by 2^112,
            // which rebiases normals and turns half subnormals into the right float; Inf/NaN get an all-ones exponent.
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                var magic = Vector512.Create(0x77800000u).AsSingle(); // 2^112
                for (; i + 32 <= n; i += 32)
                {
                    var (lo, hi) = Vector512.Widen(Vector512.Load(ps + i));
                    HalfBits512(lo, magic).Store(pd + i);
                    HalfBits512(hi, magic).Store(pd + i + 16);
                }
            }
            if (Vector256.IsHardwareAccelerated)
            {
                var magic = Vector256.Create(0x77800000u).AsSingle();
                for (; i + 16 <= n; i += 16)
                {
                    var (lo, hi) = Vector256.Widen(Vector256.Load(ps + i));
                    HalfBits256(lo, magic).Store(pd + i);
                    HalfBits256(hi, magic).Store(pd + i + 8);
                }
            }
            if (Vector128.IsHardwareAccelerated)
            {
                var magic = Vector128.Create(0x77800000u).AsSingle();
                for (; i + 8 <= n; i += 8)
                {
                    var (lo, hi) = Vector128.Widen(Vector128.Load(ps + i));
                    HalfBits128(lo, magic).Store(pd + i);
                    HalfBits128(hi, magic).Store(pd + i + 4);
                }
            }
            // remainder
            for (; i < n; i++) pd[i] = (float)BitConverter.UInt16BitsToHalf(ps[i]);
        }
    }

    private static Vector512<float> HalfBits512(Vector512<uint> h, Vector512<float> magic)
    {
        var em = h & Vector512.Create(0x7fffu);
        var sign = (h & Vector512.Create(0x8000u)) << 16;
        var finite = (Vector512.ShiftLeft(em, 13).AsSingle() * magic).AsUInt32();
        var special = Vector512.ShiftLeft(em, 13) | Vector512.Create(0x7f800000u);
        var bits = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7c00u)), special, finite);
        return (bits | sign).AsSingle();
    }

    private static Vector256<float> HalfBits256(Vector256<uint> h, Vector256<float> magic)
    {
        var em = h & Vector256.Create(0x7fffu);
        var sign = (h & Vector256.Create(0x8000u)) << 16;
        var finite = (Vector256.ShiftLeft(em, 13).AsSingle() * magic).AsUInt32();
        var special = Vector256.ShiftLeft(em, 13) | Vector256.Create(0x7f800000u);
        var bits = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(em, Vector256.Create(0x7c00u)), special, finite);
        return (bits | sign).AsSingle();
    }

    private static Vector128<float> HalfBits128(Vector128<uint> h, Vector128<float> magic)
    {
        var em = h & Vector128.Create(0x7fffu);
        var sign = (h & Vector128.Create(0x8000u)) << 16;
        var finite = (Vector128.ShiftLeft(em, 13).AsSingle() * magic).AsUInt32();
        var special = Vector128.ShiftLeft(em, 13) | Vector128.Create(0x7f800000u);
        var bits = Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(em, Vector128.Create(0x7c00u)), special, finite);
        return (bits | sign).AsSingle();
    }

    /// <summary>bfloat16 → float32.</summary>
    // src, dst: (N)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        Require(dst.Length >= src.Length, "BFloat16ToSingle: dst is shorter than src");
        int n = src.Length;
        fixed (ushort* ps = src)
        fixed (float* pd = dst)
        {
            // exact: the bf16 bits are the high half of the float
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i + 32 <= n; i += 32)
                {
                    var (lo, hi) = Vector512.Widen(Vector512.Load(ps + i));
                    Vector512.ShiftLeft(lo, 16).AsSingle().Store(pd + i);
                    Vector512.ShiftLeft(hi, 16).AsSingle().Store(pd + i + 16);
                }
            }
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 16 <= n; i += 16)
                {
                    var (lo, hi) = Vector256.Widen(Vector256.Load(ps + i));
                    Vector256.ShiftLeft(lo, 16).AsSingle().Store(pd + i);
                    Vector256.ShiftLeft(hi, 16).AsSingle().Store(pd + i + 8);
                }
            }
            if (Vector128.IsHardwareAccelerated)
            {
                for (; i + 8 <= n; i += 8)
                {
                    var (lo, hi) = Vector128.Widen(Vector128.Load(ps + i));
                    Vector128.ShiftLeft(lo, 16).AsSingle().Store(pd + i);
                    Vector128.ShiftLeft(hi, 16).AsSingle().Store(pd + i + 4);
                }
            }
            // remainder
            for (; i < n; i++) pd[i] = BitConverter.Int32BitsToSingle(ps[i] << 16);
        }
    }
}
