using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Headwise.Analysis;
using Headwise.Reports;

namespace Headwise.Interactive;

/// <summary>
/// The HTML that notebooks show for Headwise's records. Every fragment is self-contained (its own style, and for token views
/// its own script: the report's <see cref="HtmlReport.TokenViewScript"/>), requests nothing from the network, and escapes
/// every text it embeds. <see cref="HeadwiseFormatters.Register"/> hands these to the notebook's formatter.
/// </summary>
public static class HeadwiseHtml
{
    private const string Style =
        "<style>.headwise { font: 13px/1.4 system-ui, sans-serif; color: #222; margin: 4px 0; }"
        + ".headwise h4 { margin: 2px 0 4px; font-size: 14px; }"
        + ".headwise .hw-def { color: #555; font-size: 12px; margin: 0 0 4px; max-width: 900px; }"
        + ".headwise .hw-warn { background: #fff3cd; border-left: 4px solid #d98c00; padding: 4px 8px; font-size: 12px; }"
        + ".headwise table.hw-grid { border-collapse: separate; border-spacing: 2px; }"
        + ".headwise table.hw-grid td { width: 40px; height: 24px; font-size: 10px; text-align: center; }"
        + ".headwise table.hw-grid th { font-size: 11px; color: #666; font-weight: normal; }"
        + ".headwise .hw-heatmaps { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }"
        + ".headwise svg text { font: 10px ui-monospace, Menlo, Consolas, monospace; fill: #333; white-space: pre; }"
        + ".headwise table.hw-table { border-collapse: collapse; font-size: 12px; }"
        + ".headwise table.hw-table th, .headwise table.hw-table td { border-bottom: 1px solid #eee; padding: 2px 10px 2px 0; text-align: left; }"
        + "</style>";

    /// <summary>One head: its heatmap (queries down, keys across, viridis 0–1, a tooltip per cell) and its token view.</summary>
    public static string Pattern(HeadPattern pattern) => PatternSet(new HeadPatternSet([pattern]));

    /// <summary>Several heads of one sequence: their heatmaps side by side, and one token view with a row per head.</summary>
    public static string PatternSet(HeadPatternSet set)
    {
        var first = set.Heads[0];
        var sb = new StringBuilder();
        sb.Append(Style).Append("<div class=\"headwise\">");
        sb.Append("<h4>").Append(Enc(set.Heads.Count == 1 ? $"Attention pattern of head {first.Head}" : $"Attention patterns of heads {string.Join(", ", set.Heads.Select(h => h.Head))}"))
            .Append("</h4><p class=\"hw-def\">rows are queries (the token attending), columns are keys (the token attended to); colour is the weight from 0 to 1 (viridis). Hover a cell for its value, a token below for where it attends.</p>");
        sb.Append("<div class=\"hw-heatmaps\">");
        foreach (var p in set.Heads)
        {
            sb.Append(PatternSvg(p));
        }
        sb.Append("</div>");
        sb.Append(TokenView(set));
        sb.Append("</div>");
        return sb.ToString();
    }

    /// <summary>The token view alone (the report's script, inlined), one row per head.</summary>
    public static string TokenView(HeadPatternSet set)
    {
        var first = set.Heads[0];
        if (first.QueryLength != first.KeyLength)
        {
            // a decode step's pattern (one query over the cache) has no token view: each query would need its own row
            return "<p class=\"hw-def\">(no token view: the pattern has " + first.QueryLength + " queries over " + first.KeyLength + " keys)</p>";
        }
        string id = "hw-tv-" + Guid.NewGuid().ToString("N");
        int T = first.KeyLength;
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("tokens");
            for (int i = 0; i < T; i++)
            {
                w.WriteStringValue(first.Label(i));
            }
            w.WriteEndArray();
            w.WriteStartArray("heads");
            foreach (var p in set.Heads)
            {
                w.WriteStartObject();
                w.WriteString("name", p.Head.ToString());
                w.WriteStartArray("rows");
                for (int q = 0; q < T; q++)
                {
                    w.WriteStartArray();
                    for (int k = 0; k < T; k++)
                    {
                        w.WriteNumberValue(Math.Round(p[q, k], 4));
                    }
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        // the default JSON encoder escapes < > & and non-ASCII, so no token text can close the script element
        string json = Encoding.UTF8.GetString(buffer.ToArray());
        return $"<style>{HtmlReport.TokenViewStyle}</style><div id=\"{id}\" class=\"hw-tokenview\"></div>"
            + $"<script>{HtmlReport.TokenViewScript}\nheadwiseTokenView(document.getElementById(\"{id}\"), {json});</script>";
    }

    /// <summary>A layer × head grid: each cell coloured by its value on viridis from the grid's minimum to its maximum.</summary>
    public static string Scores(HeadScores scores)
    {
        var finite = scores.Values.SelectMany(r => r).Where(float.IsFinite).ToArray();
        float lo = finite.Length == 0 ? 0 : finite.Min(), hi = finite.Length == 0 ? 0 : finite.Max();
        var sb = new StringBuilder();
        sb.Append(Style).Append("<div class=\"headwise\"><h4>").Append(Enc(scores.Name)).Append("</h4>")
            .Append("<p class=\"hw-def\">").Append(Enc(scores.Definition)).Append(". Rows are layers, columns are heads; colour from ")
            .Append(Num(lo)).Append(" to ").Append(Num(hi)).Append(".</p>");
        if (scores.Warning is { } warning)
        {
            sb.Append("<p class=\"hw-warn\">⚠ ").Append(Enc(warning)).Append("</p>");
        }
        sb.Append("<table class=\"hw-grid\"><tr><th>L \\ H</th>");
        for (int h = 0; h < scores.Heads; h++)
        {
            sb.Append("<th>").Append(h).Append("</th>");
        }
        sb.Append("</tr>");
        for (int l = 0; l < scores.Layers; l++)
        {
            sb.Append("<tr><th>").Append(l).Append("</th>");
            for (int h = 0; h < scores.Heads; h++)
            {
                float v = scores.Values[l][h];
                double t = hi > lo && float.IsFinite(v) ? (v - lo) / (hi - lo) : 0;
                var (r, g, b) = Heatmap.Viridis(t);
                sb.Append(CultureInfo.InvariantCulture, $"<td title=\"head {l}.{h}: {Enc(scores.Name)} = {v.ToString("R", CultureInfo.InvariantCulture)}\" style=\"background: rgb({r}, {g}, {b}); color: {(t > 0.62 ? "#111" : "#fff")}\">")
                    .Append(float.IsFinite(v) ? Num(v) : "–").Append("</td>");
            }
            sb.Append("</tr>");
        }
        sb.Append("</table></div>");
        return sb.ToString();
    }

    /// <summary>A report table (a section of <c>headwise report</c>) as an HTML table with its title and explanation.</summary>
    public static string Table(ReportTable table)
    {
        var sb = new StringBuilder();
        sb.Append(Style).Append("<div class=\"headwise\"><h4>").Append(Enc(table.Title)).Append("</h4><p class=\"hw-def\">")
            .Append(Enc(table.Caption)).Append("</p><table class=\"hw-table\"><tr>");
        foreach (var c in table.Columns)
        {
            sb.Append("<th>").Append(Enc(c)).Append("</th>");
        }
        sb.Append("</tr>");
        foreach (var row in table.Rows)
        {
            sb.Append("<tr>");
            foreach (var cell in row)
            {
                sb.Append("<td>").Append(Enc(cell)).Append("</td>");
            }
            sb.Append("</tr>");
        }
        if (table.Rows.Count == 0)
        {
            sb.Append("<tr><td colspan=\"").Append(table.Columns.Count).Append("\"><i>(none)</i></td></tr>");
        }
        sb.Append("</table></div>");
        return sb.ToString();
    }

    /// <summary>A whole report, inline: the self-contained page of <c>headwise report</c> in a sandboxed frame.</summary>
    public static string Report(ReportData data)
        => "<iframe sandbox=\"allow-scripts\" style=\"width: 100%; height: 900px; border: 1px solid #ddd\" srcdoc=\""
            + WebUtility.HtmlEncode(HtmlReport.Render(data)) + "\"></iframe>";

    /// <summary>A tensor: its shape, and its values as a table when it is a small matrix, else a summary and the first values.</summary>
    public static string Tensor(Tensor tensor)
    {
        var sb = new StringBuilder();
        var data = tensor.Data;
        sb.Append(Style).Append("<div class=\"headwise\"><h4>Tensor [").Append(string.Join(", ", tensor.Shape)).Append("]</h4>");
        if (tensor.Rank <= 2 && data.Length <= 400)
        {
            int cols = tensor.Rank == 2 ? tensor.Shape[1] : Math.Max(1, data.Length);
            sb.Append("<table class=\"hw-table\">");
            for (int i = 0; i < data.Length; i += cols)
            {
                sb.Append("<tr>");
                for (int j = 0; j < cols && i + j < data.Length; j++)
                {
                    sb.Append("<td>").Append(Num(data[i + j])).Append("</td>");
                }
                sb.Append("</tr>");
            }
            sb.Append("</table>");
        }
        else if (data.Length > 0)
        {
            var finite = data.Where(float.IsFinite).ToArray();
            sb.Append("<p class=\"hw-def\">").Append(data.Length).Append(" values");
            if (finite.Length > 0)
            {
                sb.Append(": min ").Append(Num(finite.Min())).Append(", max ").Append(Num(finite.Max()))
                    .Append(", mean ").Append(Num((float)finite.Average(x => (double)x)));
            }
            if (finite.Length < data.Length)
            {
                sb.Append(", ").Append(data.Length - finite.Length).Append(" not finite");
            }
            sb.Append(". First values: ").Append(string.Join(", ", data.Take(8).Select(Num))).Append(data.Length > 8 ? ", …" : "").Append("</p>");
        }
        sb.Append("</div>");
        return sb.ToString();
    }

    /// <summary>One head's heatmap as SVG: a rect per (query, key) cell with a tooltip, token labels on both axes, a title.</summary>
    private static string PatternSvg(HeadPattern p)
    {
        int TQ = p.QueryLength, TK = p.KeyLength, offset = TK - TQ; // queries are the last TQ positions
        int cs = Math.Clamp(480 / Math.Max(TQ, TK), 4, 16);
        bool labels = cs >= 8;
        int left = labels ? 90 : 10, top = labels ? 80 : 24;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"hw-pattern\" data-head=\"{p.Head}\" width=\"{left + TK * cs + 8}\" height=\"{top + TQ * cs + 8}\">");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"12\" style=\"font-weight: bold\">head {p.Head}</text>");
        if (labels)
        {
            for (int k = 0; k < TK; k++)
            {
                int x = left + k * cs + cs * 3 / 4, y = top - 4;
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x}\" y=\"{y}\" transform=\"rotate(-90 {x} {y})\">{Enc(Short(p.Label(k)))}</text>");
            }
            for (int q = 0; q < TQ; q++)
            {
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{left - 4}\" y=\"{top + q * cs + cs * 3 / 4}\" text-anchor=\"end\">{Enc(Short(p.Label(q + offset)))}</text>");
            }
        }
        for (int q = 0; q < TQ; q++)
        {
            for (int k = 0; k < TK; k++)
            {
                float w = p[q, k];
                var (r, g, b) = Heatmap.Viridis(w);
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left + k * cs}\" y=\"{top + q * cs}\" width=\"{cs}\" height=\"{cs}\" fill=\"rgb({r},{g},{b})\"><title>query {q + offset} {Enc(Quote(p.Label(q + offset)))} → key {k} {Enc(Quote(p.Label(k)))}: {w.ToString("R", CultureInfo.InvariantCulture)}</title></rect>");
            }
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string Short(string s) => s.Length > 12 ? s[..11] + "…" : s;

    private static string Quote(string s) => JsonSerializer.Serialize(s);

    private static string Enc(string s) => WebUtility.HtmlEncode(s);

    private static string Num(float v) => v == 0 ? "0"
        : Math.Abs(v) >= 100 ? v.ToString("F0", CultureInfo.InvariantCulture)
        : Math.Abs(v) < 0.001 ? v.ToString("0e0", CultureInfo.InvariantCulture)
        : v.ToString("G2", CultureInfo.InvariantCulture);
}
