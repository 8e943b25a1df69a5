using System.Runtime.InteropServices;
using Headwise.Compute;

namespace Headwise.Loading;

/// <summary>
/// A float32 weight tensor the kernels can read: either a view straight into a memory-mapped F32 checkpoint (no copy),
/// a pinned float32 array, or the F16/BF16 bits of a mapped checkpoint, converted to a pinned float32 array the first
/// time anything reads <see cref="Span"/>. A half-precision weight that only the prepacked GEMM reads is packed straight
/// from its bits (<see cref="Packed"/>) and never converted: one float32 copy in memory, the panels.
/// Valid while the <see cref="WeightSet"/> that produced it is open.
/// </summary>
public sealed unsafe class Weight
{
    private float[]? _owned;        // converted or copied data; pinned, so the pointer stays valid
    private float* _pointer;        // the float32 values; null while a half-precision weight is not converted yet
    private readonly ushort* _half; // F16/BF16 bits in the file mapping, or null
    private readonly bool _bfloat16;

    public string Name { get; }
    public int[] Shape { get; }
    public int Length { get; }

    /// <summary>The float32 values (a half-precision weight is converted on first use).</summary>
    public float* Pointer => _pointer != null ? _pointer : Convert();

    /// <summary>True when the stored values are F16 or BF16 bits (converted to float32 only when <see cref="Span"/> is read).</summary>
    public bool IsHalfPrecision => _half != null;

    /// <summary>True when the data lives in a file mapping as float32 (not copied).</summary>
    public bool IsMapped => _owned is null && _half == null;

    /// <summary>Bytes of float32 values this weight owns: a converted F16/BF16 weight once read as float32, a copied one.</summary>
    public long ConvertedBytes => Volatile.Read(ref _owned) is { } owned ? owned.LongLength * sizeof(float) : 0;

    internal Weight(string name, int[] shape, float* pointer, float[]? owned)
    {
        Name = name;
        Shape = shape;
        Length = shape.Aggregate(1, (a, b) => checked(a * b));
        _pointer = pointer;
        _owned = owned;
    }

    // a half-precision weight read lazily from the mapped bits (F16, or BF16 when bfloat16)
    internal Weight(string name, int[] shape, ushort* half, bool bfloat16)
    {
        Name = name;
        Shape = shape;
        Length = shape.Aggregate(1, (a, b) => checked(a * b));
        _half = half;
        _bfloat16 = bfloat16;
    }

    public ReadOnlySpan<float> Span => new(Pointer, Length);

    // the one conversion of a half-precision weight, on its first float32 read (threads racing here agree on one array)
    private float* Convert()
    {
        var dst = GC.AllocateUninitializedArray<float>(Length, pinned: true);
        ConvertRange(0, dst);
        if (Interlocked.CompareExchange(ref _owned, dst, null) is { } other)
        {
            dst = other;
        }
        float* p = Unsafe_AsPointer(dst);
        _pointer = p;
        return p;
    }

    // values [start, start + dst.Length) of a half-precision weight, converted (exactly) into dst
    private void ConvertRange(long start, Span<float> dst)
    {
        var bits = new ReadOnlySpan<ushort>(_half + start, dst.Length);
        if (_bfloat16) Kernels.BFloat16ToSingle(bits, dst); else Kernels.HalfToSingle(bits, dst);
    }

    /// <summary>Rows <paramref name="ids"/> of this (V, C) table into <paramref name="output"/> (an embedding lookup), read
    /// from the half-precision bits while the weight is not converted: the same values without converting the table.</summary>
    // this: (V, C)  ids: (T)  out: (T, C)
    public void GatherRows(ReadOnlySpan<int> ids, Span<float> output, int C)
    {
        if (_pointer != null || _half == null)
        {
            Kernels.Embedding(Span, ids, output, C);
            return;
        }
        if (C < 0 || output.Length < (long)ids.Length * C)
        {
            throw new ArgumentException($"GatherRows: out is shorter than T·C for weight '{Name}'");
        }
        int vocab = C == 0 ? int.MaxValue : Length / C;
        for (int t = 0; t < ids.Length; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"Embedding: token id {id} at position {t} is outside the table (V = {vocab})");
            }
            ConvertRange((long)id * C, output.Slice(t * C, C));
        }
    }

    private PackedWeight? _packed;

    /// <summary>This weight packed for the GEMM as a (<paramref name="C"/> → <paramref name="OC"/>) linear map stored in
    /// <paramref name="layout"/>: packed on the first call and kept for the weight's lifetime (<see cref="PackedBytes"/>).
    /// A half-precision weight not yet converted is packed from its bits (the same panels). <paramref name="created"/> is
    /// true when this call did the packing.</summary>
    public PackedWeight Packed(int C, int OC, WeightLayout layout, out bool created)
    {
        var packed = _packed;
        created = false;
        if (packed is null || !packed.Matches(C, OC, layout))
        {
            // a weight has one role in a forward; a second shape (never seen in the families) replaces the first
            packed = _pointer == null && _half != null
                ? Kernels.PackWeight(new ReadOnlySpan<ushort>(_half, Length), _bfloat16, C, OC, layout)
                : Kernels.PackWeight(Span, C, OC, layout);
            _packed = packed;
            created = true;
        }
        return packed;
    }

    /// <summary>Bytes of the packed copy made by <see cref="Packed"/> (0 while there is none).</summary>
    public long PackedBytes => _packed?.Bytes ?? 0;

    /// <summary>Wraps a float array (tests, hand-built models, edited weights). The array is pinned for the weight's lifetime.</summary>
    public static Weight FromArray(string name, float[] data, params int[] shape)
    {
        if (shape.Aggregate(1L, (a, b) => a * b) != data.Length)
        {
            throw new ArgumentException($"weight '{name}': {data.Length} values do not fill shape [{string.Join(", ", shape)}]");
        }
        var pinned = GC.AllocateUninitializedArray<float>(data.Length, pinned: true);
        data.CopyTo(pinned, 0);
        return new Weight(name, shape, (float*)Unsafe_AsPointer(pinned), pinned);
    }

    internal static float* Unsafe_AsPointer(float[] pinnedArray) =>
        (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinnedArray));

    /// <summary>A copy of the values (for analyses that edit or factor weights).</summary>
    public float[] ToArray() => Span.ToArray();

    public override string ToString() => $"{Name} [{string.Join(", ", Shape)}]";
}
