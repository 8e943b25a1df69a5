using System.Globalization;
using System.Text;
using Headwise.Analysis;
using Headwise.Analysis.Statistics;
using Headwise.Evaluation;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Reports;
using Headwise.Training.Experiments;
using Headwise.Training.Plots;

namespace Headwise.Interventions;

/// <summary>The heads of one layer whose attention on <paramref name="Sinks"/> is redistributed.</summary>
public sealed record SinkTarget(int Layer, int[] Heads, int[] Sinks);

/// <summary>The held-out loss with a share <paramref name="Fraction"/> of the sink attention moved; <paramref name="Change"/> = loss − plain loss.</summary>
public sealed record SinkFractionRow(double Fraction, double Loss, double Change);

/// <summary>
/// One model's sweep. <paramref name="Found"/>: the sinks analysis found sinks at its thresholds and <paramref name="Targets"/>
/// are its layers (every head) and positions; otherwise the targets are the heads that give the primary sink, position 0, at
/// least its uniform share (<paramref name="PrimaryRatios"/> ≥ 1: the analysis's ratio, per head).
/// </summary>
public sealed record SinkRedistributionModel(string Model, string Text, int Tokens, bool Found, double RatioThreshold,
    double MassThreshold, double[][] PrimaryRatios, SinkTarget[] Targets, double PlainLoss, SinkFractionRow[] Rows);

public sealed record SinkRedistributionResult(SinkRedistributionModel[] Models);

/// <summary>
/// The sink-redistribution finding [See What You Are Told]: find the attention sinks of a model on a fixed text
/// (<see cref="AttentionSinks"/>), apply <c>redistribute_sink</c> to the heads of the layers they are in, and measure the
/// text's loss (as <c>headwise eval</c> computes it: window = the model's context, stride half of it) over a range of fractions.
/// Fraction 0 redistributes nothing and is the plain model (run without hooks, so its row is the plain loss exactly).
/// </summary>
public static class SinkRedistributionExperiment
{
    public static readonly double[] DefaultFractions = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

    public static SinkRedistributionModel Run(TransformerModel model, string modelName, int[] ids, string textName,
        IReadOnlyList<double>? fractions = null, double ratioThreshold = 3, double massThreshold = 0.1, CancellationToken cancel = default)
    {
        fractions ??= DefaultFractions;
        var c = model.Config;
        int window = c.MaxPositions, stride = Math.Max(1, window / 2);
        // the sinks of the first window (the analysis reads one sequence)
        var first = ids[..Math.Min(ids.Length, window)];
        var cache = PatternCache.Run(model, first);
        var sinks = AttentionSinks.Compute(model, first, cache, ratioThreshold, massThreshold, cancel);
        var ratios = PrimarySinkRatios(cache, c, first.Length);
        bool found = sinks.Layers.Any(l => l.Sinks.Length > 0);
        SinkTarget[] targets = found
            ? [.. sinks.Layers.Where(l => l.Sinks.Length > 0).Select(l => new SinkTarget(l.Layer, [.. Enumerable.Range(0, c.NHeads)], [.. l.Sinks.Select(s => s.Position)]))]
            : PrimarySinkHeads(ratios, 1);

        double plain = Perplexity.Evaluate(model, ids, window, stride, cancel: cancel).MeanNll;
        var rows = new List<SinkFractionRow>();
        foreach (double f in fractions)
        {
            cancel.ThrowIfCancellationRequested();
            double loss = plain;
            if (f != 0 && targets.Length > 0)
            {
                using var applied = RecipeApplication.Apply(RecipeAt(targets, f), model);
                loss = Perplexity.Evaluate(applied.Model, ids, window, stride, cancel: cancel, hooks: applied.CreateHooks()).MeanNll;
            }
            rows.Add(new SinkFractionRow(f, loss, loss - plain));
        }
        return new SinkRedistributionModel(modelName, textName, ids.Length, found, ratioThreshold, massThreshold, ratios, targets, plain, [.. rows]);
    }

    /// <summary>Per head, the sinks analysis's ratio for position 0: mean over queries q ≥ 1 of (q + 1)·A[q, 0], how many times
    /// the uniform share 1/(q + 1) it draws. [layer][head]</summary>
    public static double[][] PrimarySinkRatios(ActivationCache cache, ModelConfig c, int T)
    {
        var ratios = new double[c.NLayers][];
        for (int l = 0; l < c.NLayers; l++)
        {
            ratios[l] = new double[c.NHeads];
            var p = cache[$"blocks.{l}.attn.hook_pattern"].Data; // [1, NH, T, T]
            for (int h = 0; h < c.NHeads; h++)
            {
                double sum = 0;
                for (int q = 1; q < T; q++)
                {
                    sum += (q + 1) * (double)p[(h * T + q) * T];
                }
                ratios[l][h] = T > 1 ? sum / (T - 1) : 0;
            }
        }
        return ratios;
    }

    // when the analysis finds no sink: the heads that give position 0 at least its uniform share (ratio ≥ 1), the nearest
    // thing to a sink these heads have — so the sweep still measures what moving attention off position 0 does
    private static SinkTarget[] PrimarySinkHeads(double[][] ratios, double ratioThreshold) =>
        [.. ratios.Select((row, l) => new SinkTarget(l, [.. Enumerable.Range(0, row.Length).Where(h => row[h] >= ratioThreshold)], [0]))
            .Where(t => t.Heads.Length > 0)];

    /// <summary>The recipe of one fraction: one <c>redistribute_sink</c> item per target layer.</summary>
    public static Recipe RecipeAt(IReadOnlyList<SinkTarget> targets, double fraction) =>
        new(string.Create(CultureInfo.InvariantCulture, $"redistribute sink attention, fraction {fraction}"),
            [.. targets.Select(t => new RedistributeSink([.. t.Heads.Select(h => new HeadId(t.Layer, h))], fraction, t.Sinks))])
        { Source = "sink-redistribution" };

    /// <summary>Writes DIR/report.md, DIR/result.json, DIR/loss-change.png (loss change against fraction, one line per model,
    /// palette order) and DIR/recipes/MODEL-fFRACTION.json (each fraction's recipe, for <c>eval --intervene</c>). Returns report.md's path.</summary>
    public static string WriteReport(SinkRedistributionResult r, string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "recipes"));
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ExperimentReports.ToJson(r));
        LineChart.Write(Path.Combine(dir, "loss-change.png"), [.. r.Models.Select(m => new ChartSeries(
            [.. m.Rows.Select(x => x.Fraction)], [.. m.Rows.Select(x => x.Change)]))], includeZero: true);
        string F(double v, int d = 4) => v.ToString("F" + d, CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.AppendLine("# Sink redistribution");
        sb.AppendLine();
        sb.AppendLine("For each model: the sinks analysis (`headwise sinks`) on a fixed text finds the layers and positions that draw outsized attention; "
            + "`redistribute_sink` then moves a fraction f of the attention on those positions to the other visible keys, in proportion "
            + "to their attention, in every head of those layers. Loss = mean next-token NLL of the text as `headwise eval` computes it; "
            + "change = loss − plain loss (f = 0 is the plain model).");
        sb.AppendLine();
        foreach (var m in r.Models)
        {
            sb.AppendLine($"## {m.Model}");
            sb.AppendLine();
            sb.AppendLine($"Text: {m.Text} ({m.Tokens} tokens). Plain loss {F(m.PlainLoss)} nats/token.");
            sb.AppendLine();
            string where = string.Join("; ", m.Targets.Select(t => $"layer {t.Layer}, heads {string.Join(",", t.Heads.Select(h => $"{t.Layer}.{h}"))}, positions {string.Join(",", t.Sinks)}"));
            sb.AppendLine(m.Found
                ? $"Sinks found (≥ {m.RatioThreshold.ToString(CultureInfo.InvariantCulture)}× uniform and ≥ {F(m.MassThreshold, 2)} of later queries' attention): {where}."
                : $"No sink at the analysis's thresholds (≥ {m.RatioThreshold.ToString(CultureInfo.InvariantCulture)}× uniform and ≥ {F(m.MassThreshold, 2)} of later queries' attention). "
                    + $"Per head, position 0 draws at most {F(m.PrimaryRatios.SelectMany(x => x).DefaultIfEmpty(0).Max(), 2)}× its uniform share (mean over queries q ≥ 1 of (q + 1)·A[q, 0]). "
                    + (m.Targets.Length == 0 ? "No head gives position 0 even its uniform share: nothing to redistribute."
                        : $"Redistributed instead: position 0 in the heads that give it at least its uniform share: {where}."));
            sb.AppendLine();
            sb.AppendLine("| fraction | loss | change |");
            sb.AppendLine("|---|---|---|");
            foreach (var row in m.Rows)
            {
                sb.AppendLine($"| {F(row.Fraction, 1)} | {F(row.Loss)} | {(row.Change >= 0 ? "+" : "")}{F(row.Change)} |");
                AtomicFile.WriteAllText(Path.Combine(dir, "recipes", $"{FileName(m.Model)}-f{F(row.Fraction, 1)}.json"), RecipeAt(m.Targets, row.Fraction).ToJson());
            }
            sb.AppendLine();
        }
        string legend = string.Join(", ", r.Models.Select((m, i) => $"{m.Model} {ColourName(i)}"));
        sb.AppendLine($"![loss change](loss-change.png) — loss change against the fraction (x from 0 to 1; y includes 0): {legend}.");
        sb.AppendLine();
        sb.AppendLine("Each fraction's recipe is in `recipes/`; `headwise eval --model M --text-file TEXT --intervene recipes/...json` reproduces its row.");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    private static string ColourName(int i) => (i % 4) switch { 0 => "blue", 1 => "orange", 2 => "green", _ => "red" };

    private static string FileName(string model) => new([.. model.Select(ch => char.IsLetterOrDigit(ch) ? ch : '-')]);
}
