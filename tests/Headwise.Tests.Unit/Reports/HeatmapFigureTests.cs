using Headwise.Analysis;
using Headwise.Reports;
using SkiaSharp;

namespace Headwise.Tests.Unit.Reports;

public sealed class HeatmapFigureTests
{
    private static HeadScores Grid() =>
        new("induction", "test", [[0.1f, 0.9f, 0.5f], [0.0f, 0.3f, 1.2f]]);

    [Fact]
    public void TheCellsArePixelForPixelThePlainHeatmap()
    {
        var scores = Grid();
        var cells = Heatmap.ScoreGrid(scores, cellPx: 24);
        var figure = HeatmapFigure.ScoreGrid(scores, cellPx: 24);
        using var png = SKBitmap.Decode(figure.Png);
        Assert.Equal((figure.Width, figure.Height), (png.Width, png.Height));
        Assert.True(figure.PlotX > 0 && figure.PlotY > 0 && figure.Width > figure.PlotX + cells.Width && figure.Height > figure.PlotY + cells.Height);
        for (int y = 0; y < cells.Height; y++)
        {
            for (int x = 0; x < cells.Width; x++)
            {
                var c = png.GetPixel(figure.PlotX + x, figure.PlotY + y);
                Assert.Equal(cells[x, y], (c.Red, c.Green, c.Blue));
            }
        }
    }

    [Fact]
    public void TheColourBarRunsFromMaxAtTheTopToMinAtTheBottom()
    {
        var scores = Grid();
        var figure = HeatmapFigure.ScoreGrid(scores, cellPx: 24);
        using var png = SKBitmap.Decode(figure.Png);
        int barX = figure.PlotX + (3 * 24) + 12 + 7, barH = Math.Max(2 * 24, 40);
        var top = png.GetPixel(barX, figure.PlotY);
        var bottom = png.GetPixel(barX, figure.PlotY + barH - 1);
        Assert.Equal(Heatmap.Viridis(1), (top.Red, top.Green, top.Blue));
        Assert.Equal(Heatmap.Viridis(0), (bottom.Red, bottom.Green, bottom.Blue));
    }

    [Fact]
    public void WithAFontTheTitleTicksAndNamesAreDrawn()
    {
        Assert.SkipWhen(FigureFont.Typeface is null, FigureFont.Hint);
        var figure = HeatmapFigure.ScoreGrid(Grid(), cellPx: 24);
        Assert.True(figure.Labelled);
        using var png = SKBitmap.Decode(figure.Png);
        // ink (dark grey text) above the cells (the title), left of them (layer ticks and name) and below (head ticks and name)
        Assert.True(Ink(png, 0, 0, png.Width, figure.PlotY) > 20, "title");
        Assert.True(Ink(png, 0, figure.PlotY, figure.PlotX, 2 * 24) > 10, "layer ticks");
        Assert.True(Ink(png, figure.PlotX, figure.PlotY + (2 * 24), 3 * 24, png.Height - figure.PlotY - (2 * 24)) > 10, "head ticks");
        // a longer label widens the margin it sits in
        var patterns = new AttentionPatterns([1, 2], ["a", "a much longer token"], [[[1f, 0f, 0.5f, 0.5f]]]);
        var shortTicks = new AttentionPatterns([1, 2], ["a", "b"], [[[1f, 0f, 0.5f, 0.5f]]]);
        Assert.True(HeatmapFigure.Pattern(patterns, new HeadId(0, 0)).PlotX > HeatmapFigure.Pattern(shortTicks, new HeadId(0, 0)).PlotX);
    }

    [Theory]
    [InlineData(" the", "·the")]
    [InlineData("a\nb", "a\\nb")]
    [InlineData("abcdefghijklmnop", "abcdefghijk…")]
    public void TickLabelsShowWhitespaceAndStayShort(string token, string label) =>
        Assert.Equal(label, HeatmapFigure.Short(token));

    [Fact]
    public void FigureWriteLeavesNoTemporaryFile()
    {
        string dir = Directory.CreateTempSubdirectory("hw-figure-").FullName;
        try
        {
            string path = Path.Combine(dir, "sub", "f.png");
            HeatmapFigure.ScoreGrid(Grid()).Write(path);
            Assert.Equal(["f.png"], Directory.GetFiles(Path.Combine(dir, "sub")).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // pixels darker than mid-grey in a rectangle: text, since the cells and colour bar lie outside it
    private static int Ink(SKBitmap png, int x0, int y0, int w, int h)
    {
        int n = 0;
        for (int y = y0; y < Math.Min(png.Height, y0 + h); y++)
        {
            for (int x = x0; x < Math.Min(png.Width, x0 + w); x++)
            {
                var c = png.GetPixel(x, y);
                n += c.Red < 128 && c.Green < 128 && c.Blue < 128 ? 1 : 0;
            }
        }
        return n;
    }
}
