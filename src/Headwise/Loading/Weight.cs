using System.Runtime.InteropServices;

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
