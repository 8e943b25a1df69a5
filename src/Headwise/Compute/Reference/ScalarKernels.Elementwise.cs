namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // table: (V, C)  ids: (T)  out: (T, C)
    public static void Embedding(ReadOnlySpan<float> table, ReadOnlySpan<int> ids, Span<float> output, int C)
    {
        for (int t = 0; t < ids.Length; t++)
        {
            table.Slice(ids[t] * C, C).CopyTo(output.Slice(t * C, C));
        }
    }

    // out = a + b
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> output)
    {
        for (int i = 0; i < a.Length; i++) output[i] = a[i] + b[i];
    }

    // IEEE half → float (exact)
    public static void HalfToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(src[i]);
    }

    // bfloat16 → float (exact: the bf16 bits are the high half of the float)
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = BitConverter.Int32BitsToSingle(src[i] << 16);
    }
}
