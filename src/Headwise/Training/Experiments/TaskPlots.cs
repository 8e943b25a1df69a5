using Headwise.Reports;

namespace Headwise.Training.Experiments;

/// <summary>PNG output for the experiment reports: RGB images and diverging heatmaps (line charts: <see cref="Plots.LineChart"/>).</summary>
public static class TaskPlots
{
    /// <summary>Writes an 8-bit RGB PNG (atomically, with the report's encoder); <paramref name="rgb"/> is height×width×3.</summary>
    public static void WritePng(string path, byte[] rgb, int width, int height) => Png.Write(path, new RgbImage(width, height, rgb));

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
}
