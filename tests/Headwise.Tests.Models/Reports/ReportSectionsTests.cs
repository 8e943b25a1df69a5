using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Statistics;
using Headwise.Loading;
using Headwise.Reports;

namespace Headwise.Tests.Models.Reports;

/// <summary>
/// The report's sections beyond the detectors: each grid is the library analysis's own output on the report's prompt, and on
/// the hand-built induction circuit (0.0 previous-token, 1.0 induction; nothing else writes to the residual stream) every
/// section singles out the constructed heads.
/// </summary>
public sealed class ReportSectionsTests
{
    private static readonly DetectorScoreSource Quick = new(seqLen: 8, batch: 2);

    [Fact]
    public void GridsAreTheLibraryAnalysesOnTheReportPrompt()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var model = m.Model;
        var data = ReportBuilder.Build(model, null, new ReportOptions { TopK = 3 }, scoreSource: Quick);
        var ids = data.Patterns.TokenIds;
        HeadScores Grid(string name) => data.Scores.Single(s => s.Name == name);

        Assert.Equal(Ablation.Importance(model, InterventionTarget.FromTokens(ids), AblationMethod.Mean, MetricKind.Loss).Values, Grid("importance").Values);
        Assert.Contains("mean ablation", Grid("importance").Definition, StringComparison.Ordinal);

        // context: BOS kept, the last max(1, min(4, (T − 1) / 4)) tokens compared
        var (keep, final) = ReportSections.ContextSplit(model, ids);
        Assert.Equal((1, Math.Max(1, Math.Min(4, (ids.Length - 1) / 4))), (keep, final));
        Assert.Equal(ContextSensitivity.Compute(model, ids, final, null, keep).Values, Grid("context-sensitivity").Values);

        var stats = AttentionStatistics.Compute(model, ids, PatternCache.Run(model, ids));
        Assert.Equal(stats.EffectiveRank.Values, Grid("effective rank").Values);
        Assert.Equal(stats.Kurtosis.Values, Grid("row kurtosis").Values);
        var similarity = data.Tables.Single(t => t.Title == "Layer × layer attention similarity");
        Assert.Equal(stats.LayerSimilarity[0][1].ToString("F2", System.Globalization.CultureInfo.InvariantCulture), similarity.Rows[0][2]);
        Assert.Equal("1.00", similarity.Rows[1][2]);

        var circuits = CircuitAnalysis.Compute(model, new CircuitOptions(SingularValues: false, Composition: false));
        foreach (var h in circuits.Heads)
        {
            Assert.Equal((float)h.CopyingScore, Grid("OV copying")[h.Head]);
        }

        var pairs = ReportSections.InductionPairs(model);
        Assert.Equal(ActivationPatching.Run(model, pairs, PatchSite.Z).Scores.Values, Grid("induction patching").Values);
        ReportBuilderTests.AssertPageMatches(data);
    }

    [Fact]
    public void InductionPatchingPairsCorruptOnlyTheFirstHalf()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        int n = ReportSections.PatchingHalf(m.Model);
        foreach (var p in ReportSections.InductionPairs(m.Model))
        {
            Assert.Equal(1 + 2 * n, p.Clean.Length);
            Assert.Equal(m.Config.BosTokenId, p.Clean[0]);
            Assert.Equal(p.Clean[1..(1 + n)], p.Clean[(1 + n)..]);      // clean: the second half repeats the first
            Assert.Equal(p.Clean[(1 + n)..], p.Corrupted[(1 + n)..]);  // corrupted: same second half ...
            Assert.NotEqual(p.Clean[1..(1 + n)], p.Corrupted[1..(1 + n)]); // ... after another first half
            Assert.Equal(p.Clean[0], p.Corrupted[0]);
        }
    }

    [Fact]
    public void ConstructedInductionCircuitIsSingledOutBySection()
    {
        using var model = ToyModels.InductionCircuit();
        var data = ReportBuilder.Build(model, null, new ReportOptions { TopK = 3, MaxExplainTokens = 4 }, scoreSource: Quick);
        HeadId prev = ToyModels.InductionPreviousTokenHeadId, induction = ToyModels.InductionHeadId;
        HeadScores Grid(string name) => data.Scores.Single(s => s.Name == name);

        // the prompt is random ids repeated twice. Only the two circuit heads write to the residual stream, so mean-ablating any
        // other head changes nothing. Without 0.0 the second half is no longer predicted (loss up); without 1.0 the loss over the
        // whole prompt goes *down*: the circuit predicts the second half perfectly, but in the first half its copy is a confident
        // wrong guess, which a mean output beats by more than the second half loses.
        var importance = Grid("importance");
        Assert.True(importance[prev] > 1f, $"importance of 0.0: {importance[prev]}");
        Assert.True(importance[induction] < -0.5f, $"importance of 1.0: {importance[induction]}");
        Assert.All(importance.Ranked().Where(r => r.Head != induction && r.Head != prev), r => Assert.Equal(0f, r.Score, 1e-4f));

        // patching the induction head's clean output into the corrupted run restores (almost) all of the clean loss
        var patching = Grid("induction patching");
        Assert.Equal(induction, patching.Top(1)[0].Head);
        Assert.True(patching[induction] > 0.9f, $"induction head restores {patching[induction]}");
        Assert.All(patching.Ranked().Where(r => r.Head != induction && r.Head != prev), r => Assert.Equal(0f, r.Score, 1e-4f));

        // the last tokens' induction output is made of the context (the earlier occurrence); the other writers' is not
        Assert.Equal(induction, Grid("context-sensitivity").Top(1)[0].Head);
        // only the induction head maps tokens to their own logits
        Assert.Equal(induction, Grid("OV copying").Top(1)[0].Head);
        Assert.True(Grid("OV copying")[induction] > 0.9f);
        Assert.All(Grid("OV copying").Ranked().Where(r => r.Head != induction), r => Assert.True(!(Math.Abs(r.Score) > 1e-4f), $"{r.Head}: {r.Score}"));

        // composition: the K-composition 0.0 → 1.0 heads the table
        var composition = data.Tables.Single(t => t.Section == ReportSections.CircuitsSection);
        Assert.Equal(["1", "K", prev.ToString(), induction.ToString()], composition.Rows[0].Take(4));
        Assert.Equal(3, composition.Rows.Count);

        // the top-heads table of each new grid names the same head
        string Top(string score) => data.Tables.Single(t => t.Title == $"Top heads: {score}").Rows[0][1];
        Assert.Equal(induction.ToString(), Top("induction patching"));
        Assert.Equal(induction.ToString(), Top("OV copying"));
        ReportBuilderTests.AssertPageMatches(data);
    }

    [Fact]
    public void SinkHeadMakesPositionZeroTheSinkAndTheMostCentralToken()
    {
        // the two tables straight from their section functions, on the prompt the report would use (the full build is above)
        using var model = ToyModels.SinkHead();
        int[] ids = [.. Enumerable.Range(0, 32).Select(i => (i * 37 + 5) % ToyModels.VocabSize)];
        var labels = ReportBuilder.Labels(null, ids);
        var cache = PatternCache.Run(model, ids);
        var sinks = ReportSections.Sinks(model, ids, cache, labels);
        Assert.Equal("0", sinks.Rows[0][1]);
        Assert.Equal("primary", sinks.Rows[0][2]);
        Assert.Equal($"#{ids[0]}", sinks.Rows[0][0]);
        Assert.Equal("0", sinks.Rows[0][4]); // one layer
        // the sink head puts ~all its weight on position 0: a quarter of the layer average, plus the other heads' share
        Assert.True(double.Parse(sinks.Rows[0][3], System.Globalization.CultureInfo.InvariantCulture) > 0.25);
        var centrality = ReportSections.Centrality(model, ids, cache, labels, top: 3);
        Assert.Equal(["layer", "top 1", "top 2", "top 3"], centrality.Columns);
        Assert.StartsWith($"#{ids[0]} @0 (", centrality.Rows[0][1], StringComparison.Ordinal);
        Assert.Equal(TokenCentrality.Compute(model, ids, cache).Centrality[0][0].ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + ")",
            centrality.Rows[0][1].Split('(')[1]);

        // no head of this toy writes to the residual stream: the induction prompts' loss is the same clean and corrupted, so
        // patching has nothing to recover — the library refuses, and the report turns that into a note (AddSections)
        var e = Assert.Throws<InvalidInputException>(() => ReportSections.InductionPatching(model, null, default));
        Assert.Contains("nothing to recover", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExplainTableAgreesWithTheLibraryAndASectionThatCannotRunIsANote()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var data = ReportBuilder.Build(m.Model, null, new ReportOptions { MaxExplainTokens = 6 }, scoreSource: Quick);
        var ids = data.Patterns.TokenIds[..6];
        var r = AttentionExplanation.Compute(m.Model, ids, PatternCache.Run(m.Model, ids));
        var table = data.Tables.Single(t => t.Section == ReportSections.ExplainSection);
        string F(double v) => v.ToString("F3", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal([F(r.AttentionVsLeaveOneOut.KendallTauB), F(r.AttentionVsLeaveOneOut.SpearmanRho)], table.Rows[0].Skip(1).Take(2));
        Assert.Equal([F(r.RolloutVsLeaveOneOut.KendallTauB), F(r.RolloutVsLeaveOneOut.SpearmanRho)], table.Rows[1].Skip(1).Take(2));
        Assert.Contains($"#{r.PredictedToken}", table.Caption, StringComparison.Ordinal);
        Assert.Contains(data.Notes, n => n.Contains("first 6 of the prompt's", StringComparison.Ordinal));

        // two tokens: explain needs three, so it is skipped with a note and the rest of the report is still there
        var tiny = ReportBuilder.Build(m.Model, null, new ReportOptions { MaxTokens = 2 }, scoreSource: Quick);
        Assert.Contains(tiny.Notes, n => n.StartsWith("attention vs. leave-one-out: skipped (", StringComparison.Ordinal));
        Assert.DoesNotContain(tiny.Tables, t => t.Section == ReportSections.ExplainSection);
        Assert.Contains(tiny.Scores, s => s.Name == "importance");
    }

    [Fact]
    public void CancellingDuringASectionStopsTheReport()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        using var cts = new CancellationTokenSource();
        var stages = new List<string>();
        var progress = new SyncProgress(p =>
        {
            stages.Add(p.Stage);
            if (p.Stage == "OV circuits" && p.Done == 0)
            {
                cts.Cancel();
            }
        });
        Assert.ThrowsAny<OperationCanceledException>(() => ReportBuilder.Build(m.Model, null, new ReportOptions(), progress, cts.Token, Quick));
        Assert.DoesNotContain("pattern statistics", stages);
    }

    private sealed class SyncProgress(Action<AnalysisProgress> report) : IProgress<AnalysisProgress>
    {
        public void Report(AnalysisProgress value) => report(value);
    }
}
