namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // q: (T, NH, W)  rows: (S, W)  z: (T, NH, R) with R = W − valueOffset.
    // Every head attends over the same rows (one shared key "head" of W floats); the value is each row's last R floats.
    // The three passes of Attention with one kv head, then the weighted sum over the value part only.
    public static void LatentAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> rows, Span<float> z,
        int T, int S, int NH, int W, int valueOffset, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        int R = W - valueOffset;
        var pattern = new float[NH * T * S];
        AttentionScores(q, rows, pattern, T, S, NH, 1, W, pastLen, scale, keyMask, window);
        MaskedSoftmax(pattern, NH * T, S);
        for (int t = 0; t < T; t++)
        {
            for (int h = 0; h < NH; h++)
            {
                for (int r = 0; r < R; r++)
                {
                    float sum = 0;
                    for (int j = 0; j < S; j++) sum += pattern[(h * T + t) * S + j] * rows[j * W + valueOffset + r];
                    z[(t * NH + h) * R + r] = sum;
                }
            }
        }
    }
}
