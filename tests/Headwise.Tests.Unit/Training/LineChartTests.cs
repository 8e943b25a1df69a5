using Headwise.Reports;
using Headwise.Training;
using Headwise.Training.Plots;

namespace Headwise.Tests.Unit.Training;

// 640×360 with a 20-pixel margin: the plot area is x 20…620, y 20 (top) … 340 (bottom).
public class LineChartTests
{
    private static (byte, byte, byte) At(RgbImage img, int x, int y)
    {
        int i = (y * img.Width + x) * 3;
        return (img.Pixels[i], img.Pixels[i + 1], img.Pixels[i + 2]);
    }

    private static readonly (byte, byte, byte) White = (255, 255, 255);
    private static readonly (byte, byte, byte) Mine = (1, 2, 3);

    [Fact]
    public void LineRunsCornerToCornerOfTheDataRange()
    {
        var img = LineChart.Render([new ChartSeries([0, 10], [0, 1])]);
        var blue = LineChart.Palette[0];
        Assert.Equal(blue, At(img, 20, 340));    // (0, 0): bottom left
        Assert.Equal(blue, At(img, 620, 20));    // (10, 1): top right
        Assert.Equal(blue, At(img, 320, 180));   // the middle of the segment
        Assert.Equal(White, At(img, 320, 100));  // above the line, off the grid
    }

    [Fact]
    public void IncludeZeroStretchesTheYRangeDownToZero()
    {
        // y in [1, 2]: tight, 1 is at the bottom; with zero included, 1 is half way up
        Assert.Equal(LineChart.Palette[0], At(LineChart.Render([new ChartSeries([0, 10], [1, 1])], includeZero: false), 320, 180));
        var img = LineChart.Render([new ChartSeries([0, 10], [1, 2])], includeZero: true);
        Assert.Equal(LineChart.Palette[0], At(img, 20, 180));
        Assert.Equal(White, At(img, 20 + 100, 340 - 10));
    }

    [Fact]
    public void DotsAreNotJoinedAndSeriesTakePaletteColoursInOrder()
    {
        var img = LineChart.Render(
        [
            new ChartSeries([0, 10], [0, 0]),
            new ChartSeries([0, 10], [1, 1]),
            new ChartSeries([0, 10, 5], [0, 1, 0.5], Mine, Dots: true),
        ]);
        Assert.Equal(LineChart.Palette[0], At(img, 100, 340));
        Assert.Equal(LineChart.Palette[1], At(img, 100, 20));
        Assert.Equal(Mine, At(img, 320, 180));
        Assert.Equal(Mine, At(img, 322, 182));   // 5×5 square
        Assert.Equal(White, At(img, 170, 260));       // where a line from (0, 0) to (5, 0.5) would pass
    }

    [Fact]
    public void NonFiniteValuesAreSkipped()
    {
        var img = LineChart.Render([new ChartSeries([0, 5, 10], [0, double.NaN, 1])]);
        Assert.Equal(LineChart.Palette[0], At(img, 320, 180));   // joined across the gap
    }

    [Fact]
    public void LossPlotWritesAPng()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hw-loss-{Guid.NewGuid():N}.png");
        try
        {
            LossPlot.Write(path, [new StepMetrics(1, 3f, 0, 0, 0, null), new StepMetrics(2, 2f, 0, 0, 0, 2.5f)]);
            Assert.Equal([0x89, 0x50, 0x4E, 0x47], File.ReadAllBytes(path)[..4]);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
