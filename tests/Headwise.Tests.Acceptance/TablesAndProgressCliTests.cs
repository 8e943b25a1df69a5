using System.Globalization;
using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>The commands whose tables moved onto Spectre.Console (CliTable) and whose progress moved onto its live
/// display: on a redirected run (the tests' writers) the tables are plain aligned columns with their header and row cells,
/// and no progress is redrawn in place — no '\r' anywhere.</summary>
public sealed class TablesAndProgressCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("hw-tables-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    // a plain CliTable line: its cells are separated by spaces
    private static string[] Cells(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static void AssertNoCarriageReturn(CliRunner.Result r)
    {
        Assert.DoesNotContain('\r', r.Stdout.Replace(Environment.NewLine, "\n", StringComparison.Ordinal));
        Assert.DoesNotContain('\r', r.Stderr.Replace(Environment.NewLine, "\n", StringComparison.Ordinal));
    }

    [Fact]
    public void PatternsPrintsOneRowPerQueryUnderNumberedKeyColumns()
    {
        var r = CliRunner.Run("patterns", "--model", CliRunner.DemoModel, "--text", "The cat sat on the mat", "--head", "1.0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertNoCarriageReturn(r);
        using var json = JsonDocument.Parse(CliRunner.Run("patterns", "--model", CliRunner.DemoModel, "--text", "The cat sat on the mat", "--head", "1.0", "--json").Stdout);
        int T = json.RootElement.GetProperty("tokens").GetArrayLength();

        var lines = r.Stdout.Split('\n').Select(l => l.TrimEnd()).ToArray();
        int header = Array.FindIndex(lines, l => Cells(l).SequenceEqual(Enumerable.Range(0, T).Select(k => k.ToString(CultureInfo.InvariantCulture))));
        Assert.True(header > 0, "a header line with the key positions 0.." + (T - 1) + ":\n" + r.Stdout);
        for (int q = 0; q < T; q++)
        {
            // the query's label, then its q + 1 visible keys in percent (blank above the diagonal): they sum to 100 up to rounding
            var percents = Cells(lines[header + 1 + q])[^(q + 1)..].Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
            Assert.InRange(percents.Sum(), 100 - (q + 1), 100 + (q + 1));
        }
        Assert.Contains("0=", lines[header + 1 + T + 1]); // the legend under the table
    }

    [Fact]
    public void PatternsOnAnImagePrintsThePatchGridWithNumberedRowsAndColumns()
    {
        string vit = CliRunner.Golden("vit_cls");
        var r = CliRunner.Run("patterns", "--model", vit, "--image", Path.Combine(vit, "image.png"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertNoCarriageReturn(r);
        var lines = r.Stdout.Split('\n').Select(l => l.TrimEnd()).ToArray();
        int header = Array.FindIndex(lines, l => Cells(l).SequenceEqual(["0", "1", "2", "3"]));
        Assert.True(header > 0, r.Stdout);
        double total = 0;
        for (int row = 0; row < 4; row++)
        {
            string[] cells = Cells(lines[header + 1 + row]);
            Assert.Equal(5, cells.Length);
            Assert.Equal(row.ToString(CultureInfo.InvariantCulture), cells[0]);
            total += cells[1..].Sum(c => double.Parse(c, CultureInfo.InvariantCulture));
        }
        // the CLS's attention on the 16 patches and on itself (in the title line) is its whole row
        string itself = lines[header - 1][(lines[header - 1].LastIndexOf(' ') + 1)..].TrimEnd('%');
        Assert.Equal(100, total + double.Parse(itself, CultureInfo.InvariantCulture), 0.5);
    }

    [Fact]
    public void TrainLogsPlainStepLinesWhenRedirected()
    {
        string data = Path.Combine(_dir, "data.txt");
        File.WriteAllText(data, string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 80)));
        var r = CliRunner.Run("train", "--data", data, "--out", Path.Combine(_dir, "run"), "--layers", "1", "--d-model", "16",
            "--heads", "2", "--seq-len", "16", "--steps", "4", "--batch", "2", "--eval-every", "0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertNoCarriageReturn(r);
        Assert.Contains(r.Stderr.Split('\n'), l => l.StartsWith("step 4/4  loss ", StringComparison.Ordinal));
        Assert.Contains("steps        4/4", r.Stdout);
    }

    [Fact]
    public void InfluenceLogsPlainRateLinesWhenRedirected()
    {
        string corpus = Path.Combine(_dir, "two.jsonl");
        File.WriteAllLines(corpus, new[] { "The cat sat on the mat.", "Once upon a time there was a girl." }
            .Select((t, i) => JsonSerializer.Serialize(new { id = $"t{i}", text = t })));
        var r = CliRunner.Run("influence", "--model", CliRunner.DemoModel, "--corpus", corpus, "--heads", "1.2", "--out", Path.Combine(_dir, "out"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertNoCarriageReturn(r);
        Assert.Contains(r.Stderr.Split('\n'), l => l.StartsWith("[shard 0/1] 2/2 documents, ", StringComparison.Ordinal) && l.Contains("done in"));
    }

    [Fact]
    public void BenchPrintsTheGemmAndBandwidthFiguresAsATable()
    {
        var r = CliRunner.Run("bench", "--quick", "--skip-load", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertNoCarriageReturn(r);
        var lines = r.Stdout.Split('\n').Select(l => l.TrimEnd()).ToArray();
        int header = Array.FindIndex(lines, l => Cells(l).SequenceEqual(["1", "thread", "1", "threads"]));
        Assert.True(header > 0, r.Stdout);
        // one row per measure, a figure under each thread count
        string gemm = lines[header + 1], bandwidth = lines.Single(l => l.StartsWith("memory bandwidth ", StringComparison.Ordinal));
        Assert.StartsWith("GEMM 256³ ", gemm);
        Assert.Equal(2, Cells(gemm).Count(c => c == "GFLOP/s"));
        Assert.Equal(2, Cells(bandwidth).Count(c => c == "GB/s"));
        Assert.Contains(lines, l => l.StartsWith("scalar twin (192³) ", StringComparison.Ordinal) && l.Contains("× the naive loop"));
        Assert.Contains(lines, l => l.StartsWith("OpenBLAS ", StringComparison.Ordinal));
    }

    [Fact]
    public void TasksListsEachTaskWithItsMetricUnderAHeader()
    {
        var r = CliRunner.Run("tasks");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertNoCarriageReturn(r);
        var lines = r.Stdout.Split('\n').Select(l => l.TrimEnd()).ToArray();
        Assert.Equal(["task", "description"], Cells(lines[0]));
        int ioi = Array.FindIndex(lines, l => l.StartsWith("ioi ", StringComparison.Ordinal));
        Assert.True(ioi > 0, r.Stdout);
        Assert.StartsWith("metric: ", lines[ioi + 1].TrimStart());
    }
}
