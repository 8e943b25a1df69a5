using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Headwise.Analysis;

namespace Headwise.Reports;

/// <summary>
/// Renders a <see cref="ReportData"/> as one self-contained HTML page: the data as one JSON blob in
/// <c>&lt;script type="application/json" id="headwise-data"&gt;</c>, and the page's own CSS and JavaScript inline
/// (ReportTemplate.html, embedded in the assembly). No network request, no external file: it opens offline.
/// </summary>
/// <remarks>
/// The blob (what a test or another tool can read back):
/// <code>
/// { "title", "layers", "heads", "facts": [[label, value]], "notes": [..], "colormap": ["#440154", ..],
///   "recipe": { "name", "file", "interventions": [one line per item] },          // only under an intervention recipe
///   "scores": [{ "name", "definition", ["warning",] "values": [[layer 0's heads], ..] }],  // 4 significant digits
///   "patterns": { "ids": [..], "tokens": [..], "heads": [[row 0], [row 0, row 1], ..] }, // heads[l·H + h][q][k], k ≤ q, 3 digits
///   "tables": [{ "title", "caption", "columns", "rows", "head_column", "section" }] }   // grouped by section on the page
/// </code>
/// Patterns keep only k ≤ q (a causal model gives the rest zero weight), which halves the page.
/// </remarks>
public static class HtmlReport
{
    public const string DataElementId = "headwise-data";

    public static string Render(ReportData data)
    {
        string template = Template.Value;
        return template
            .Replace("{{TITLE}}", WebUtility.HtmlEncode(data.Info.Title), StringComparison.Ordinal)
            .Replace("{{DATA}}", DataJson(data), StringComparison.Ordinal);
    }

    /// <summary>Renders and writes atomically (temporary file, then rename); returns the full path written.</summary>
    public static string Write(string path, ReportData data)
    {
        string html = Render(data);
        AtomicFile.WriteAllText(path, html);
        return Path.GetFullPath(path);
    }

    /// <summary>The JSON blob embedded in the page. The default encoder escapes &lt; &gt; &amp; and non-ASCII, so no text
    /// in it can close the script element.</summary>
    public static string DataJson(ReportData data)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("title", data.Info.Title);
            w.WriteNumber("layers", data.Info.Layers);
            w.WriteNumber("heads", data.Info.Heads);
            w.WriteStartArray("facts");
            foreach (var (k, v) in data.Info.Facts)
            {
                w.WriteStartArray();
                w.WriteStringValue(k);
                w.WriteStringValue(v);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            WriteStrings(w, "notes", data.Notes);
            if (data.Recipe is { } recipe)
            {
                w.WriteStartObject("recipe");
                w.WriteString("name", recipe.Name);
                w.WriteString("file", recipe.File);
                WriteStrings(w, "interventions", recipe.Items);
                w.WriteEndObject();
            }
            WriteStrings(w, "colormap", Heatmap.ViridisAnchors);

            w.WriteStartArray("scores");
            foreach (var s in data.Scores)
            {
                w.WriteStartObject();
                w.WriteString("name", s.Name);
                w.WriteString("definition", s.Definition);
                if (s.Warning is not null)
                {
                    w.WriteString("warning", s.Warning);
                }
                w.WriteStartArray("values");
                foreach (var row in s.Values)
                {
                    w.WriteStartArray();
                    foreach (float v in row)
                    {
                        w.WriteRawValue(Number(v, 4));
                    }
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();

            var p = data.Patterns;
            w.WriteStartObject("patterns");
            w.WriteStartArray("ids");
            foreach (int id in p.TokenIds)
            {
                w.WriteNumberValue(id);
            }
            w.WriteEndArray();
            WriteStrings(w, "tokens", p.Tokens);
            w.WriteStartArray("heads");
            int T = p.Length;
            for (int l = 0; l < p.Layers; l++)
            {
                for (int h = 0; h < p.Heads; h++)
                {
                    var a = p.Patterns[l][h];
                    w.WriteStartArray();
                    for (int q = 0; q < T; q++)
                    {
                        w.WriteStartArray();
                        for (int k = 0; k < (data.Bidirectional ? T : q + 1); k++)
                        {
                            w.WriteRawValue(Number(a[q * T + k], 3));
                        }
                        w.WriteEndArray();
                    }
                    w.WriteEndArray();
                }
            }
            w.WriteEndArray();
            w.WriteEndObject();

            w.WriteStartArray("tables");
            foreach (var t in data.Tables)
            {
                w.WriteStartObject();
                w.WriteString("title", t.Title);
                w.WriteString("caption", t.Caption);
                WriteStrings(w, "columns", t.Columns);
                w.WriteStartArray("rows");
                foreach (var row in t.Rows)
                {
                    w.WriteStartArray();
                    foreach (var cell in row)
                    {
                        w.WriteStringValue(cell);
                    }
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteNumber("head_column", t.HeadColumn);
                w.WriteString("section", t.Section);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (data.Images.Count > 0)
            {
                w.WriteStartArray("images");
                foreach (var image in data.Images)
                {
                    w.WriteStartObject();
                    w.WriteString("section", image.Section);
                    w.WriteString("title", image.Title);
                    w.WriteString("caption", image.Caption);
                    w.WriteString("src", "data:image/png;base64," + Convert.ToBase64String(image.Png));
                    if (image.Head is { } head)
                    {
                        w.WriteString("head", head.ToString());
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Reads the JSON blob back out of a rendered page (for tests and tools).</summary>
    public static string ExtractDataJson(string html)
    {
        string open = $"<script type=\"application/json\" id=\"{DataElementId}\">";
        int start = html.IndexOf(open, StringComparison.Ordinal);
        if (start < 0)
        {
            throw new InvalidInputException("not a headwise report: no data element");
        }
        start += open.Length;
        int end = html.IndexOf("</script>", start, StringComparison.Ordinal);
        return html[start..end];
    }

    /// <summary><paramref name="digits"/> significant digits; magnitudes under 1e-5 (invisible on any colour map) written as 0;
    /// NaN and infinities as null (JSON has no literal for them).</summary>
    internal static string Number(float v, int digits)
    {
        if (!float.IsFinite(v))
        {
            return "null";
        }
        if (Math.Abs(v) < 1e-5f)
        {
            return "0";
        }
        string s = v.ToString("G" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        return s.Contains('E', StringComparison.Ordinal) ? s.Replace("E", "e", StringComparison.Ordinal) : s;
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values)
        {
            w.WriteStringValue(v);
        }
        w.WriteEndArray();
    }

    /// <summary>The token view's script (<c>headwiseTokenView(root, {tokens, heads})</c>), shared by the report and the
    /// notebook formatters of Headwise.Interactive.</summary>
    public static string TokenViewScript => TokenView.Value;

    /// <summary>The token view's style rules (class names <c>hw-tv-*</c>).</summary>
    public const string TokenViewStyle =
        ".hw-tokenview { font: 13px/1.9 ui-monospace, Menlo, Consolas, monospace; }\n"
        + ".hw-tv-controls { font: 12px system-ui, sans-serif; color: #555; display: flex; gap: 14px; flex-wrap: wrap; margin-bottom: 4px; }\n"
        + ".hw-tv-row { margin: 2px 0; }\n"
        + ".hw-tv-head { display: inline-block; min-width: 48px; color: #666; font-size: 11px; }\n"
        + ".hw-tv-tok { white-space: pre; padding: 1px 0; border-radius: 2px; cursor: default; }\n"
        + ".hw-tv-tok.hw-tv-hover { outline: 2px solid #222; }\n"
        + ".hw-tv-status { font: 12px system-ui, sans-serif; color: #555; margin-top: 4px; min-height: 1.4em; }\n";

    private static readonly Lazy<string> TokenView = new(() => Resource("Headwise.Reports.TokenView.js"));

    private static readonly Lazy<string> Template = new(() => Resource("Headwise.Reports.ReportTemplate.html")
        .Replace("{{TOKEN_VIEW_CSS}}", TokenViewStyle, StringComparison.Ordinal)
        .Replace("{{TOKEN_VIEW_JS}}", TokenView.Value, StringComparison.Ordinal));

    private static string Resource(string name)
    {
        using var s = typeof(HtmlReport).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"{name} is not embedded in the assembly");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
