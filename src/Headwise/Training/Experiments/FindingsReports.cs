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
        sb.AppendLine($"- pair: writer **L{r.Writer.Layer}H{r.Writer.Head}** → reader **L{r.Reader.Layer}H{r.Reader.Head}**, {r.Composition}-composition {F(r.CompositionScore)} (the largest of all layer-0 → layer-1 Q and K scores)");
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
        sb.AppendLine("Accuracy with one head zero-ablated: " + string.Join(", ", r.HeadAblations.Select(a => $"L{a.Head.Layer}H{a.Head.Head} {F(a.Accuracy)}")) + ".");
        sb.AppendLine();
        sb.AppendLine(Verdict(r));
        sb.AppendLine();
        sb.AppendLine($"![OV edits](ov-edits-by-position.png) — accuracy by the left-out item's position 1…{n} in the first list: blue original, orange channel removed, green channel × {o.AmplifyFactor}, red control removed (edit_ov on L{r.Writer.Layer}H{r.Writer.Head}); y from 0.");
        sb.AppendLine();
        sb.AppendLine($"![QK edits](qk-edits-by-position.png) — the same for edit_qk on L{r.Reader.Layer}H{r.Reader.Head}.");
        sb.AppendLine();
        sb.AppendLine("![shares](channel-shares.png) — share of each singular component (x: index, 0 = largest): blue the writer's W_OV (of the composition), orange the reader's W_QK (of what it reads from the channel).");
        sb.AppendLine();
        sb.AppendLine("Composition of every layer-0 → layer-1 pair (Q, K):");
        sb.AppendLine();
        sb.AppendLine("```");
        foreach (var p in r.Pairs)
        {
            sb.AppendLine($"L{p.Writer.Layer}H{p.Writer.Head} → L{p.Reader.Layer}H{p.Reader.Head}  Q {F(p.QComposition)}  K {F(p.KComposition)}");
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

    private static string Join(IEnumerable<int> xs) => "[" + string.Join(", ", xs) + "]";
}
