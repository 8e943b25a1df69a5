using System.Text.Json;
using Headwise.Analysis;
using Headwise.Reports;

namespace Headwise.Tests.Unit.Reports;

/// <summary>The page from hand-made records: the embedded JSON reads back as the records, text cannot break out of it.</summary>
public sealed class HtmlReportTests
{
    private static ReportData Sample()
    {
        // 2 layers × 2 heads, T = 3; head 1.1 attends to the previous token
        float[] Uniform() => [1f, 0f, 0f, 0.5f, 0.5f, 0f, 1 / 3f, 1 / 3f, 1 / 3f];
        float[] prev = [1f, 0f, 0f, 1f, 0f, 0f, 0f, 1f, 0f];
        var patterns = new AttentionPatterns([1, 2, 3], ["<BOS>", " </script>", "é\"x"], [[Uniform(), Uniform()], [Uniform(), prev]]);
        var scores = new HeadScores("previous-token", "mean A[q, q−1]", [[0.25f, 0.125f], [0.123456f, 1f]]);
        var table = ReportBuilder.TopTable(scores, 2);
        return new ReportData(new ReportInfo("t <&>", 2, 2, [new("layers", "2")]), [scores], patterns, [table], ["a note"]);
    }

    [Fact]
    public void EmbeddedDataRoundTrips()
    {
        var data = Sample();
        string html = HtmlReport.Render(data);
        using var doc = JsonDocument.Parse(HtmlReport.ExtractDataJson(html));
        var root = doc.RootElement;
        Assert.Equal("t <&>", root.GetProperty("title").GetString());
        Assert.Equal(2, root.GetProperty("layers").GetInt32());
        Assert.Equal(2, root.GetProperty("heads").GetInt32());
        var s = root.GetProperty("scores")[0];
        Assert.Equal("previous-token", s.GetProperty("name").GetString());
        var values = s.GetProperty("values");
        for (int l = 0; l < 2; l++)
        {
            for (int h = 0; h < 2; h++)
            {
                Assert.Equal(data.Scores[0].Values[l][h], values[l][h].GetDouble(), 4e-4 * Math.Abs(data.Scores[0].Values[l][h]));
            }
        }
        var p = root.GetProperty("patterns");
        Assert.Equal(data.Patterns.Tokens, p.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(data.Patterns.TokenIds, p.GetProperty("ids").EnumerateArray().Select(t => t.GetInt32()));
        var heads = p.GetProperty("heads");
        Assert.Equal(4, heads.GetArrayLength());
        for (int l = 0; l < 2; l++)
        {
            for (int h = 0; h < 2; h++)
            {
                var rows = heads[l * 2 + h];
                for (int q = 0; q < 3; q++)
                {
                    Assert.Equal(q + 1, rows[q].GetArrayLength()); // keys 0..q only
                    for (int k = 0; k <= q; k++)
                    {
                        Assert.Equal(data.Patterns.At(new HeadId(l, h), q, k), rows[q][k].GetDouble(), 1e-3);
                    }
                }
            }
        }
        var t = root.GetProperty("tables")[0];
        Assert.Equal(1, t.GetProperty("head_column").GetInt32());
        Assert.Equal("1.1", t.GetProperty("rows")[0][1].GetString());
        Assert.Equal("0.0", t.GetProperty("rows")[1][1].GetString());
    }

    [Fact]
    public void TablesKeepTheirSectionAndEmptyTablesAndNaNScoresSurvive()
    {
        var data = Sample();
        var nan = new HeadScores("copying", "d", [[float.NaN, 0.5f], [1f, -1f]]);
        var sinks = new ReportTable("Attention sinks", "none here", ["token", "position"], [], Section: "Attention statistics");
        data = data with { Scores = [.. data.Scores, nan], Tables = [.. data.Tables, ReportBuilder.TopTable(nan, 5), sinks] };
        string html = HtmlReport.Render(data);
        using var doc = JsonDocument.Parse(HtmlReport.ExtractDataJson(html));
        var tables = doc.RootElement.GetProperty("tables");
        Assert.Equal(["Top heads", "Top heads", "Attention statistics"], tables.EnumerateArray().Select(t => t.GetProperty("section").GetString()));
        Assert.Equal(0, tables[2].GetProperty("rows").GetArrayLength());
        // NaN is JSON null, and the top-heads table leaves the head without a value out
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("scores")[1].GetProperty("values")[0][0].ValueKind);
        Assert.Equal(["1.0", "0.1", "1.1"], tables[1].GetProperty("rows").EnumerateArray().Select(r => r[1].GetString()));
        // the page groups tables by section (one heading each) and draws "(none)" for an empty table
        Assert.Contains("id=\"table-sections\"", html, StringComparison.Ordinal);
        Assert.Contains("sectionOf(t.section", html, StringComparison.Ordinal);
        Assert.Contains("\"(none)\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void PageIsSelfContained()
    {
        string html = HtmlReport.Render(Sample());
        // the token " </script>" must not end the data element early (three script elements: the data, the token view's
        // function, the page's script), and nothing is fetched from anywhere
        Assert.Equal(3, html.Split("</script>").Length - 1);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=", html, StringComparison.Ordinal);
        Assert.Contains("<title>t &lt;&amp;&gt;</title>", html, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.123456f, 3, "0.123")]
    [InlineData(0.000012345f, 3, "1.23e-05")]
    [InlineData(0.000001f, 3, "0")]
    [InlineData(1f, 3, "1")]
    [InlineData(21.9012f, 4, "21.9")]
    [InlineData(float.NaN, 4, "null")]
    public void NumbersKeepTheirSignificantDigits(float v, int digits, string expected) =>
        Assert.Equal(expected, HtmlReport.Number(v, digits));

    [Fact]
    public void WriteIsAtomicAndLeavesNoTemporaryFile()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hw-report-" + Guid.NewGuid().ToString("N"));
        try
        {
            string path = Path.Combine(dir, "sub", "r.html");
            File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(dir, "sub")).FullName, "r.html"), "old");
            string written = HtmlReport.Write(path, Sample());
            Assert.Equal(Path.GetFullPath(path), written);
            Assert.StartsWith("<!doctype html>", File.ReadAllText(path), StringComparison.Ordinal);
            Assert.Equal(["r.html"], Directory.GetFiles(Path.Combine(dir, "sub")).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
