namespace Headwise.Training.Plots;

/// <summary>
/// The trainer's loss curve (a <see cref="LineChart"/>, 640×360, no text): training loss as a blue line, held-out loss as
/// red dots; x spans the logged steps, y [min, max] of the plotted losses.
/// </summary>
public static class LossPlot
{
    public static void Write(string path, IReadOnlyList<StepMetrics> history, int width = 640, int height = 360)
    {
        var evals = history.Where(h => h.EvalLoss is not null).ToList();
        LineChart.Write(path,
        [
            new ChartSeries([.. history.Select(h => (double)h.Step)], [.. history.Select(h => (double)h.Loss)], LineChart.Palette[0]),
            new ChartSeries([.. evals.Select(h => (double)h.Step)], [.. evals.Select(h => (double)h.EvalLoss!.Value)], LineChart.Palette[3], Dots: true),
        ], includeZero: false, width, height);
    }
}
