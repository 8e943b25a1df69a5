using System.Globalization;
using System.Text;
using Headwise.Reports;
using Headwise.Training.Plots;

namespace Headwise.Training.Experiments;

/// <summary>Writes the intervention findings (Talking Heads, factual recall) as report.md, result.json and PNG figures, as
/// <see cref="ExperimentReports"/> does for the training findings.</summary>
public static class FindingsReports
{
    private static string F(double v, int digits = 3) => v.ToString("F" + digits, CultureInfo.InvariantCulture);

    public static string WriteTalkingHeads(TalkingHeadsResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ExperimentReports.ToJson(r));
        var o = r.Options;
        var t = r.Training.Options;
        int n = t.ListLength;
        var positions = Enumerable.Range(1, n).Select(p => (double)p).ToArray();
        TalkingHeadsEdit Edit(string name) => r.Edits.Single(e => e.Name == name);
        LineChart.Write(Path.Combine(dir, "ov-edits-by-position.png"), positions,
            [r.Original.AccuracyByPosition, Edit("ov-remove-channel").Score.AccuracyByPosition,
             Edit("ov-amplify-channel").Score.AccuracyByPosition, Edit("ov-remove-control").Score.AccuracyByPosition]);
        LineChart.Write(Path.Combine(dir, "qk-edits-by-position.png"), positions,
            [r.Original.AccuracyByPosition, Edit("qk-remove-channel").Score.AccuracyByPosition,
             Edit("qk-amplify-channel").Score.AccuracyByPosition, Edit("qk-remove-control").Score.AccuracyByPosition]);
        LineChart.Write(Path.Combine(dir, "channel-shares.png"),
            [new ChartSeries([.. r.WriterComponents.Select(c => (double)c.Index)], [.. r.WriterComponents.Select(c => c.Share)], Dots: true),
             new ChartSeries([.. r.ReaderComponents.Select(c => (double)c.Index)], [.. r.ReaderComponents.Select(c => c.Share)], Dots: true)],
            includeZero: true);

        var sb = new StringBuilder();
        sb.AppendLine("# Talking Heads: a low-rank channel in the list-recall model, edited");
        sb.AppendLine();
        sb.AppendLine($"Model: the list-recall GPT-2 ({t.Layers} layers × {t.Heads} heads, d_model {t.DModel}, {r.Training.Parameters} parameters; {t.Steps} steps, seed {t.Seed}), exported to `model/` and run by the engine. Held-out: {o.EvalPerPosition} lists per position of the left-out item ({o.EvalPerPosition * n} in all). {F(r.Seconds, 1)} s.");
        sb.AppendLine();
        sb.AppendLine($"- training accuracy curve's last point {F(r.Training.FinalAccuracy)}; held-out accuracy of the exported model **{F(r.Original.Accuracy)}** (chance {F(1.0 / n)}), answer loss {F(r.Original.AnswerLoss)}");
        sb.AppendLine($"- pair: writer **{r.Writer.Layer}.{r.Writer.Head}** → reader **{r.Reader.Layer}.{r.Reader.Head}**, {r.Composition}-composition {F(r.CompositionScore)} (the largest of all layer-0 → layer-1 Q and K scores)");
        sb.AppendLine($"- channel: writer W_OV components {Join(r.Channel)} carry {F(r.Channel.Sum(i => r.WriterComponents[i].Share))} of the composition; the reader's W_QK components {Join(r.ReaderChannel)} carry {F(r.ReaderChannel.Sum(i => r.ReaderComponents[i].Share))} of what it reads from the channel");
        sb.AppendLine($"- control: writer components {Join(r.Control)} (share {F(r.Control.Sum(i => r.WriterComponents[i].Share))}), reader components {Join(r.ReaderControl)} (share {F(r.ReaderControl.Sum(i => r.ReaderComponents[i].Share))}) — the largest outside each channel");
        sb.AppendLine();
        sb.Append("| model | accuracy | answer loss |");
        sb.AppendLine(string.Concat(Enumerable.Range(1, n).Select(p => $" pos {p} |")));
        sb.AppendLine("|---|---|---|" + string.Concat(Enumerable.Repeat("---|", n)));
        void Row(string name, ListRecallScore s) =>
            sb.AppendLine($"| {name} | {F(s.Accuracy)} | {F(s.AnswerLoss)} |" + string.Concat(s.AccuracyByPosition.Select(a => $" {F(a)} |")));
        Row("original", r.Original);
        foreach (var e in r.Edits)
        {
            Row($"{e.Name} (`{e.Recipe}`)", e.Score);
        }
        sb.AppendLine();
        sb.AppendLine(string.Join("; ", r.Edits.Select(e => $"{e.Name}: {e.Description}")) + ".");
        sb.AppendLine();
        sb.AppendLine("Accuracy with one head zero-ablated: " + string.Join(", ", r.HeadAblations.Select(a => $"{a.Head.Layer}.{a.Head.Head} {F(a.Accuracy)}")) + ".");
        sb.AppendLine();
        sb.AppendLine(Verdict(r));
        sb.AppendLine();
        sb.AppendLine($"![OV edits](ov-edits-by-position.png) — accuracy by the left-out item's position 1…{n} in the first list: blue original, orange channel removed, green channel × {o.AmplifyFactor}, red control removed (edit_ov on {r.Writer.Layer}.{r.Writer.Head}); y from 0.");
        sb.AppendLine();
        sb.AppendLine($"![QK edits](qk-edits-by-position.png) — the same for edit_qk on {r.Reader.Layer}.{r.Reader.Head}.");
        sb.AppendLine();
        sb.AppendLine("![shares](channel-shares.png) — share of each singular component (x: index, 0 = largest): blue the writer's W_OV (of the composition), orange the reader's W_QK (of what it reads from the channel).");
        sb.AppendLine();
        sb.AppendLine("Composition of every layer-0 → layer-1 pair (Q, K):");
        sb.AppendLine();
        sb.AppendLine("```");
        foreach (var p in r.Pairs)
        {
            sb.AppendLine($"{p.Writer.Layer}.{p.Writer.Head} → {p.Reader.Layer}.{p.Reader.Head}  Q {F(p.QComposition)}  K {F(p.KComposition)}");
        }
        sb.AppendLine("```");
        sb.AppendLine();
        sb.AppendLine("Singular components (index, singular value, share): writer W_OV | reader W_QK");
        sb.AppendLine();
        sb.AppendLine("```");
        for (int i = 0; i < r.WriterComponents.Count; i++)
        {
            var w = r.WriterComponents[i];
            var q = r.ReaderComponents[i];
            sb.AppendLine($"{i,3}  {F(w.SingularValue),8} {F(w.Share),6}  |  {F(q.SingularValue),8} {F(q.Share),6}");
        }
        sb.AppendLine("```");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    // what the numbers say, in one paragraph: the channel's removal against the control's, and amplification
    private static string Verdict(TalkingHeadsResult r)
    {
        double baseAcc = r.Original.Accuracy;
        string Change(string name)
        {
            double d = r.Edits.Single(e => e.Name == name).Score.Accuracy - baseAcc;
            return (d >= 0 ? "+" : "") + F(d);
        }
        double channelCost = baseAcc - r.Edits.Single(e => e.Name == "ov-remove-channel").Score.Accuracy;
        double writerCost = baseAcc - r.Edits.Single(e => e.Name == "ablate-writer").Score.Accuracy;
        string share = writerCost > 0.01 ? $" Removing the channel ({r.Channel.Length} of the writer's {r.WriterComponents.Count} components) costs {F(channelCost / writerCost)} of what ablating the whole writer costs." : "";
        return $"Accuracy change against the original: OV channel removed {Change("ov-remove-channel")}, control removed {Change("ov-remove-control")}, amplified {Change("ov-amplify-channel")}; "
            + $"QK channel removed {Change("qk-remove-channel")}, control removed {Change("qk-remove-control")}, amplified {Change("qk-amplify-channel")}; "
            + $"whole writer ablated {Change("ablate-writer")}, whole reader ablated {Change("ablate-reader")}." + share;
    }

    public static string WriteFactualRecall(FactualRecallResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ExperimentReports.ToJson(r));
        var o = r.Options;
        var factors = r.Sweep.Select(p => p.Factor).ToArray();
        LineChart.Write(Path.Combine(dir, "scale-sweep.png"), factors,
            [[.. r.Sweep.Select(p => p.InContextWins)], [.. r.Sweep.Select(p => p.MemorisedWins)]]);
        LineChart.Write(Path.Combine(dir, "scale-sweep-argmax.png"), factors,
            [[.. r.Sweep.Select(p => p.ArgmaxInContext)], [.. r.Sweep.Select(p => p.ArgmaxMemorised)], [.. r.Sweep.Select(p => p.ArgmaxOther)]]);
        LineChart.Write(Path.Combine(dir, "training.png"), [.. r.Curve.Select(p => (double)p.Step)],
            [[.. r.Curve.Select(p => p.FactAccuracy)], [.. r.Curve.Select(p => p.InContextWins)]]);
        var atFactor1 = r.Sweep.FirstOrDefault(p => p.Factor == 1);

        var sb = new StringBuilder();
        sb.AppendLine("# Factual recall: scaling the head that carries the in-context answer");
        sb.AppendLine();
        sb.AppendLine($"Task: {o.Subjects} subjects with a memorised attribute among {o.Attributes}; sequences [BOS, s′, r, x, ., s, r] → answer: facts with an irrelevant prefix (45%), a consistent prefix (10%), a counterfactual prefix s r a′ (45%) answered a′ with probability {o.StubbornRate} for the {o.Subjects / 2} stubborn subjects and {o.YieldingRate} for the others. Held-out: the {r.HeldOutPrompts} counterfactual prompts whose (s, a′) pair never appeared in training. Model: GPT-2, {o.Layers} layers × {o.Heads} heads, d_model {o.DModel} ({r.Parameters} parameters); Adam lr {o.LearningRate}, batch {o.Batch}, {o.Steps} steps, seed {o.Seed}; exported to `model/` and run by the engine. {F(r.Seconds, 1)} s.");
        sb.AppendLine();
        if (atFactor1 is not null)
        {
            sb.AppendLine($"- unedited: facts {F(atFactor1.FactAccuracy)} correct; on held-out counterfactual prompts the in-context answer wins **{F(atFactor1.InContextWins)}** (stubborn subjects {F(atFactor1.InContextWinsStubborn)}, yielding {F(atFactor1.InContextWinsYielding)})");
        }
        sb.AppendLine($"- head: **{r.Head.Layer}.{r.Head.Head}**, the largest mean direct logit attribution to logit(a′) − logit(a(s)) at the answer position ({F(r.Attributions.Max(a => a.MeanLogitDifference))})");
        sb.AppendLine("- mean DLA per head: " + string.Join(", ", r.Attributions.Select(a => $"{a.Head.Layer}.{a.Head.Head} {F(a.MeanLogitDifference, 2)}")));
        sb.AppendLine();
        sb.AppendLine("| factor | recipe | in-context wins | memorised wins | stubborn: in-context | yielding: in-context | argmax in-context | argmax memorised | argmax other | facts correct | facts answered with the prefix's attribute |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var p in r.Sweep)
        {
            sb.AppendLine($"| {F(p.Factor, 2)} | `{p.Recipe}` | {F(p.InContextWins)} | {F(p.MemorisedWins)} | {F(p.InContextWinsStubborn)} | {F(p.InContextWinsYielding)} | {F(p.ArgmaxInContext)} | {F(p.ArgmaxMemorised)} | {F(p.ArgmaxOther)} | {F(p.FactAccuracy)} | {F(p.FactsAnsweredWithPrefix)} |");
        }
        sb.AppendLine();
        var lo = r.Sweep.MinBy(p => p.Factor)!;
        var hi = r.Sweep.MaxBy(p => p.Factor)!;
        sb.AppendLine($"Scaling {r.Head.Layer}.{r.Head.Head}'s output from × {F(lo.Factor, 2)} to × {F(hi.Factor, 2)} moves the in-context answer's win rate from {F(lo.InContextWins)} to {F(hi.InContextWins)} (argmax over the vocabulary: {F(lo.ArgmaxInContext)} → {F(hi.ArgmaxInContext)}), and the facts with an irrelevant prefix go from {F(lo.FactAccuracy)} to {F(hi.FactAccuracy)} correct ({F(hi.FactsAnsweredWithPrefix)} answered with the prefix's attribute at × {F(hi.Factor, 2)})"
            + (hi.FactsAnsweredWithPrefix > 0.5 ? ": the head carries whatever attribute the context holds, whichever subject it is about; what it writes is weighed against the memorised answer downstream, and scaled up it wins even where it does not apply." : "."));
        sb.AppendLine();
        sb.AppendLine($"![sweep](scale-sweep.png) — x: factor {F(factors.Min(), 2)}…{F(factors.Max(), 2)}; blue: in-context answer wins (of the two), orange: memorised answer wins; y from 0.");
        sb.AppendLine();
        sb.AppendLine("![argmax](scale-sweep-argmax.png) — argmax over the vocabulary: blue in-context, orange memorised, green anything else.");
        sb.AppendLine();
        sb.AppendLine("![training](training.png) — during training: blue facts correct, orange in-context wins on the held-out prompts.");
        sb.AppendLine();
        sb.AppendLine("```");
        foreach (var p in r.Curve)
        {
            sb.AppendLine($"{p.Step,6} {F(p.FactAccuracy)} {F(p.InContextWins)}");
        }
        sb.AppendLine("```");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    private static string Join(IEnumerable<int> xs) => "[" + string.Join(", ", xs) + "]";
}
