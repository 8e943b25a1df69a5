using Headwise.Reports;

namespace Headwise.Training.Plots;

/// <summary>
/// The loss curve as a small PNG (640×360, no text): training loss in blue, held-out loss as red dots, light grid lines at
/// every integer loss value; x spans steps 1..last, y spans [min, max] of the plotted losses.
/// </summary>
public static class LossPlot
{
    public static void Write(string path, IReadOnlyList<StepMetrics> history, int width = 640, int height = 360)
    {
        var rgb = new byte[width * height * 3];
        Array.Fill(rgb, (byte)255);
        if (history.Count == 0)
        {
            Png.Write(path, new RgbImage(width, height, rgb));
            return;
        }
        const int Margin = 20;
        var values = history.Select(h => h.Loss).Concat(history.Where(h => h.EvalLoss is not null).Select(h => h.EvalLoss!.Value))
            .Where(float.IsFinite).ToList();
        float lo = values.Count > 0 ? values.Min() : 0, hi = values.Count > 0 ? values.Max() : 1;
        if (hi - lo < 1e-6f) { hi += 0.5f; lo -= 0.5f; }
        int maxStep = Math.Max(2, history[^1].Step);
        int X(int step) => Margin + (int)((long)(step - 1) * (width - 2 * Margin - 1) / (maxStep - 1));
        int Y(float v) => height - Margin - 1 - (int)((v - lo) / (hi - lo) * (height - 2 * Margin - 1));
        for (int g = (int)MathF.Ceiling(lo); g <= hi; g++)
        {
            Line(rgb, width, height, Margin, Y(g), width - Margin, Y(g), (230, 230, 230));
        }
        Line(rgb, width, height, Margin, height - Margin, width - Margin, height - Margin, (0, 0, 0)); // x axis
        Line(rgb, width, height, Margin, Margin, Margin, height - Margin, (0, 0, 0));                  // y axis
        for (int i = 1; i < history.Count; i++)
        {
            if (float.IsFinite(history[i - 1].Loss) && float.IsFinite(history[i].Loss))
            {
                Line(rgb, width, height, X(history[i - 1].Step), Y(history[i - 1].Loss), X(history[i].Step), Y(history[i].Loss), (31, 119, 180));
            }
        }
        foreach (var h in history)
        {
            if (h.EvalLoss is float e && float.IsFinite(e))
            {
                for (int dy = -2; dy <= 2; dy++)
                {
                    Line(rgb, width, height, X(h.Step) - 2, Y(e) + dy, X(h.Step) + 2, Y(e) + dy, (214, 39, 40));
                }
            }
        }
        Png.Write(path, new RgbImage(width, height, rgb));
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
