using System.Runtime.InteropServices;
using Headwise.Compute;

namespace Headwise.Loading;

/// <summary>
/// A float32 weight tensor the kernels can read: either a view straight into a memory-mapped F32 checkpoint (no copy),
/// or a pinned array converted once from F16/BF16. Valid while the <see cref="WeightSet"/> that produced it is open.
/// </summary>
public sealed unsafe class Weight
{
    private readonly float[]? _owned; // keeps converted data alive; pinned, so Pointer stays valid

    public string Name { get; }
    public int[] Shape { get; }
    public int Length { get; }
    public float* Pointer { get; }

    /// <summary>True when the data lives in a file mapping (not copied).</summary>
    public bool IsMapped => _owned is null;

    internal Weight(string name, int[] shape, float* pointer, float[]? owned)
    {
        Name = name;
        Shape = shape;
        Length = shape.Aggregate(1, (a, b) => checked(a * b));
        Pointer = pointer;
        _owned = owned;
    }

    public ReadOnlySpan<float> Span => new(Pointer, Length);

    private PackedWeight? _packed;

    /// <summary>This weight packed for the GEMM as a (<paramref name="C"/> → <paramref name="OC"/>) linear map stored in
    /// <paramref name="layout"/>: packed on the first call and kept for the weight's lifetime (<see cref="PackedBytes"/>).
    /// <paramref name="created"/> is true when this call did the packing.</summary>
    public PackedWeight Packed(int C, int OC, WeightLayout layout, out bool created)
    {
        var packed = _packed;
        created = false;
        if (packed is null || !packed.Matches(C, OC, layout))
        {
            // a weight has one role in a forward; a second shape (never seen in the families) replaces the first
            packed = Kernels.PackWeight(Span, C, OC, layout);
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
