using Headwise.Compute;

namespace Headwise.Models;

/// <summary>
/// Slicing between a checkpoint's projections and the canonical per-head layout (<see cref="AttentionWeights"/>), both ways:
/// what every family file (and any other writer of checkpoints, such as training's export) uses to map its tensors.
/// </summary>
public static class CanonicalLayout
{
    /// <summary>
    /// Reads <paramref name="heads"/> heads of HD output features from a projection with <paramref name="outFeatures"/> outputs of
    /// C inputs, as (heads, C, HD): head h's feature d is output feature <paramref name="first"/> + h·<paramref name="headStride"/> + d.
    /// <paramref name="layout"/> OutIn is nn.Linear's (out, C); InOut is Conv1D's (C, out).
    /// </summary>
    public static float[] ReadHeads(ReadOnlySpan<float> w, WeightLayout layout, int outFeatures, int heads, int first, int headStride, int C, int HD)
    {
        var canonical = new float[heads * C * HD];
        for (int h = 0; h < heads; h++)
        {
            for (int c = 0; c < C; c++)
            {
                for (int d = 0; d < HD; d++)
                {
                    canonical[(h * C + c) * HD + d] = w[StorageIndex(layout, first + h * headStride + d, c, C, outFeatures)];
                }
            }
        }
        return canonical;
    }

    /// <summary>The inverse of <see cref="ReadHeads"/>: writes canonical (heads, C, HD) into a projection's storage.</summary>
    public static void WriteHeads(ReadOnlySpan<float> canonical, Span<float> w, WeightLayout layout, int outFeatures, int heads, int first, int headStride, int C, int HD)
    {
        for (int h = 0; h < heads; h++)
        {
            for (int c = 0; c < C; c++)
            {
                for (int d = 0; d < HD; d++)
                {
                    w[StorageIndex(layout, first + h * headStride + d, c, C, outFeatures)] = canonical[(h * C + c) * HD + d];
                }
            }
        }
    }

    // where output feature f of input c sits: nn.Linear (out, C) or Conv1D (C, out)
    private static int StorageIndex(WeightLayout layout, int f, int c, int C, int outFeatures) =>
        layout == WeightLayout.OutIn ? f * C + c : c * outFeatures + f;

    /// <summary>(heads, HD) of a bias vector: head h's element d is <paramref name="first"/> + h·<paramref name="headStride"/> + d.</summary>
    public static float[] ReadHeadBias(ReadOnlySpan<float> b, int heads, int first, int headStride, int HD)
    {
        var dst = new float[heads * HD];
        for (int h = 0; h < heads; h++)
        {
            b.Slice(first + h * headStride, HD).CopyTo(dst.AsSpan(h * HD, HD));
        }
        return dst;
    }

    /// <summary>The inverse of <see cref="ReadHeadBias"/>.</summary>
    public static void WriteHeadBias(ReadOnlySpan<float> canonical, Span<float> b, int heads, int first, int headStride, int HD)
    {
        for (int h = 0; h < heads; h++)
        {
            canonical.Slice(h * HD, HD).CopyTo(b.Slice(first + h * headStride, HD));
        }
    }

    /// <summary>The (cols, rows) transpose of a row-major (rows, cols) matrix: nn.Linear (out, in) ↔ x·W (in, out).</summary>
    public static float[] Transposed(ReadOnlySpan<float> a, int rows, int cols)
    {
        var t = new float[a.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
