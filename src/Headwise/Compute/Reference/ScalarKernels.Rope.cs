namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // x: (T, NH, HD) rotated in place  positions: (T)  cos, sin: (maxPos, R/2) with R = rotaryDims ≤ HD
    public static void Rope(Span<float> x, ReadOnlySpan<int> positions, int T, int NH, int HD, int rotaryDims,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeLayout layout)
    {
        int half = rotaryDims / 2;
        for (int t = 0; t < T; t++)
        {
            var c = cos.Slice(positions[t] * half, half);
            var s = sin.Slice(positions[t] * half, half);
            for (int h = 0; h < NH; h++)
            {
                var v = x.Slice((t * NH + h) * HD, HD);
                for (int i = 0; i < half; i++)
                {
                    // RotateHalf (HF): pairs (i, i + R/2). Interleaved (llama2.c, GPT-J): pairs (2i, 2i + 1).
                    int a = layout == RopeLayout.RotateHalf ? i : 2 * i;
                    int b = layout == RopeLayout.RotateHalf ? i + half : 2 * i + 1;
                    float x0 = v[a], x1 = v[b];
                    v[a] = x0 * c[i] - x1 * s[i];
                    v[b] = x1 * c[i] + x0 * s[i];
                }
            }
        }
    }
}
