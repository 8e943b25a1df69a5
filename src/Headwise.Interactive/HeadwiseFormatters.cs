using Headwise.Analysis;
using Headwise.Reports;
using Microsoft.DotNet.Interactive.Formatting;

namespace Headwise.Interactive;

/// <summary>
/// Registers HTML formatters for Headwise's records with .NET Interactive (Polyglot and Jupyter notebooks), so that
/// <c>display(cache.Pattern(3, 6, labels))</c>, a <see cref="HeadScores"/> grid, a <see cref="ReportTable"/> or a whole
/// <see cref="ReportData"/> renders inline. Call <see cref="Register"/> once per notebook (again is harmless).
/// </summary>
public static class HeadwiseFormatters
{
    private static readonly Lock Gate = new();
    private static bool s_registered;

    public static void Register()
    {
        lock (Gate)
        {
            if (s_registered)
            {
                return;
            }
            Add<HeadPattern>(HeadwiseHtml.Pattern);
            Add<HeadPatternSet>(HeadwiseHtml.PatternSet);
            Add<HeadScores>(HeadwiseHtml.Scores);
            Add<ReportTable>(HeadwiseHtml.Table);
            Add<ReportData>(HeadwiseHtml.Report);
            Add<Tensor>(HeadwiseHtml.Tensor);
            s_registered = true;
        }
    }

    private static void Add<T>(Func<T, string> html)
    {
        Formatter.Register(html, HtmlFormatter.MimeType);
        Formatter.SetPreferredMimeTypesFor(typeof(T), HtmlFormatter.MimeType);
    }
}
