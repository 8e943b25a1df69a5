using Headwise.Kernels.Reference;

namespace Headwise.Kernels;

public static partial class Kernels
{
    /// <summary>Gathers rows of an embedding table.</summary>
    // table: (V, C)  ids: (T)  out: (T, C)
    public static void Embedding(ReadOnlySpan<float> table, ReadOnlySpan<int> ids, Span<float> output, int C)
        => ScalarKernels.Embedding(table, ids, output, C);

    /// <summary>out = a + b (residual add). out may alias a.</summary>
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> output) => ScalarKernels.Add(a, b, output);

    /// <summary>IEEE binary16 → float32.</summary>
    public static void HalfToSingle(ReadOnlySpan<ushort> src, Span<float> dst) => ScalarKernels.HalfToSingle(src, dst);

    /// <summary>bfloat16 → float32.</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> src, Span<float> dst) => ScalarKernels.BFloat16ToSingle(src, dst);
}
