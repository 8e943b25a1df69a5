using System.Text.Json;
using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Loading;
using Headwise.Reports;

namespace Headwise.Tests.Models.Reports;

/// <summary>The report of real models: every head in the grid and the patterns, the embedded data equal to the records.</summary>
public sealed class ReportBuilderTests
{
    [Fact]
    public void Stories260KReportHasEveryHeadAndTheCappedPrompt()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var data = ReportBuilder.Build(m.Model, m.Tokenizer, new ReportOptions { MaxTokens = 40, ModelName = "stories260K" });
        Assert.Equal((5, 8), (data.Info.Layers, data.Info.Heads));
        Assert.Equal(["previous-token", "induction", "duplicate-token", "sink", "entropy", "attention distance",
            "importance", "induction patching", "context-sensitivity", "OV copying", "effective rank", "row kurtosis"], data.Scores.Select(s => s.Name));
        Assert.Equal([ReportTable.TopHeadsSection, ReportSections.CircuitsSection, ReportSections.StatisticsSection, ReportSections.ExplainSection],
            data.Tables.Select(t => t.Section).Distinct());
        Assert.All(data.Scores, s => Assert.Equal((5, 8), (s.Layers, s.Heads)));
        // the default prompt is longer than 40 tokens: cut to 40, and the page says so
        var full = m.RequireTokenizer().Encode(ReportBuilder.DefaultText);
        Assert.True(full.Length > 40);
        Assert.Equal(full[..40], data.Patterns.TokenIds);
        Assert.Contains(data.Notes, n => n.Contains($"has {full.Length} tokens", StringComparison.Ordinal) && n.Contains("first 40", StringComparison.Ordinal));
        // labels are the text: after BOS they concatenate to the decoded ids
        Assert.Equal(m.RequireTokenizer().Decode(data.Patterns.TokenIds), string.Concat(data.Patterns.Tokens.Skip(1)));
        AssertPageMatches(data);
    }

    [Fact]
    public void TinyGoldenWithoutTokenizerUsesRepeatedRandomTokens()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var data = ReportBuilder.Build(m.Model, null, new ReportOptions());
        Assert.Equal((2, 4), (data.Info.Layers, data.Info.Heads));
        var ids = data.Patterns.TokenIds;
        int n = (ids.Length - 1) / 2;
        Assert.Equal(m.Config.BosTokenId, ids[0]);
        Assert.Equal(ids[1..(1 + n)], ids[(1 + n)..]);
        Assert.All(data.Patterns.Tokens.Zip(ids), p => Assert.Equal($"#{p.Second}", p.First));
        AssertPageMatches(data);
        Assert.Throws<InvalidInputException>(() => ReportBuilder.Build(m.Model, null, new ReportOptions { Text = "hi" }));
    }

    [Fact]
    public void CancelledBuildStopsBeforeAnyWork()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => ReportBuilder.Build(m.Model, null, new ReportOptions(), null, cts.Token));
    }

    [Fact]
    public void CancellingMidRunStopsAtTheNextForwardAndReportsProgressUntilThen()
    {
        // Ctrl-C in the CLI cancels this token: cancel as soon as the first detector forward has been reported
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        using var cts = new CancellationTokenSource();
        var seen = new List<AnalysisProgress>();
        var progress = new SyncProgress(p =>
        {
            seen.Add(p);
            if (p.Done == 1)
            {
                cts.Cancel();
            }
        });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            ReportBuilder.Build(m.Model, null, new ReportOptions(), progress, cts.Token, new DetectorScoreSource(seqLen: 8, batch: 5)));
        Assert.Equal([0, 1], seen.Select(p => p.Done));
        Assert.All(seen, p => Assert.Equal(5, p.Total));

        // uncancelled, progress runs through the detectors and then the patterns
        seen.Clear();
        ReportBuilder.Build(m.Model, null, new ReportOptions(), new SyncProgress(seen.Add), default, new DetectorScoreSource(seqLen: 8, batch: 2));
        var stages = seen.Select(p => p.Stage).Distinct().ToList();
        Assert.Equal(["detectors", "patterns", "importance", "ablating heads", "induction patching", "patching z", "context sensitivity"], stages.Take(7));
        Assert.Equal(["OV circuits", "circuits", "pattern statistics", "statistics", "sinks", "centrality", "attention vs. leave-one-out", "leave-one-out"],
            stages.Skip(7).Where(s => !s.EndsWith("-composition", StringComparison.Ordinal)));
        Assert.Equal(new AnalysisProgress("attention vs. leave-one-out", 1, 1), seen[^1]);
        // each section reports its start and its end, in order
        foreach (var section in new[] { "importance", "induction patching", "context sensitivity", "OV circuits", "pattern statistics", "sinks", "centrality", "attention vs. leave-one-out" })
        {
            Assert.Equal([0, 1], seen.Where(p => p.Stage == section).Select(p => p.Done));
        }

        // the detector-only report skips them all
        seen.Clear();
        var plain = ReportBuilder.Build(m.Model, null, new ReportOptions { Analyses = false }, new SyncProgress(seen.Add), default, new DetectorScoreSource(seqLen: 8, batch: 2));
        Assert.Equal(["detectors", "patterns"], seen.Select(p => p.Stage).Distinct());
        Assert.Equal(6, plain.Scores.Count);
    }

    private sealed class SyncProgress(Action<AnalysisProgress> report) : IProgress<AnalysisProgress>
    {
        public void Report(AnalysisProgress value) => report(value);
    }

    [Fact]
    public void ScoresAreTheDetectorsOwn()
    {
        // the report slots HeadDetectors in unchanged: same options, same numbers, in the detectors' order
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        var data = ReportBuilder.Build(m.Model, null, new ReportOptions(), scoreSource: new DetectorScoreSource(seqLen: 6, batch: 2, seed: 3));
        var direct = HeadDetectors.Run(m.Model, null, new HeadDetectorOptions(SeqLen: 6, Batch: 2, Seed: 3));
        Assert.Equal(direct.All.Select(s => s.Scores.Name), data.Scores.Take(6).Select(s => s.Name));
        foreach (var (score, expected) in data.Scores.Zip(direct.All.Select(s => s.Scores)))
        {
            Assert.Equal(expected.Values, score.Values);
        }
        // and the patterns are PatternAnalysis's, only relabelled
        var again = Headwise.Analysis.Patterns.PatternAnalysis.Run(m.Model, data.Patterns.TokenIds);
        Assert.Equal(again.Patterns, data.Patterns.Patterns);
    }

    [Fact]
    public void ConstructedInductionCircuitTopsItsTables()
    {
        // known by construction: 0.0 is a previous-token head, 1.0 an induction head (ToyModels)
        using var model = Headwise.Analysis.Constructed.ToyModels.InductionCircuit();
        var data = ReportBuilder.Build(model, null, new ReportOptions { TopK = 3, Analyses = false }, scoreSource: new DetectorScoreSource(seqLen: 20, batch: 2));
        string Top(string score) => data.Tables.Single(t => t.Title == $"Top heads: {score}").Rows[0][1];
        Assert.Equal(Headwise.Analysis.Constructed.ToyModels.InductionHeadId.ToString(), Top("induction"));
        Assert.Equal(Headwise.Analysis.Constructed.ToyModels.InductionPreviousTokenHeadId.ToString(), Top("previous-token"));
        Assert.All(data.Tables.Where(t => t.Section == ReportTable.TopHeadsSection), t => Assert.Equal(3, t.Rows.Count));
        AssertPageMatches(data);
    }

    /// <summary>Renders the page and checks its JSON blob against the records: shape, every score, every pattern row.</summary>
    internal static void AssertPageMatches(ReportData data)
    {
        string html = HtmlReport.Render(data);
        using var doc = JsonDocument.Parse(HtmlReport.ExtractDataJson(html));
        var root = doc.RootElement;
        int L = data.Info.Layers, H = data.Info.Heads, T = data.Patterns.Length;
        Assert.Equal(L, root.GetProperty("layers").GetInt32());
        Assert.Equal(H, root.GetProperty("heads").GetInt32());
        var scores = root.GetProperty("scores");
        Assert.Equal(data.Scores.Count, scores.GetArrayLength());
        for (int i = 0; i < data.Scores.Count; i++)
        {
            var values = scores[i].GetProperty("values");
            Assert.Equal(L, values.GetArrayLength());
            for (int l = 0; l < L; l++)
            {
                Assert.Equal(H, values[l].GetArrayLength());
                for (int h = 0; h < H; h++)
                {
                    float v = data.Scores[i].Values[l][h];
                    if (!float.IsFinite(v))
                    {
                        Assert.Equal(JsonValueKind.Null, values[l][h].ValueKind); // JSON has no NaN: the page shows "–"
                        continue;
                    }
                    Assert.Equal(v, values[l][h].GetDouble(), Math.Max(1e-5, 5e-4 * Math.Abs(v)));
                }
            }
        }
        var heads = root.GetProperty("patterns").GetProperty("heads");
        Assert.Equal(L * H, heads.GetArrayLength());
        for (int l = 0; l < L; l++)
        {
            for (int h = 0; h < H; h++)
            {
                var rows = heads[l * H + h];
                Assert.Equal(T, rows.GetArrayLength());
                for (int q = 0; q < T; q++)
                {
                    double sum = 0;
                    for (int k = 0; k <= q; k++)
                    {
                        float w = data.Patterns.At(new HeadId(l, h), q, k);
                        double stored = rows[q][k].GetDouble();
                        Assert.Equal(w, stored, Math.Max(1e-5, 5e-3 * w)); // 3 significant digits
                        sum += stored;
                    }
                    // each query's weights still sum to one: 3 significant digits err by at most 0.5% each, dropped values by 1e-5
                    Assert.Equal(1.0, sum, 5e-3 + T * 1e-5);
                    for (int k = q + 1; k < T; k++)
                    {
                        Assert.Equal(0f, data.Patterns.At(new HeadId(l, h), q, k)); // what the page leaves out is zero
                    }
                }
            }
        }
        // one top-heads table per score, then the other tables, each with its section and cells as in the record
        var tables = root.GetProperty("tables");
        Assert.Equal(data.Tables.Count, tables.GetArrayLength());
        Assert.Equal(data.Scores.Count, data.Tables.Count(t => t.Section == ReportTable.TopHeadsSection));
        for (int i = 0; i < data.Tables.Count; i++)
        {
            Assert.Equal(data.Tables[i].Section, tables[i].GetProperty("section").GetString());
            Assert.Equal(data.Tables[i].Title, tables[i].GetProperty("title").GetString());
            Assert.Equal(data.Tables[i].Rows.Select(r => r.ToArray()), tables[i].GetProperty("rows").EnumerateArray().Select(r => r.EnumerateArray().Select(c => c.GetString()!).ToArray()));
        }
    }
}
