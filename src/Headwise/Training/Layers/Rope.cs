using Headwise.Compute;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>Rotary position embedding, Hugging Face rotate-half layout, over whole heads: pairs (i, i + HD/2) rotate by pos·θ_i.</summary>
public static class Rope
{
    // x: (N, H, HD) in place  positions: (N)  cos, sin: (maxPos, HD/2) from Kernels.RopeTables
    public static void Forward(Span<float> x, ReadOnlySpan<int> positions, int N, int H, int HD, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
        => K.Rope(x, positions, N, H, HD, HD, cos, sin, RopeLayout.RotateHalf);

    // dx: (N, H, HD) in place: the rotation is orthogonal, so its backward is the rotation by −θ
    public static void Backward(Span<float> dx, ReadOnlySpan<int> positions, int N, int H, int HD, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = HD / 2;
        for (int n = 0; n < N; n++)
        {
            var c = cos.Slice(positions[n] * half, half);
            var s = sin.Slice(positions[n] * half, half);
            for (int h = 0; h < H; h++)
            {
                var v = dx.Slice((n * H + h) * HD, HD);
                for (int i = 0; i < half; i++)
                {
                    float d0 = v[i], d1 = v[i + half];
                    // undoes: y0 = x0·c − x1·s,  y1 = x1·c + x0·s
                    v[i] = d0 * c[i] + d1 * s[i];
                    v[i + half] = d1 * c[i] - d0 * s[i];
                }
            }
        }
    }
}
