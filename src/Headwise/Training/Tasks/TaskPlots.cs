using Headwise.Reports;

namespace Headwise.Training.Tasks;

/// <summary>Minimal PNG output for the experiment reports: RGB images, line charts (no text) and diverging heatmaps.</summary>
public static class TaskPlots
{
    /// <summary>Writes an 8-bit RGB PNG (atomically, with the report's encoder); <paramref name="rgb"/> is height×width×3.</summary>
    public static void WritePng(string path, byte[] rgb, int width, int height) => Png.Write(path, new RgbImage(width, height, rgb));

    /// <summary>
    /// A line chart of one or more series (x = index into the common <paramref name="xs"/>), white background, grey frame
    /// and 5 horizontal grid lines; colors cycle blue, orange, green, red. Axis ranges go in the report text.
    /// </summary>
    public static void LineChart(string path, IReadOnlyList<double> xs, IReadOnlyList<IReadOnlyList<double>> series, int width = 640, int height = 360)
    {
        byte[][] colors = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];
        var img = new byte[width * height * 3];
        Array.Fill(img, (byte)255);
        int m = 20;
        double xmin = xs.Count > 0 ? xs[0] : 0;
        double xmax = xs.Count > 0 ? xs[^1] : 1;
        var finite = series.SelectMany(s => s).Where(double.IsFinite).ToArray();
        double ymin = finite.Length > 0 ? Math.Min(0, finite.Min()) : 0;
        double ymax = finite.Length > 0 ? finite.Max() : 1;
        if (ymax <= ymin)
        {
            ymax = ymin + 1;
        }

        if (xmax <= xmin)
        {
            xmax = xmin + 1;
        }

        for (int g = 0; g <= 5; g++)
        {
            int y = m + (int)Math.Round((height - (2 * m)) * g / 5.0);
            DrawLine(img, width, height, m, y, width - m, y, g is 0 or 5 ? [120, 120, 120] : [225, 225, 225]);
        }

        DrawLine(img, width, height, m, m, m, height - m, [120, 120, 120]);
        DrawLine(img, width, height, width - m, m, width - m, height - m, [120, 120, 120]);
        for (int si = 0; si < series.Count; si++)
        {
            var s = series[si];
            int px = -1;
            int py = -1;
            for (int i = 0; i < Math.Min(s.Count, xs.Count); i++)
            {
                if (!double.IsFinite(s[i]))
                {
                    continue;
                }

                int x = m + (int)Math.Round((width - (2 * m)) * (xs[i] - xmin) / (xmax - xmin));
                int y = height - m - (int)Math.Round((height - (2 * m)) * (s[i] - ymin) / (ymax - ymin));
                if (px >= 0)
                {
                    DrawLine(img, width, height, px, py, x, y, colors[si % colors.Length]);
                    DrawLine(img, width, height, px, py + 1, x, y + 1, colors[si % colors.Length]);
                }

                px = x;
                py = y;
            }
        }

        WritePng(path, img, width, height);
    }

    /// <summary>Heatmaps of several rows×cols matrices side by side, each scaled to its own max |value|: blue negative,
    /// white zero, red positive.</summary>
    public static void Heatmaps(string path, IReadOnlyList<double[]> matrices, int rows, int cols, int cell = 24)
    {
        int gap = cell;
        int width = (matrices.Count * cols * cell) + ((matrices.Count + 1) * gap);
        int height = (rows * cell) + (2 * gap);
        var img = new byte[width * height * 3];
        Array.Fill(img, (byte)255);
        for (int k = 0; k < matrices.Count; k++)
        {
            var mat = matrices[k];
            double max = mat.Select(Math.Abs).DefaultIfEmpty(0).Max();
            int x0 = gap + (k * ((cols * cell) + gap));
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < cols; c++)
                {
                    double v = max > 0 ? mat[(r * cols) + c] / max : 0;
                    byte[] color = v >= 0
                        ? [255, (byte)(255 * (1 - v)), (byte)(255 * (1 - v))]
                        : [(byte)(255 * (1 + v)), (byte)(255 * (1 + v)), 255];
                    for (int yy = 0; yy < cell - 1; yy++)
                    {
                        for (int xx = 0; xx < cell - 1; xx++)
                        {
                            int p = ((((gap + (r * cell) + yy) * width) + x0 + (c * cell) + xx) * 3);
                            img[p] = color[0];
                            img[p + 1] = color[1];
                            img[p + 2] = color[2];
                        }
                    }
                }
            }
        }

        WritePng(path, img, width, height);
    }

    private static void DrawLine(byte[] img, int w, int h, int x0, int y0, int x1, int y1, byte[] c)
    {
        int dx = Math.Abs(x1 - x0);
        int dy = -Math.Abs(y1 - y0);
        int sx = x0 < x1 ? 1 : -1;
        int sy = y0 < y1 ? 1 : -1;
        int err = dx + dy;
        while (true)
        {
            if (x0 >= 0 && x0 < w && y0 >= 0 && y0 < h)
            {
                int p = ((y0 * w) + x0) * 3;
                img[p] = c[0];
                img[p + 1] = c[1];
                img[p + 2] = c[2];
            }

            if (x0 == x1 && y0 == y1)
            {
                break;
            }

            int e2 = 2 * err;
            if (e2 >= dy)
            {
                err += dy;
                x0 += sx;
            }

            if (e2 <= dx)
            {
                err += dx;
                y0 += sy;
            }
        }
    }
}
