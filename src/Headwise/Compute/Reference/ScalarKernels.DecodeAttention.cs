namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // The decode path (Kernels.DecodeAttention.cs) computes each (head, query) row exactly as the blocked kernel does — keys
    // in blocks of 32 with an online softmax — only reading the keys and values in place: its algorithm is the blocked
    // kernel's, so its twin is that twin, per (head h, query t) row.
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty. Query t sits at key index pastLen + t.
    public static void DecodeAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window, AttentionSparsity sparsity) =>
        BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, pastLen, scale, keyMask, window, sparsity);
}
