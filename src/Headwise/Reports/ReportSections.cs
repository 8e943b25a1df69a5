using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Statistics;
using Headwise.Analysis.Tasks;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Reports;

/// <summary>
/// The report's sections beyond the detectors, one small function each: every one calls a library analysis unchanged and
/// turns its result into <see cref="HeadScores"/> (a grid choice) or <see cref="ReportTable"/>s. None computes anything itself.
/// </summary>
public static class ReportSections
{
    public const string CircuitsSection = "Composition (circuits)";
    public const string StatisticsSection = "Attention statistics";
    public const string ExplainSection = "Does attention explain the prediction?";

    /// <summary>Mean-ablation importance on the prompt: <see cref="Ablation.Importance"/> with <see cref="AblationMethod.Mean"/>
    /// and <see cref="MetricKind.Loss"/>, so a value is how many nats of next-token loss the prompt loses without the head.</summary>
    public static HeadScores Importance(TransformerModel model, int[] tokens, IProgress<AnalysisProgress>? progress, CancellationToken cancel,
        Action<HookSet>? baseHooks = null)
    {
        var s = Ablation.Importance(model, InterventionTarget.FromTokens(tokens), AblationMethod.Mean, MetricKind.Loss, progress, cancel, baseHooks);
        return s with { Name = "importance", Definition = $"{s.Definition} — mean ablation (z replaced by its mean over the prompt), next-token loss" };
    }

    /// <summary>The split <see cref="ContextSensitivity"/> uses here: BOS kept, the final max(1, min(4, n/4)) tokens compared.</summary>
    public static (int KeepPrefix, int Final) ContextSplit(TransformerModel model, int[] tokens)
    {
        int keep = model.Config.BosTokenId is int bos && tokens.Length > 0 && tokens[0] == bos ? 1 : 0;
        int final = Math.Max(1, Math.Min(4, (tokens.Length - keep) / 4));
        return (keep, final);
    }

    /// <summary><see cref="ContextSensitivity.Compute"/> on the prompt with the context removed (see <see cref="ContextSplit"/>).</summary>
    public static HeadScores Context(TransformerModel model, int[] tokens, CancellationToken cancel, Action<HookSet>? baseHooks = null)
    {
        var (keep, final) = ContextSplit(model, tokens);
        return ContextSensitivity.Compute(model, tokens, final, null, keep, cancel, baseHooks);
    }

    /// <summary>Half-length of the induction patching prompts: 16 random ids (fewer in a short context).</summary>
    public static int PatchingHalf(TransformerModel model)
    {
        var c = model.Config;
        return Math.Max(2, Math.Min(16, (c.MaxPositions - (c.BosTokenId is null ? 0 : 1)) / 2));
    }

    /// <summary>
    /// The clean/corrupted pairs of the induction patching: clean = <see cref="TaskLibrary.RepeatedTokens"/> (random ids, then
    /// the same ids again; BOS first when the model has one), corrupted = the same prompt with its first half replaced by other
    /// random ids (so the second half is no longer a repeat). Metric: the task's second-half loss (lower = better copying).
    /// </summary>
    public static PatchPair[] InductionPairs(TransformerModel model, int count = 2, int seed = 0)
    {
        var c = model.Config;
        int half = PatchingHalf(model), lo = Math.Min(100, c.VocabSize / 4);
        var clean = TaskLibrary.RepeatedTokens(c.VocabSize, half, count, seed, c.BosTokenId, lo);
        var other = TaskLibrary.RepeatedTokens(c.VocabSize, half, count, seed + 1, c.BosTokenId, lo);
        int start = c.BosTokenId is null ? 0 : 1, V = c.VocabSize;
        var pairs = new PatchPair[count];
        for (int i = 0; i < count; i++)
        {
            int item = i;
            var corrupted = (int[])clean.Prompts[i].Clean.Clone();
            Array.Copy(other.Prompts[i].Clean, start, corrupted, start, half);
            pairs[i] = new PatchPair(clean.Prompts[i].Clean, corrupted, logits => clean.Score(item, logits, V), PatchMetricScale.For(TaskMetric.SecondHalfLoss, V));
        }
        return pairs;
    }

    /// <summary><see cref="ActivationPatching.Run"/> of every head's z on <see cref="InductionPairs"/>: 1 = the head's clean
    /// output alone restores the clean second-half loss, 0 = it restores nothing — when the clean run copies (its loss beats the
    /// corrupted one's by 0.25 nats and chance); else raw loss differences with the scores' <see cref="HeadScores.Warning"/>.</summary>
    public static HeadScores InductionPatching(TransformerModel model, IProgress<AnalysisProgress>? progress, CancellationToken cancel,
        Action<HookSet>? baseHooks = null)
    {
        var pairs = InductionPairs(model);
        var r = ActivationPatching.Run(model, pairs, PatchSite.Z, perPosition: false, progress, cancel, baseHooks);
        return r.Scores with
        {
            Name = "induction patching",
            Definition = $"{r.Scores.Definition}, on {pairs.Length} prompts of {PatchingHalf(model)} random ids repeated twice "
                + $"(corrupted: other ids in the first half); metric: second-half loss, clean {r.CleanMetric:F3}, corrupted {r.CorruptedMetric:F3} nats",
        };
    }

    /// <summary>
    /// The OV copying score of every head (<see cref="CircuitAnalysis.CopyingScore(FactoredMatrix, MathNet.Numerics.LinearAlgebra.Matrix{double})"/>
    /// with G = <see cref="HeadWeights.UnembedEmbed"/> computed once) and the top composition pairs
    /// (<see cref="CircuitAnalysis.Compute(TransformerModel, CircuitOptions, IProgress{AnalysisProgress}, CancellationToken)"/>).
    /// Scored head by head so that a head whose eigenvalue solver does not converge is NaN (shown "–", and named in the
    /// returned note) instead of losing the whole grid.
    /// </summary>
    public static (HeadScores Copying, ReportTable Composition, string? Note) Circuits(TransformerModel model, int top,
        IProgress<AnalysisProgress>? progress, CancellationToken cancel)
    {
        var c = model.Config;
        var weights = HeadWeights.Read(model);
        var g = HeadWeights.UnembedEmbed(model, cancel);
        var failed = new List<HeadId>();
        var copying = HeadScores.Create("OV copying",
            "Σλ / Σ|λ| over the eigenvalues λ of the head's OV circuit W_E·W_OV·W_U (1: it copies the tokens it attends to, −1: it suppresses them)",
            c.NLayers, c.NHeads, (l, h) =>
            {
                cancel.ThrowIfCancellationRequested();
                double score = CircuitAnalysis.CopyingScore(weights[l][h].OV, g); // NaN when the eigen-solver fails
                if (double.IsNaN(score))
                {
                    failed.Add(new HeadId(l, h));
                }
                return (float)score;
            });
        var r = CircuitAnalysis.Compute(model, new CircuitOptions(SingularValues: false, CopyingScores: false), progress, cancel);
        string? note = failed.Count == 0 ? null
            : $"OV copying: the eigenvalue solver did not converge for head(s) {string.Join(", ", failed)}; shown as –.";
        return (copying, CompositionTable(r, top), note);
    }

    /// <summary>The <paramref name="top"/> highest pairs over Q-, K- and V-composition together (a one-layer model has none).</summary>
    public static ReportTable CompositionTable(CircuitsResult r, int top)
    {
        var pairs = new[] { r.Q, r.K, r.V }.Where(s => s is not null)
            .SelectMany(s => s!.Top(int.MaxValue).Select(p => (s.Kind, p.From, p.To, p.Score)))
            .OrderByDescending(p => p.Score).ThenBy(p => p.From).ThenBy(p => p.To).ThenBy(p => p.Kind, StringComparer.Ordinal).Take(top);
        var rows = pairs.Select((p, i) => (IReadOnlyList<string>)
            [N(i + 1), p.Kind, p.From.ToString(), p.To.ToString(), F(p.Score, "F3")]).ToList();
        return new ReportTable("Top composition pairs",
            $"from the weights alone, highest first over all three kinds. {CircuitAnalysis.QDefinition}; {CircuitAnalysis.KDefinition}; {CircuitAnalysis.VDefinition}. Compare a pair with the rest of the table: unrelated heads do not score 0."
                + (rows.Count == 0 ? " A one-layer model has no pairs." : ""),
            ["rank", "kind", "writer", "reader", "score"], rows, HeadColumn: 3, Section: CircuitsSection);
    }

    /// <summary><see cref="AttentionStatistics.Compute"/> on the prompt: effective rank and row kurtosis grids, and the
    /// layer × layer similarity table.</summary>
    public static (HeadScores EffectiveRank, HeadScores Kurtosis, ReportTable LayerSimilarity) Statistics(TransformerModel model, int[] tokens,
        ActivationCache cache, IProgress<AnalysisProgress>? progress, CancellationToken cancel)
    {
        var r = AttentionStatistics.Compute(model, tokens, cache, progress: progress, cancel: cancel);
        int L = r.LayerSimilarity.Length;
        var rows = Enumerable.Range(0, L).Select(a => (IReadOnlyList<string>)
            [N(a), .. Enumerable.Range(0, L).Select(b => F(r.LayerSimilarity[a][b], "F2"))]).ToList();
        var table = new ReportTable("Layer × layer attention similarity",
            $"{AttentionStatisticsResult.Similarity} of the layers' head-averaged patterns on the prompt ({tokens.Length} tokens); 1 = they attend identically",
            ["layer", .. Enumerable.Range(0, L).Select(N)], rows, Section: StatisticsSection);
        return (r.EffectiveRank, r.Kurtosis, table);
    }

    /// <summary><see cref="AttentionSinks.Compute"/> on the prompt: one row per sink position.</summary>
    public static ReportTable Sinks(TransformerModel model, int[] tokens, ActivationCache cache, string[] labels)
    {
        var r = AttentionSinks.Compute(model, tokens, cache);
        var rows = r.Sinks.Select(s =>
        {
            var per = r.Layers.Where(l => s.Layers.Contains(l.Layer)).Select(l => (l.Sinks.Single(x => x.Position == s.Position).ResidNorm, l.MedianResidNorm)).ToArray();
            return (IReadOnlyList<string>)
            [
                Quote(labels[s.Position]), N(s.Position), s.Primary ? "primary" : "secondary", F(s.MeanReceived, "F3"),
                Layers(s.Layers), F(per.Average(p => p.ResidNorm), "G4"), F(per.Average(p => p.MedianResidNorm), "G4"),
            ];
        }).ToList();
        string none = rows.Count == 0 ? " No position met both thresholds on this prompt." : "";
        return new ReportTable("Attention sinks",
            $"{AttentionSinksResult.Definition} (RatioThreshold {r.RatioThreshold:G3}, MassThreshold {r.MassThreshold:G3}). Attention mass: mean share of a "
                + $"later query's attention (averaged over its sink layers); ‖resid‖: norm of hook_resid_pre at the sink vs. the prompt's median, averaged over those layers.{none}",
            ["token", "position", "kind", "attention mass", "layers", "‖resid‖", "median ‖resid‖"], rows, Section: StatisticsSection);
    }

    /// <summary><see cref="TokenCentrality.Compute"/> on the prompt: the <paramref name="top"/> most central tokens of each layer.</summary>
    public static ReportTable Centrality(TransformerModel model, int[] tokens, ActivationCache cache, string[] labels, int top)
    {
        var r = TokenCentrality.Compute(model, tokens, cache);
        int k = Math.Min(top, tokens.Length);
        var rows = r.Centrality.Select((c, l) => (IReadOnlyList<string>)
        [
            N(l), .. Enumerable.Range(0, c.Length).OrderByDescending(i => c[i]).ThenBy(i => i).Take(k)
                .Select(i => $"{Quote(labels[i])} @{i} ({c[i].ToString("F2", CultureInfo.InvariantCulture)})"),
        ]).ToList();
        return new ReportTable("Token centrality per layer",
            $"{TokenCentralityResult.Definition}; α = {r.Alpha}. The {k} most central tokens of each layer as token @position (centrality)",
            ["layer", .. Enumerable.Range(1, k).Select(i => $"top {i}")], rows, Section: StatisticsSection);
    }

    /// <summary><see cref="AttentionExplanation.Compute"/> on the prompt: rank agreement of attention and rollout with
    /// leave-one-out, and the tokens leave-one-out ranks highest.</summary>
    public static ReportTable Explain(TransformerModel model, int[] tokens, ActivationCache cache, string[] labels, Func<int, string> tokenText,
        int top, IProgress<AnalysisProgress>? progress, CancellationToken cancel, Action<HookSet>? baseHooks = null)
    {
        var r = AttentionExplanation.Compute(model, tokens, cache, progress, cancel, baseHooks);
        string TopOf(double[] x) => string.Join(", ", Enumerable.Range(0, x.Length).OrderByDescending(i => x[i]).ThenBy(i => i).Take(Math.Min(3, top))
            .Select(i => $"{Quote(labels[i])} @{i}"));
        var rows = new List<IReadOnlyList<string>>
        {
            new[] { "last-layer attention", F(r.AttentionVsLeaveOneOut.KendallTauB, "F3"), F(r.AttentionVsLeaveOneOut.SpearmanRho, "F3"), TopOf(r.Attention) },
            new[] { "attention rollout", F(r.RolloutVsLeaveOneOut.KendallTauB, "F3"), F(r.RolloutVsLeaveOneOut.SpearmanRho, "F3"), TopOf(r.Rollout) },
            new[] { "leave-one-out (reference)", "1", "1", TopOf(r.LeaveOneOut) },
        };
        return new ReportTable("Attention vs. leave-one-out",
            $"Predicted next token after the {tokens.Length}-token prompt: {tokenText(r.PredictedToken)} (log p = {r.LogProb:F3}). Importance of each context token: "
                + "last layer's head-averaged attention from the last position; rollout (Abnar and Zuidema); leave-one-out = log p(predicted) − log p(predicted without the token). "
                + "Kendall τ-b and Spearman ρ of each ranking against leave-one-out: near 1 = attention explains the prediction, near 0 = it does not",
            ["importance", "Kendall τ-b", "Spearman ρ", "top tokens"], rows, Section: ExplainSection);
    }

    public const string ComparisonSection = "Model comparison";

    /// <summary><see cref="Evaluation.ModelComparison"/> as a table: one row per model, the report's model first.</summary>
    public static ReportTable Comparison(Evaluation.ModelComparison r) => new("Models side by side",
        $"Mean next-token NLL (nats) and perplexity of each model on the same {r.Tokens} tokens (window {r.Window}), ΔNLL against the first "
            + "(this report's model), parameters, and the bytes the KV cache holds per token. Timings are not part of a report: run headwise compare for them",
        ["model", "family", "parameters", "KV bytes/token", "mean NLL", "perplexity", "ΔNLL"],
        r.Models.Select(m => (IReadOnlyList<string>)
        [
            m.Name, m.Family, m.Parameters.ToString("N0", CultureInfo.InvariantCulture), m.KvCacheBytesPerToken.ToString("N0", CultureInfo.InvariantCulture),
            F(m.MeanNll, "F4"), F(m.Perplexity, "F3"), m.DeltaNll.ToString("+0.0000;-0.0000;0", CultureInfo.InvariantCulture),
        ]).ToList(), Section: ComparisonSection);

    /// <summary>A token label in quotes, so leading spaces show: "#1" stays bare (an id without text).</summary>
    public static string Quote(string label) => System.Text.RegularExpressions.Regex.IsMatch(label, @"^#\d+$") ? label : $"\"{label}\"";

    private static string Layers(int[] layers) => string.Join(", ", layers.Select(N));

    private static string N(int i) => i.ToString(CultureInfo.InvariantCulture);

    private static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
}
