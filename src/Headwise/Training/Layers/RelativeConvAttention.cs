namespace Headwise.Training.Layers;

/// <summary>
/// relative_conv — after "RCMHA: Relative Convolutional Multi-Head Attention for Natural Language Modelling" (Sugiharto
/// et al., 2023): relative position information through depth-wise convolutions of the projections along time. Each channel
/// c of the q, k and v projections (all rows of w_qkv) gets its own causal kernel of KW taps w[c, 0..KW):
///   y[t, c] = Σ_{i=0}^{min(KW−1, t)} w[c, i]·x[t − i, c]      (within each sequence; zero padding before t = 0)
/// then attention is softmax on the convolved q, k, v (RoPE, with llama, after the convolution). The kernels start as the
/// identity (w[c, 0] = 1, the other taps 0), so training starts from plain softmax attention.
/// </summary>
public static class RelativeConvAttention
{
    // x: (B, T, CH)  w: (CH, KW)  y: (B, T, CH) out
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, int B, int T, int CH, int KW)
    {
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < T; t++)
            {
                var yt = y.Slice((b * T + t) * CH, CH);
                for (int c = 0; c < CH; c++)
                {
                    float s = 0;
                    for (int i = 0; i < KW && i <= t; i++) s += w[c * KW + i] * x[(b * T + t - i) * CH + c];
                    yt[c] = s;
                }
            }
        }
    }

    // dy: (B, T, CH) → dx (B, T, CH) overwritten, dw (CH, KW) +=
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> dx, Span<float> dw,
        int B, int T, int CH, int KW)
    {
        dx[..(B * T * CH)].Clear();
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < T; t++)
            {
                for (int c = 0; c < CH; c++)
                {
                    // undoes y[t, c] = Σ_i w[c, i]·x[t − i, c]
                    float g = dy[(b * T + t) * CH + c];
                    for (int i = 0; i < KW && i <= t; i++)
                    {
                        dx[(b * T + t - i) * CH + c] += w[c * KW + i] * g;
                        dw[c * KW + i] += x[(b * T + t - i) * CH + c] * g;
                    }
                }
            }
        }
    }
}
