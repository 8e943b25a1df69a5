namespace Headwise.Training.Layers;

/// <summary>
/// low_rank — after "Low Rank Factorization for Compact Multi-Head Self-Attention" (Mehta et al., 2019): the q, k and v
/// projections of all heads go through one shared rank-R factor, W_qkv = W_up·W_down with W_down (R, C) shared and
/// W_up (QKV, R) holding each head's rows:  u = x·W_downᵀ,  qkv = u·W_upᵀ + b_qkv.  Attention is then softmax. The product
/// is an ordinary projection, so a trained model exports exactly as standard W_Q/W_K/W_V (<see cref="Product"/>).
/// </summary>
public static class LowRankAttention
{
    // x: (N, C)  wDown: (R, C)  wUp: (QKV, R)  bias: (QKV) or empty  u: (N, R) saved  qkv: (N, QKV) out
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> wDown, ReadOnlySpan<float> wUp, ReadOnlySpan<float> bias,
        Span<float> u, Span<float> qkv, int N, int C, int R, int QKV)
    {
        Linear.Forward(x, wDown, default, u, N, C, R);
        Linear.Forward(u, wUp, bias, qkv, N, R, QKV);
    }

    // dqkv: (N, QKV) → du (N, R) scratch, dx (N, C) overwritten; dwUp, dbias, dwDown +=
    public static void Backward(ReadOnlySpan<float> dqkv, ReadOnlySpan<float> x, ReadOnlySpan<float> u, ReadOnlySpan<float> wDown,
        ReadOnlySpan<float> wUp, Span<float> du, Span<float> dx, Span<float> dwDown, Span<float> dwUp, Span<float> dbias,
        Span<float> scratchT, Span<float> scratchP, int N, int C, int R, int QKV)
    {
        Linear.Backward(dqkv, u, wUp, du, dwUp, dbias, scratchT, scratchP, N, R, QKV);
        Linear.Backward(du, x, wDown, dx, dwDown, default, scratchT, scratchP, N, C, R);
    }

    /// <summary>The full projection W_up·W_down: (QKV, C), row-major (nn.Linear layout), in double then rounded.</summary>
    public static float[] Product(ReadOnlySpan<float> wUp, ReadOnlySpan<float> wDown, int QKV, int R, int C)
    {
        var w = new float[QKV * C];
        for (int o = 0; o < QKV; o++)
        {
            for (int c = 0; c < C; c++)
            {
                double s = 0;
                for (int r = 0; r < R; r++) s += (double)wUp[o * R + r] * wDown[r * C + c];
                w[o * C + c] = (float)s;
            }
        }
        return w;
    }
}
