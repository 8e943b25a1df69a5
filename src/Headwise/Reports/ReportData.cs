using System.Globalization;
using Headwise.Analysis;
using Headwise.Interventions;

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
    IReadOnlyList<string> Notes)
{
    /// <summary>The intervention recipe every number was computed under (also among <see cref="ReportInfo.Facts"/>), or null.</summary>
    public ReportRecipe? Recipe { get; init; }

    /// <summary>Pictures shown under the tables, grouped by <see cref="ReportImage.Section"/> (a ViT's attention overlays and
    /// cluster prototypes); embedded in the page as PNG data URIs.</summary>
    public IReadOnlyList<ReportImage> Images { get; init; } = [];

    /// <summary>True for a model whose queries see every key (a ViT): the patterns are written whole, not as the lower
    /// triangle.</summary>
    public bool Bidirectional { get; init; }
}

/// <summary>A picture of the report: a PNG with a title and caption; <paramref name="Head"/> set when it belongs to one
/// head (clicking it opens that head's pattern).</summary>
public sealed record ReportImage(string Section, string Title, string Caption, byte[] Png, HeadId? Head = null);

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

/// <summary>The intervention recipe a report ran under: its name, the file it came from and one readable line per item, in
/// recipe order.</summary>
public sealed record ReportRecipe(string Name, string File, IReadOnlyList<string> Items)
{
    public static ReportRecipe Of(Recipe recipe) => new(recipe.Name, recipe.Source, recipe.Interventions.Select(Describe).ToArray());

    /// <summary>One item as a sentence, e.g. "soften 3.2 toward attending to itself, strength 0.5".</summary>
    public static string Describe(Intervention item)
    {
        static string Heads(IReadOnlyList<HeadId> heads) => string.Join(", ", heads);
        static string G(double x) => x.ToString("G6", CultureInfo.InvariantCulture);
        return item switch
        {
            ScaleHeads s => $"scale {Heads(s.Heads)}: z × {G(s.Factor)}",
            AblateHeads a => $"ablate {Heads(a.Heads)}: z replaced by {(a.Mean ? "its mean over the run's positions" : "0")}",
            SoftenHeads s => $"soften {Heads(s.Heads)}: pattern (1 − s)·A + s·I, s = {G(s.Strength)}",
            RedistributeSink r => $"redistribute_sink {Heads(r.Heads)}: a share {G(r.Fraction)} of the attention on position(s) "
                + $"{string.Join(", ", r.Sinks)} moved to the other keys",
            InjectActivations i => $"inject {i.Component.ToString().ToLowerInvariant()} of {Heads(i.Heads)} from a run on "
                + (i.Source.Tokens is { } t ? $"tokens [{string.Join(", ", t)}]" : $"the text \"{i.Source.Text}\""),
            EditWeights e => $"{e.Kind} {e.Head}: "
                + string.Join("; ", new[]
                {
                    e.Remove.Count == 0 ? null : $"remove singular component(s) {string.Join(", ", e.Remove)}",
                    e.Scale.Count == 0 ? null : "scale " + string.Join(", ", e.Scale.OrderBy(p => p.Key).Select(p => $"component {p.Key} × {G(p.Value)}")),
                }.Where(x => x is not null))
                + $" of W_{(e.Circuit == HeadCircuit.Ov ? "OV" : "QK")}",
            _ => item.Kind,
        };
    }
}
