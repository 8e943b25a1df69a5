namespace Headwise.Training.Layers;

/// <summary>
/// collapsed_qk — "Reducing the Transformer Architecture to a Minimum" (Kohler et al., 2024): W_Q·W_Kᵀ collapsed into one
/// C × C matrix W_QK,h per head, score = x_t W_QK,h x_jᵀ / √C. Implemented as q_h = x·W_QK,hᵀ (the projection's q rows,
/// (NH·C, C)) against k_h = x, the block's normalised input, for every head (query/key head size C); attention is then
/// softmax. One matrix of C² per head replaces 2·C·HD, so the variant has more parameters than softmax unless HD = C/2.
/// </summary>
public static class CollapsedQkAttention
{
    // x: (N, C) → k: (N, NH, C), every head's key is x
    public static void Forward(ReadOnlySpan<float> x, Span<float> k, int N, int NH, int C)
    {
        for (int n = 0; n < N; n++)
        {
            for (int h = 0; h < NH; h++) x.Slice(n * C, C).CopyTo(k.Slice((n * NH + h) * C, C));
        }
    }

    // undoes k_h = x: dx += Σ_h dk_h
    public static void Backward(ReadOnlySpan<float> dk, Span<float> dx, int N, int NH, int C)
    {
        for (int n = 0; n < N; n++)
        {
            var d = dx.Slice(n * C, C);
            for (int h = 0; h < NH; h++) Compute.Kernels.Add(d, dk.Slice((n * NH + h) * C, C), d);
        }
    }
}
