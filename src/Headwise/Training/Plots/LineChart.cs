using Headwise.Reports;

namespace Headwise.Training.Plots;

/// <summary>One curve of a <see cref="LineChart"/>: points (X[i], Y[i]); non-finite Y values are skipped.</summary>
/// <param name="Color">RGB; null: the next colour of <see cref="LineChart.Palette"/></param>
/// <param name="Dots">draw each point as a 5×5 square instead of joining the points with a line</param>
public sealed record ChartSeries(IReadOnlyList<double> X, IReadOnlyList<double> Y, (byte R, byte G, byte B)? Color = null, bool Dots = false);

/// <summary>
/// The one line-chart drawer of the training code (the trainer's loss curve and the experiments' figures): white
/// background, a 20-pixel margin, grey frame, 5 light horizontal grid lines, no text (axis ranges go in the caption).
/// x spans [min, max] of all X; y spans [min, max] of the finite Y (with 0 included when asked). PNG via <see cref="Png"/>.
/// </summary>
public static class LineChart
{
    public const int Margin = 20;

    /// <summary>Blue, orange, green, red: the colours given to series without their own, in order.</summary>
    public static readonly IReadOnlyList<(byte R, byte G, byte B)> Palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)];

    public static void Write(string path, IReadOnlyList<ChartSeries> series, bool includeZero = false, int width = 640, int height = 360) =>
        Png.Write(path, Render(series, includeZero, width, height));

    /// <summary>Several series over common x values (the experiments' curves), palette colours in order.</summary>
    public static void Write(string path, IReadOnlyList<double> xs, IReadOnlyList<IReadOnlyList<double>> ys, bool includeZero = true) =>
        Write(path, [.. ys.Select(y => new ChartSeries(xs, y))], includeZero);

    public static RgbImage Render(IReadOnlyList<ChartSeries> series, bool includeZero = false, int width = 640, int height = 360)
    {
        var rgb = new byte[width * height * 3];
        Array.Fill(rgb, (byte)255);
        var xs = series.SelectMany(s => s.X.Take(s.Y.Count)).Where(double.IsFinite).ToArray();
        var ys = series.SelectMany(s => s.Y).Where(double.IsFinite).ToArray();
        double xmin = xs.Length > 0 ? xs.Min() : 0, xmax = xs.Length > 0 ? xs.Max() : 1;
        double ymin = ys.Length > 0 ? ys.Min() : 0, ymax = ys.Length > 0 ? ys.Max() : 1;
        if (includeZero)
        {
            ymin = Math.Min(0, ymin);
            ymax = Math.Max(0, ymax);
        }
        if (xmax <= xmin) xmax = xmin + 1;
        if (ymax - ymin < 1e-12) { ymin -= 0.5; ymax += 0.5; }
        int pw = width - 2 * Margin, ph = height - 2 * Margin;
        for (int g = 0; g <= 5; g++)
        {
            int y = Margin + (int)Math.Round(ph * g / 5.0);
            Line(rgb, width, height, Margin, y, width - Margin, y, g is 0 or 5 ? ((byte)120, (byte)120, (byte)120) : ((byte)225, (byte)225, (byte)225));
        }
        Line(rgb, width, height, Margin, Margin, Margin, height - Margin, (120, 120, 120));
        Line(rgb, width, height, width - Margin, Margin, width - Margin, height - Margin, (120, 120, 120));
        int X(double x) => Margin + (int)Math.Round(pw * (x - xmin) / (xmax - xmin));
        int Y(double y) => height - Margin - (int)Math.Round(ph * (y - ymin) / (ymax - ymin));
        int next = 0;
        foreach (var s in series)
        {
            var color = s.Color ?? Palette[next++ % Palette.Count];
            int px = -1, py = -1;
            for (int i = 0; i < Math.Min(s.X.Count, s.Y.Count); i++)
            {
                if (!double.IsFinite(s.X[i]) || !double.IsFinite(s.Y[i])) continue;
                int x = X(s.X[i]), y = Y(s.Y[i]);
                if (s.Dots)
                {
                    for (int dy = -2; dy <= 2; dy++) Line(rgb, width, height, x - 2, y + dy, x + 2, y + dy, color);
                    continue;
                }
                if (px >= 0)
                {
                    // two pixels thick
                    Line(rgb, width, height, px, py, x, y, color);
                    Line(rgb, width, height, px, py + 1, x, y + 1, color);
                }
                (px, py) = (x, y);
            }
        }
        return new RgbImage(width, height, rgb);
    }

    // Bresenham
    private static void Line(byte[] rgb, int w, int h, int x0, int y0, int x1, int y1, (byte R, byte G, byte B) c)
    {
        int dx = Math.Abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -Math.Abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
        while (true)
        {
            if ((uint)x0 < (uint)w && (uint)y0 < (uint)h)
            {
                int i = (y0 * w + x0) * 3;
                rgb[i] = c.R; rgb[i + 1] = c.G; rgb[i + 2] = c.B;
            }
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }
}
