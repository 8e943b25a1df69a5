using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Headwise.Analysis;
using Headwise.Interactive;
using Headwise.Models;
using Headwise.Reports;
using Microsoft.DotNet.Interactive.Formatting;

namespace Headwise.Tests.Notebooks;

/// <summary>
/// The HTML the notebook formatters produce, checked against the records they render: every heatmap cell's tooltip holds
/// the cached weight exactly, the token view's data holds the pattern and the labels, grids hold every head's value, and no
/// text from a model (token labels, score names) can break out of its element.
/// </summary>
public sealed partial class FormatterTests
{
    internal static (LoadedModel Model, int[] Ids, string[] Labels, Hooks.ActivationCache Cache) Demo()
    {
        var m = ModelLoader.Load(Paths.DemoModel);
        var tok = m.RequireTokenizer();
        var ids = tok.Encode("Once upon a time, there was a girl. The girl liked to play.");
        var (_, cache) = m.Model.RunWithCache(ModelInput.Single(ids));
        return (m, ids, ReportBuilder.Labels(tok, ids), cache);
    }

    [Fact]
    public void PatternHtmlHoldsEveryWeightAndTheTokenView()
    {
        var (m, ids, labels, cache) = Demo();
        using var _ = m;
        HeadwiseFormatters.Register();
        var p = cache.Pattern(1, 2, tokens: labels);
        int T = ids.Length;
        Assert.Equal((T, T), (p.QueryLength, p.KeyLength));
        // the accessor reads hook_pattern [batch, head, q, k] as it is cached
        var raw = cache["blocks.1.attn.hook_pattern"];
        Assert.Equal(raw[0, 2, 5, 3], p[5, 3]);

        string html = Formatter.ToDisplayString(p, HtmlFormatter.MimeType);
        Assert.Contains("Attention pattern of head 1.2", html, StringComparison.Ordinal);
        var cells = CellTitle().Matches(html);
        Assert.Equal(T * T, cells.Count);
        foreach (Match c in cells)
        {
            int q = int.Parse(c.Groups[1].Value, CultureInfo.InvariantCulture), k = int.Parse(c.Groups[2].Value, CultureInfo.InvariantCulture);
            Assert.Equal(p[q, k], float.Parse(c.Groups[3].Value, CultureInfo.InvariantCulture));
        }

        using var data = TokenViewData(html);
        Assert.Equal(labels, data.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!));
        var head = Assert.Single(data.RootElement.GetProperty("heads").EnumerateArray());
        Assert.Equal("1.2", head.GetProperty("name").GetString());
        var rows = head.GetProperty("rows");
        for (int q = 0; q < T; q++)
        {
            for (int k = 0; k < T; k++)
            {
                Assert.Equal(p[q, k], rows[q][k].GetDouble(), 0.00005 + 1e-7); // 4 decimals
            }
        }
    }

    [Fact]
    public void PatternSetHasOneRowPerHeadInOrder()
    {
        var (m, _, labels, cache) = Demo();
        using var _ = m;
        var set = cache.Patterns([new HeadId(3, 0), new HeadId(0, 1)], tokens: labels);
        string html = HeadwiseHtml.PatternSet(set);
        Assert.Contains("Attention patterns of heads 3.0, 0.1", html, StringComparison.Ordinal);
        using var data = TokenViewData(html);
        Assert.Equal(["3.0", "0.1"], data.RootElement.GetProperty("heads").EnumerateArray().Select(h => h.GetProperty("name").GetString()));
        Assert.Equal(2, Regex.Count(html, "<svg "));
    }

    [Fact]
    public void TextFromTheModelCannotBreakOutOfItsElement()
    {
        string evil = "</script><img src=x onerror=alert(1)>";
        var p = new HeadPattern(new HeadId(0, 0), 2, 2, [1, 0, 0.5f, 0.5f], [evil, "\"quoted\" & <b>"]);
        string html = HeadwiseHtml.Pattern(p);
        Assert.DoesNotContain("<img", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>", html, StringComparison.Ordinal);
        Assert.Equal(1, Regex.Count(html, "</script>")); // only the formatter's own
        using var data = TokenViewData(html);
        Assert.Equal(evil, data.RootElement.GetProperty("tokens")[0].GetString()); // escaped, not lost

        var scores = new HeadScores("<i>name</i>", "definition <script>", [[1f, 2f], [3f, float.NaN]]) { Warning = "a <u>warning</u>" };
        string grid = HeadwiseHtml.Scores(scores);
        Assert.DoesNotContain("<i>", grid, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", grid, StringComparison.Ordinal);
        Assert.DoesNotContain("<u>", grid, StringComparison.Ordinal);
    }

    [Fact]
    public void ScoreGridShowsEveryHeadAndTheWarning()
    {
        HeadwiseFormatters.Register();
        var scores = HeadScores.Create("induction", "a test score", 3, 4, (l, h) => l * 10 + h) with { Warning = "gap too small" };
        string html = Formatter.ToDisplayString(scores, HtmlFormatter.MimeType);
        var cells = GridTitle().Matches(html);
        Assert.Equal(12, cells.Count);
        foreach (Match c in cells)
        {
            int l = int.Parse(c.Groups[1].Value, CultureInfo.InvariantCulture), h = int.Parse(c.Groups[2].Value, CultureInfo.InvariantCulture);
            Assert.Equal(l * 10 + h, float.Parse(c.Groups[3].Value, CultureInfo.InvariantCulture));
        }
        Assert.Contains("⚠ gap too small", html, StringComparison.Ordinal);
        // the lowest head is the low end of viridis, the highest the high end
        Assert.Contains("title=\"head 0.0: induction = 0\" style=\"background: rgb(68, 1, 84)", html, StringComparison.Ordinal);
        Assert.Contains("title=\"head 2.3: induction = 23\" style=\"background: rgb(253, 231, 37)", html, StringComparison.Ordinal);
    }

    [Fact]
    public void TablesReportsAndTensorsRender()
    {
        HeadwiseFormatters.Register();
        var table = ReportBuilder.TopTable(HeadScores.Create("sink", "attention on position 0", 2, 2, (l, h) => l + h / 10f), 3);
        string t = Formatter.ToDisplayString(table, HtmlFormatter.MimeType);
        Assert.Contains("<th>rank</th><th>head</th><th>sink</th>", t, StringComparison.Ordinal);
        Assert.Contains("<td>1</td><td>1.1</td>", t, StringComparison.Ordinal);

        var small = new Tensor([1, 2, 3, 4, 5, 6], 2, 3);
        string s = Formatter.ToDisplayString(small, HtmlFormatter.MimeType);
        Assert.Contains("Tensor [2, 3]", s, StringComparison.Ordinal);
        Assert.Contains("<tr><td>4</td><td>5</td><td>6</td></tr>", s, StringComparison.Ordinal);
        var large = new Tensor(Enumerable.Range(0, 1000).Select(i => (float)i).ToArray(), 10, 10, 10);
        string l = Formatter.ToDisplayString(large, HtmlFormatter.MimeType);
        Assert.Contains("1000 values: min 0, max 999, mean 500", l, StringComparison.Ordinal);

        var (m, _, _, _) = Demo();
        using var _ = m;
        var report = ReportBuilder.Build(m.Model, m.Tokenizer, new ReportOptions { MaxTokens = 8, Analyses = false });
        string r = Formatter.ToDisplayString(report, HtmlFormatter.MimeType);
        Assert.StartsWith("<iframe sandbox=\"allow-scripts\"", r, StringComparison.Ordinal);
        Assert.Contains("srcdoc=\"&lt;!doctype html&gt;", r, StringComparison.Ordinal);
    }

    [Fact]
    public void PatternAccessorNamesWhatIsMissing()
    {
        var (m, _, labels, cache) = Demo();
        using var _ = m;
        var e = Assert.Throws<InvalidInputException>(() => cache.Pattern(9, 0));
        Assert.Contains("'blocks.9.attn.hook_pattern' is not in the cache", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidInputException>(() => cache.Pattern(1, 7));
        Assert.Contains("head 1.7", e.Message, StringComparison.Ordinal);
        Assert.Contains("4 heads", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidInputException>(() => cache.Pattern(1, 0, tokens: labels[1..]));
        Assert.Contains($"{labels.Length - 1} token labels for a pattern over {labels.Length} key positions", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The JSON handed to headwiseTokenView in a fragment.</summary>
    internal static JsonDocument TokenViewData(string html)
    {
        var m = TokenViewCall().Match(html);
        Assert.True(m.Success, "no headwiseTokenView call in the HTML");
        return JsonDocument.Parse(m.Groups[1].Value);
    }

    [GeneratedRegex(@"<title>query (\d+) [^<]* → key (\d+) [^<]*: ([^<]+)</title>")]
    private static partial Regex CellTitle();

    [GeneratedRegex(@"title=""head (\d+)\.(\d+): [^=]* = ([^""]+)""")]
    private static partial Regex GridTitle();

    [GeneratedRegex(@"headwiseTokenView\(document\.getElementById\(""hw-tv-[0-9a-f]+""\), (\{.*\})\);</script>", RegexOptions.Singleline)]
    private static partial Regex TokenViewCall();
}
