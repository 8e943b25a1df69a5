using Headwise.Analysis;

namespace Headwise.Reports;

/// <summary>
/// Everything the report shows, as records: the renderers (<see cref="HtmlReport"/>, the PNG heatmaps) read only this.
/// Another analysis adds a section by adding a <see cref="HeadScores"/> (a new choice in the grid's selector) or a
/// <see cref="ReportTable"/>.
/// </summary>
/// <param name="Info">Title, shape and model facts.</param>
/// <param name="Scores">One layer × head grid per score, in selector order.</param>
/// <param name="Patterns">Every head's pattern on the prompt (T capped; see <paramref name="Notes"/>).</param>
/// <param name="Tables">Tables shown under the grid, e.g. the top heads of each detector.</param>
/// <param name="Notes">Sentences shown at the top: how the scores were computed, truncation of the prompt.</param>
public sealed record ReportData(
    ReportInfo Info,
    IReadOnlyList<HeadScores> Scores,
    AttentionPatterns Patterns,
    IReadOnlyList<ReportTable> Tables,
    IReadOnlyList<string> Notes);

/// <summary>The model the report describes: <paramref name="Facts"/> are (label, value) rows such as ("family", "Llama").</summary>
public sealed record ReportInfo(string Title, int Layers, int Heads, IReadOnlyList<KeyValuePair<string, string>> Facts);

/// <summary>
/// A table of text cells. When <paramref name="HeadColumn"/> is a column index, that column holds head ids ("L.H") and
/// the page turns them into links that open the head's pattern. Tables with the same <paramref name="Section"/> are shown
/// together under that heading, sections in the order of their first table.
/// </summary>
public sealed record ReportTable(string Title, string Caption, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows, int HeadColumn = -1,
    string Section = ReportTable.TopHeadsSection)
{
    public const string TopHeadsSection = "Top heads";
}
