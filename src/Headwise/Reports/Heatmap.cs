namespace Headwise.Reports;

/// <summary>An RGB image, 8 bits per channel, rows top to bottom: <c>Pixels[(y * Width + x) * 3 + c]</c>.</summary>
public sealed record RgbImage(int Width, int Height, byte[] Pixels)
{
    public (byte R, byte G, byte B) this[int x, int y] => (Pixels[(y * Width + x) * 3], Pixels[(y * Width + x) * 3 + 1], Pixels[(y * Width + x) * 3 + 2]);
}

/// <summary>
/// Matrices as coloured cells: the layer × head grid of a score and a T × T attention pattern. The colours come from
/// <see cref="Viridis"/>, a perceptually uniform map (dark purple = low, yellow = high) that survives greyscale printing.
/// The HTML report uses the same anchors, so a PNG and the page show a head in the same colour.
/// </summary>
public static class Heatmap
{
    /// <summary>Nine evenly spaced colours of matplotlib's viridis, from 0 (#440154) to 1 (#fde725); linear in between.</summary>
    public static IReadOnlyList<string> ViridisAnchors { get; } =
        ["#440154", "#472c7a", "#3b518b", "#2c718e", "#21908d", "#27ad81", "#5cc863", "#aadc32", "#fde725"];

    private static readonly (byte R, byte G, byte B)[] s_anchors = ViridisAnchors.Select(Parse).ToArray();

    /// <summary>Background of masked cells (keys after the query, which a causal model never attends).</summary>
    public static readonly (byte R, byte G, byte B) Masked = (0xf2, 0xf2, 0xf2);

    /// <summary>The colour of <paramref name="t"/> in [0, 1] (clamped; NaN is the low end).</summary>
    public static (byte R, byte G, byte B) Viridis(double t)
    {
        if (double.IsNaN(t) || t <= 0)
        {
            return s_anchors[0];
        }
        if (t >= 1)
        {
            return s_anchors[^1];
        }
        double x = t * (s_anchors.Length - 1);
        int i = (int)x;
        double f = x - i;
        var (a, b) = (s_anchors[i], s_anchors[i + 1]);
        return (Lerp(a.R, b.R, f), Lerp(a.G, b.G, f), Lerp(a.B, b.B, f));
    }

    /// <summary>
    /// Paints a rows × cols matrix (row-major <paramref name="values"/>) as square cells of <paramref name="cellPx"/> pixels,
    /// mapping [min, max] onto viridis (min = max paints everything at the low end). Cells where <paramref name="masked"/>
    /// (row, col) is true are painted <see cref="Masked"/>.
    /// </summary>
    public static RgbImage Render(ReadOnlySpan<float> values, int rows, int cols, int cellPx, float min, float max, Func<int, int, bool>? masked = null)
    {
        if (rows <= 0 || cols <= 0 || cellPx <= 0 || values.Length != rows * cols)
        {
            throw new ArgumentException($"heatmap of {rows} × {cols} cells of {cellPx} px needs {rows * cols} values, got {values.Length}");
        }
        int w = cols * cellPx, h = rows * cellPx;
        var px = new byte[w * h * 3];
        float range = max - min;
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                var rgb = masked?.Invoke(r, c) == true ? Masked : Viridis(range > 0 ? (values[r * cols + c] - min) / range : 0);
                for (int y = r * cellPx; y < (r + 1) * cellPx; y++)
                {
                    for (int x = c * cellPx; x < (c + 1) * cellPx; x++)
                    {
                        int o = (y * w + x) * 3;
                        (px[o], px[o + 1], px[o + 2]) = rgb;
                    }
                }
            }
        }
        return new RgbImage(w, h, px);
    }

    /// <summary>A score's layer × head grid: one row per layer, one column per head, coloured from its own min to max.</summary>
    public static RgbImage ScoreGrid(Analysis.HeadScores scores, int cellPx = 24)
    {
        var (min, max) = FiniteRange(scores);
        return Render(scores.Values.SelectMany(r => r).ToArray(), scores.Layers, scores.Heads, cellPx, min, max);
    }

    /// <summary>The smallest and largest finite score (0, 0 when none is finite): the colour range of its grid.</summary>
    public static (float Min, float Max) FiniteRange(Analysis.HeadScores scores)
    {
        var finite = scores.Values.SelectMany(r => r).Where(float.IsFinite).DefaultIfEmpty(0f).ToArray();
        return (finite.Min(), finite.Max());
    }

    /// <summary>One head's pattern: row q = query, column k = key, weight 0..1 on viridis, future keys greyed when causal.</summary>
    public static RgbImage Pattern(Analysis.AttentionPatterns patterns, Analysis.HeadId head, int cellPx = 8, bool causal = true)
    {
        int T = patterns.Length;
        return Render(patterns.Patterns[head.Layer][head.Head], T, T, cellPx, 0f, 1f, causal ? (q, k) => k > q : null);
    }

    // half away from zero, as JavaScript's Math.round for these positive values: the page and the PNG agree to the byte
    private static byte Lerp(byte a, byte b, double f) => (byte)Math.Round(a + (b - a) * f, MidpointRounding.AwayFromZero);

    private static (byte, byte, byte) Parse(string hex) =>
        (Convert.ToByte(hex[1..3], 16), Convert.ToByte(hex[3..5], 16), Convert.ToByte(hex[5..7], 16));
}
