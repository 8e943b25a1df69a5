namespace Headwise.Training.Layers;

/// <summary>
/// symmetric_qk — "Reducing the Transformer Architecture to a Minimum" (Kohler et al., 2024): W_K = W_Q per head, so the
/// bilinear form q·k = x_t W_Q W_Qᵀ x_jᵀ is symmetric in (t, j). The projection has q rows only (and v); the keys are a copy
/// of the queries taken before RoPE (with RoPE each side is still rotated by its own position). Attention is then softmax.
/// </summary>
public static class SymmetricQkAttention
{
    // q: (N, NH·HD) → k: (N, NH·HD), k = q
    public static void Forward(ReadOnlySpan<float> q, Span<float> k, int N, int NH, int HD) => q[..(N * NH * HD)].CopyTo(k);

    // undoes k = q: dq += dk
    public static void Backward(ReadOnlySpan<float> dk, Span<float> dq, int N, int NH, int HD)
        => Compute.Kernels.Add(dq[..(N * NH * HD)], dk[..(N * NH * HD)], dq);
}
