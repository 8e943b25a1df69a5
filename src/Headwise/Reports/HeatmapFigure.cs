using SkiaSharp;

namespace Headwise.Reports;

/// <summary>
/// A heatmap as a figure (SkiaSharp): the cells of <see cref="Heatmap.Render"/>, unscaled and pixel for pixel, with a title,
/// axis names, a tick label per row and column (tokens, heads, layers) and a colour bar from min to max. Text needs a font
/// file: SkiaSharp's dependency-free Linux build sees no system fonts, so <see cref="FigureFont"/> looks for one. Without one,
/// the figure keeps its cells and colour bar, and <see cref="Figure.Labelled"/> says the labels are missing.
/// </summary>
public static class HeatmapFigure
{
    private const int Pad = 8;

    /// <summary>Draws <paramref name="cells"/> (rows × cols cells of <paramref name="cellPx"/> px) with its labels; the colour
    /// bar maps [<paramref name="min"/>, <paramref name="max"/>] on viridis, like the cells.</summary>
    public static Figure Render(RgbImage cells, int cellPx, string title, string xName, string yName,
        IReadOnlyList<string> xTicks, IReadOnlyList<string> yTicks, float min, float max)
    {
        var typeface = FigureFont.Typeface;
        using var font = new SKFont(typeface ?? SKTypeface.Default, Math.Clamp(cellPx - 2, 8, 12));
        using var titleFont = new SKFont(typeface ?? SKTypeface.Default, 14) { Embolden = true };
        bool text = typeface is not null;
        float Width(SKFont f, string s) => text ? f.MeasureText(s) : 0;
        float lineH = text ? font.Size + 4 : 0, titleH = text ? titleFont.Size + 8 : 0;
        bool tickText = text && cellPx >= 8;

        // 1. layout: left = y name + y ticks, top = title, bottom = x ticks (vertical) + x name, right = colour bar + its ticks
        float yTickW = tickText ? yTicks.Select(t => Width(font, Short(t))).DefaultIfEmpty(0).Max() : 0;
        float xTickH = tickText ? xTicks.Select(t => Width(font, Short(t))).DefaultIfEmpty(0).Max() : 0;
        int left = (int)MathF.Ceiling(Pad + lineH + yTickW + 4);
        int top = (int)MathF.Ceiling(Pad + titleH);
        int bottom = (int)MathF.Ceiling(4 + xTickH + lineH + Pad);
        string minLabel = Number(min), maxLabel = Number(max);
        int barW = 14;
        int right = (int)MathF.Ceiling(12 + barW + 4 + Math.Max(Width(font, minLabel), Width(font, maxLabel)) + Pad);
        int width = Math.Max(left + cells.Width + right, (int)MathF.Ceiling(Width(titleFont, title)) + (2 * Pad));
        int height = top + Math.Max(cells.Height, 40) + bottom;

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul))
            ?? throw new InvalidOperationException($"SkiaSharp could not create a {width} × {height} surface");
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var ink = new SKPaint { Color = new SKColor(0x22, 0x22, 0x22), IsAntialias = true };

        // 2. the cells, at an integer offset and unscaled: the same pixels as the plain heatmap
        using (var bitmap = ToBitmap(cells))
        using (var cellImage = SKImage.FromBitmap(bitmap))
        {
            canvas.DrawImage(cellImage, left, top, SKSamplingOptions.Default, null);
        }

        // 3. the colour bar: viridis from max (top) to min (bottom), over the cells' height
        int barX = left + cells.Width + 12, barH = Math.Max(cells.Height, 40);
        for (int y = 0; y < barH; y++)
        {
            var (r, g, b) = Heatmap.Viridis(1 - (y / (double)Math.Max(1, barH - 1)));
            using var p = new SKPaint { Color = new SKColor(r, g, b) };
            canvas.DrawRect(barX, top + y, barW, 1, p);
        }

        // 4. text: title, tick labels at cell centres (x ticks vertical), axis names, colour-bar ends
        if (text)
        {
            // centred over the cells, moved in where it would cross the figure's edge
            float titleW = Width(titleFont, title);
            float titleX = Math.Clamp(left + (cells.Width / 2f), Pad + (titleW / 2), width - Pad - (titleW / 2));
            canvas.DrawText(title, titleX, Pad + titleFont.Size, SKTextAlign.Center, titleFont, ink);
            if (tickText)
            {
                for (int i = 0; i < yTicks.Count; i++)
                {
                    canvas.DrawText(Short(yTicks[i]), left - 4, top + ((i + 0.5f) * cellPx) + (font.Size / 3), SKTextAlign.Right, font, ink);
                }
                for (int i = 0; i < xTicks.Count; i++)
                {
                    float x = left + ((i + 0.5f) * cellPx) + (font.Size / 3), y = top + cells.Height + 4;
                    canvas.Save();
                    canvas.RotateDegrees(-90, x, y);
                    canvas.DrawText(Short(xTicks[i]), x, y, SKTextAlign.Right, font, ink);
                    canvas.Restore();
                }
            }
            canvas.DrawText(xName, left + (cells.Width / 2f), height - Pad, SKTextAlign.Center, font, ink);
            canvas.Save();
            canvas.RotateDegrees(-90, Pad + font.Size, top + (cells.Height / 2f));
            canvas.DrawText(yName, Pad + font.Size, top + (cells.Height / 2f), SKTextAlign.Center, font, ink);
            canvas.Restore();
            canvas.DrawText(maxLabel, barX + barW + 4, top + font.Size, SKTextAlign.Left, font, ink);
            canvas.DrawText(minLabel, barX + barW + 4, top + barH, SKTextAlign.Left, font, ink);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return new Figure(png.ToArray(), width, height, left, top, text);
    }

    /// <summary>A score's layer × head grid as a figure: heads across, layers down, coloured from the score's min to max.</summary>
    public static Figure ScoreGrid(Analysis.HeadScores scores, int cellPx = 24)
    {
        var (min, max) = Heatmap.FiniteRange(scores);
        return Render(Heatmap.ScoreGrid(scores, cellPx), cellPx, $"{scores.Name} score", "head", "layer",
            [.. Enumerable.Range(0, scores.Heads).Select(h => h.ToString(System.Globalization.CultureInfo.InvariantCulture))],
            [.. Enumerable.Range(0, scores.Layers).Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture))], min, max);
    }

    /// <summary>One head's pattern as a figure: queries down, keys across, each labelled by its token; weight 0..1. Future
    /// keys are greyed when <paramref name="causal"/>; a long sequence (a ViT's patches) gets 4 px cells and no tick labels.</summary>
    public static Figure Pattern(Analysis.AttentionPatterns patterns, Analysis.HeadId head, int? cellPx = null, bool causal = true)
    {
        int px = cellPx ?? (patterns.Length > 64 ? 4 : 12);
        return Render(Heatmap.Pattern(patterns, head, px, causal), px, $"head {head} attention pattern", "key", "query",
            patterns.Tokens, patterns.Tokens, 0f, 1f);
    }

    /// <summary>A token as a tick label: whitespace made visible, at most 12 characters.</summary>
    public static string Short(string label)
    {
        string s = label.Replace(' ', '·').Replace("\n", "\\n", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal);
        return s.Length <= 12 ? s : s[..11] + "…";
    }

    private static string Number(float v) => v.ToString(Math.Abs(v) >= 100 || v == MathF.Round(v) ? "0.##" : "0.###", System.Globalization.CultureInfo.InvariantCulture);

    private static SKBitmap ToBitmap(RgbImage image)
    {
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var rgba = new byte[image.Width * image.Height * 4];
        for (int i = 0, n = image.Width * image.Height; i < n; i++)
        {
            rgba[i * 4] = image.Pixels[i * 3];
            rgba[(i * 4) + 1] = image.Pixels[(i * 3) + 1];
            rgba[(i * 4) + 2] = image.Pixels[(i * 3) + 2];
            rgba[(i * 4) + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }
}

/// <summary>A PNG figure and where its cells are: the heatmap's top-left pixel is at (<see cref="PlotX"/>, <see cref="PlotY"/>).
/// <see cref="Labelled"/> is false when no font was found (no title, ticks or names drawn).</summary>
public sealed record Figure(byte[] Png, int Width, int Height, int PlotX, int PlotY, bool Labelled)
{
    /// <summary>Writes the PNG to a temporary file, then renames it.</summary>
    public void Write(string path) => WriteFile(path, Png);

    /// <summary>Writes <paramref name="bytes"/> to a temporary file beside <paramref name="path"/>, then renames it (the
    /// folder is created): a reader never sees half a file.</summary>
    public static void WriteFile(string path, byte[] bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = path + ".tmp";
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>
/// The font figures are labelled with. SkiaSharp's dependency-free Linux build has no font manager, so this loads a TrueType
/// file: <c>HEADWISE_FONT</c> when set, else the first of DejaVu Sans, Liberation Sans, Arial, Helvetica in the usual system
/// folders (Debian: fonts-dejavu-core, which Chromium's packages pull in), else any .ttf under /usr/share/fonts. Null when none.
/// </summary>
public static class FigureFont
{
    private static readonly Lazy<SKTypeface?> s_typeface = new(Find);

    /// <summary>The font, or null: figures then carry no text.</summary>
    public static SKTypeface? Typeface => s_typeface.Value;

    /// <summary>Where to install one, for the warning a command prints when <see cref="Typeface"/> is null.</summary>
    public const string Hint = "no font found for the PNG labels (set HEADWISE_FONT=/path/to/font.ttf, or install one, e.g. Debian's fonts-dejavu-core): the PNGs have no title, ticks or axis names";

    private static readonly string[] s_candidates =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Helvetica.ttc",
        @"C:\Windows\Fonts\arial.ttf",
    ];

    private static SKTypeface? Find()
    {
        var paths = new List<string>();
        if (Environment.GetEnvironmentVariable("HEADWISE_FONT") is { Length: > 0 } env)
        {
            paths.Add(env);
        }
        paths.AddRange(s_candidates);
        if (Directory.Exists("/usr/share/fonts"))
        {
            paths.AddRange(Directory.EnumerateFiles("/usr/share/fonts", "*.ttf", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        }
        foreach (var path in paths.Where(File.Exists))
        {
            var typeface = SKTypeface.FromFile(path);
            if (typeface is { GlyphCount: > 0 })
            {
                return typeface;
            }
            typeface?.Dispose();
        }
        return null;
    }
}
