using System.Globalization;
using System.Text;
using System.Text.Json;
using Headwise.Reports;
using Headwise.Training.Plots;

namespace Headwise.Training.Experiments;

/// <summary>Writes an experiment's result as report.md, result.json and PNG figures into a directory.</summary>
public static class ExperimentReports
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private static string F(double v, int digits = 3) => v.ToString("F" + digits, CultureInfo.InvariantCulture);

    /// <summary>The result as indented JSON (what result.json holds).</summary>
    public static string ToJson<T>(T result) => JsonSerializer.Serialize(result, JsonOptions);

    public static string WriteInduction(InductionResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ToJson(r));
        LineChart.Write(Path.Combine(dir, "loss.png"), [.. r.Curve.Select(p => (double)p.Step)],
            [[.. r.Curve.Select(p => p.LossFirstCopy)], [.. r.Curve.Select(p => p.LossRepeat)]]);
        var o = r.Options;
        var sb = new StringBuilder();
        sb.AppendLine("# Induction heads in a two-layer attention-only transformer");
        sb.AppendLine();
        sb.AppendLine($"Task: [BOS, random prefix, s₁…s_L, s₁…s_L] of length {(2 * o.Half) + 1}, period L uniform in [{(o.Half + 1) / 2}, {o.Half}], tokens uniform over {o.Vocab - 1}; model: 2 layers × {o.Heads} heads, d_model {o.DModel}, head dim {o.HeadDim}, learned positions, no MLP, no LayerNorm ({r.Parameters} parameters); Adam lr {o.LearningRate}, batch {o.Batch}, {o.Steps} steps, seed {o.Seed}; {F(r.Seconds, 1)} s.");
        sb.AppendLine();
        sb.AppendLine($"- chance loss ln({o.Vocab - 1}) = {F(r.ChanceLoss)}");
        sb.AppendLine($"- final loss on the prefix and first copy (unpredictable): {F(r.FinalLossFirstCopy)}");
        sb.AppendLine($"- final loss on the repeated copy: {F(r.FinalLossRepeat)}");
        sb.AppendLine(r.DropStep is int s
            ? $"- the repeated-copy loss drops (below halfway from chance to its final value) at step {s}"
            : "- no drop: the repeated-copy loss stayed near chance (no induction circuit formed at this size/steps)");
        sb.AppendLine($"- top induction head: {r.TopInductionHead.Layer}.{r.TopInductionHead.Head} (score {F(r.TopInductionHead.Induction)}); top previous-token head: {r.TopPreviousTokenHead.Layer}.{r.TopPreviousTokenHead.Head} (score {F(r.TopPreviousTokenHead.PreviousToken)})");
        sb.AppendLine();
        sb.AppendLine("| head | induction score | previous-token score |");
        sb.AppendLine("|---|---|---|");
        foreach (var h in r.Heads)
        {
            sb.AppendLine($"| {h.Layer}.{h.Head} | {F(h.Induction)} | {F(h.PreviousToken)} |");
        }

        sb.AppendLine();
        sb.AppendLine($"![loss](loss.png) — blue: first copy, orange: repeated copy; x: step 0…{o.Steps}, y: 0…{F(r.Curve.Max(p => Math.Max(p.LossFirstCopy, p.LossRepeat)), 2)} nats.");
        sb.AppendLine();
        sb.AppendLine("Loss curve (every evaluation): step, first-copy loss, repeated-copy loss");
        sb.AppendLine();
        sb.AppendLine("```");
        foreach (var p in r.Curve)
        {
            sb.AppendLine($"{p.Step,6} {F(p.LossFirstCopy)} {F(p.LossRepeat)}");
        }

        sb.AppendLine("```");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    public static string WriteListRecall(ListRecallResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ToJson(r));
        var xs = r.Curve.Select(p => (double)p.Step).ToArray();
        LineChart.Write(Path.Combine(dir, "loss.png"), xs, [[.. r.Curve.Select(p => p.Loss)]]);
        LineChart.Write(Path.Combine(dir, "accuracy.png"), xs, [[.. r.Curve.Select(p => p.Accuracy)]]);
        var o = r.Options;
        var sb = new StringBuilder();
        sb.AppendLine("# Recall from a list");
        sb.AppendLine();
        sb.AppendLine($"Task: [BOS, {o.ListLength} distinct items of {o.Items}, SEP, the list again without one item, shuffled, ANS] → the left-out item; loss on the answer only. Model: GPT-2, {o.Layers} layers × {o.Heads} heads, d_model {o.DModel} ({r.Parameters} parameters); Adam lr {o.LearningRate}, batch {o.Batch}, {o.Steps} steps, seed {o.Seed}; {F(r.Seconds, 1)} s.");
        sb.AppendLine();
        sb.AppendLine($"- held-out accuracy ({o.EvalSamples} fixed lists): **{F(r.FinalAccuracy)}**; chance {F(r.ChanceAccuracy)} (1 / list length, answering from the list) or {F(1.0 / o.Items)} (1 / items)");
        sb.AppendLine($"- final held-out loss on the answer: {F(r.Curve[^1].Loss)} (ln {o.ListLength} = {F(Math.Log(o.ListLength))})");
        sb.AppendLine();
        sb.AppendLine("Attention from the answer position (means over the evaluation lists):");
        sb.AppendLine();
        sb.AppendLine("| head | on the left-out item | on each other item of the first list | on each item of the repeated list |");
        sb.AppendLine("|---|---|---|---|");
        foreach (var h in r.Heads)
        {
            sb.AppendLine($"| {h.Layer}.{h.Head} | {F(h.OnMissingItem)} | {F(h.OnOtherFirstListItem)} | {F(h.OnSecondListItem)} |");
        }
        sb.AppendLine();
        sb.AppendLine("![loss](loss.png) — held-out loss on the answer; ![accuracy](accuracy.png) — held-out accuracy, y from 0.");
        sb.AppendLine();
        sb.AppendLine("```");
        foreach (var p in r.Curve)
        {
            sb.AppendLine($"{p.Step,6} {F(p.Loss)} {F(p.Accuracy)}");
        }
        sb.AppendLine("```");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    public static string WriteOcr(OcrResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ToJson(r));
        var xs = r.Factored.Curve.Select(p => (double)p.Step).ToArray();
        LineChart.Write(Path.Combine(dir, "loss.png"), xs,
            [[.. r.Factored.Curve.Select(p => p.TrainLoss)], [.. r.Combined.Curve.Select(p => p.TrainLoss)],
             [.. r.Factored.Curve.Select(p => p.HeldOutLoss)], [.. r.Combined.Curve.Select(p => p.HeldOutLoss)]]);
        LineChart.Write(Path.Combine(dir, "heldout-accuracy.png"), xs,
            [[.. r.Factored.Curve.Select(p => p.HeldOutAccuracy)], [.. r.Combined.Curve.Select(p => p.HeldOutAccuracy)]]);
        LineChart.Write(Path.Combine(dir, "ov-nuclear-norm.png"), xs,
            [[.. r.Factored.Curve.Select(p => p.OvNuclearNorm)], [.. r.Combined.Curve.Select(p => p.OvNuclearNorm)]]);
        var o = r.Options;
        var sb = new StringBuilder();
        sb.AppendLine("# Out-of-context reasoning: factored vs combined output-value");
        sb.AppendLine();
        sb.AppendLine($"Task: {o.Subjects} subjects, {o.Objects} fact objects and {o.Objects} implied objects; {r.TrainExamples} training prompts (every fact, implications of {F(o.TrainFraction * 100, 0)}% of subjects), {r.HeldOutExamples} held-out implications. Models: one layer, one head, attention only, fixed one-hot embeddings; full-batch gradient descent lr {o.LearningRate}, init std {o.InitStd}, {o.Steps} steps, seed {o.Seed}; {F(r.Seconds, 1)} s.");
        sb.AppendLine();
        sb.AppendLine($"Chance on held-out implications: {F(r.ChanceAccuracy)} (1 / objects).");
        sb.AppendLine();
        sb.AppendLine("| model | parameters | train acc | held-out acc | held-out loss | ‖W_OV‖_* |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var run in new[] { r.Factored, r.Combined })
        {
            var f = run.Final;
            sb.AppendLine($"| {run.Variant} | {run.Parameters} | {F(f.TrainAccuracy)} | {F(f.HeldOutAccuracy)} | {F(f.HeldOutLoss)} | {F(f.OvNuclearNorm, 2)} |");
        }

        sb.AppendLine();
        sb.AppendLine("![loss](loss.png) — train loss (blue factored, orange combined), held-out loss (green factored, red combined).");
        sb.AppendLine();
        sb.AppendLine("![held-out accuracy](heldout-accuracy.png) — blue factored, orange combined; y from 0.");
        sb.AppendLine();
        sb.AppendLine("![nuclear norm](ov-nuclear-norm.png) — nuclear norm of W_OV; blue factored, orange combined.");
        sb.AppendLine();
        sb.AppendLine("Curve: step, then per model train loss / held-out accuracy / ‖W_OV‖_*");
        sb.AppendLine();
        sb.AppendLine("```");
        for (int i = 0; i < r.Factored.Curve.Count; i++)
        {
            var a = r.Factored.Curve[i];
            var b = r.Combined.Curve[i];
            sb.AppendLine($"{a.Step,6}  factored {F(a.TrainLoss)} {F(a.HeldOutAccuracy)} {F(a.OvNuclearNorm, 2)}   combined {F(b.TrainLoss)} {F(b.HeldOutAccuracy)} {F(b.OvNuclearNorm, 2)}");
        }

        sb.AppendLine("```");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    public static string WriteIcl(IclResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), ToJson(r));
        LineChart.Write(Path.Combine(dir, "loss.png"), [.. r.Curve.Select(p => (double)p.Step)],
            [[.. r.Curve.Select(p => p.MultiHeadMse)], [.. r.Curve.Select(p => p.SingleHeadMse)]]);
        var o = r.Options;
        int dd = o.Dx + 1;
        if (r.MultiHeadModel is { } mm && r.SingleHeadModel is { } sm)
        {
            TaskPlots.Heatmaps(Path.Combine(dir, "kq-multihead.png"), [.. Enumerable.Range(0, mm.Heads).Select(mm.KqMatrix)], dd, dd);
            TaskPlots.Heatmaps(Path.Combine(dir, "ov-multihead.png"), [.. Enumerable.Range(0, mm.Heads).Select(mm.OvMatrix)], dd, dd);
            TaskPlots.Heatmaps(Path.Combine(dir, "kq-ov-singlehead.png"), [sm.KqMatrix(0), sm.OvMatrix(0)], dd, dd);
        }

        var sb = new StringBuilder();
        sb.AppendLine("# In-context linear regression: multi-head vs single-head softmax attention");
        sb.AppendLine();
        sb.AppendLine($"Task: y = w·x, x ∈ ℝ^{o.Dx}, w ~ N(0, I/{o.Dx}), {o.Context} context pairs, noise {o.Noise}. Models: one softmax attention layer read out at the query's y coordinate; {o.Heads} heads × width {o.HeadDim} ({r.MultiHeadParameters} parameters) vs 1 head × width {o.Heads * o.HeadDim} ({r.SingleHeadParameters} parameters); Adam lr {o.LearningRate}, batch {o.Batch}, {o.Steps} steps, seed {o.Seed}; {F(r.Seconds, 1)} s.");
        sb.AppendLine();
        sb.AppendLine("| predictor | in-context MSE |");
        sb.AppendLine("|---|---|");
        sb.AppendLine($"| multi-head ({o.Heads} heads) | {F(r.MultiHeadMse, 4)} |");
        sb.AppendLine($"| single-head | {F(r.SingleHeadMse, 4)} |");
        sb.AppendLine($"| least squares / ridge on the context (optimal) | {F(r.RidgeMse, 4)} |");
        sb.AppendLine($"| predict 0 | {F(r.ZeroMse, 4)} |");
        sb.AppendLine();
        sb.AppendLine("Head structure (KQ on the x block; OV into the prediction):");
        sb.AppendLine();
        sb.AppendLine("| model | head | KQ diag mean | diag/off-diag | diag spread | OV[y→y] | OV last-entry share |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var h in r.MultiHeads)
        {
            sb.AppendLine($"| multi | {h.Head} | {F(h.KqDiagonalMean)} | {F(h.KqDiagonality, 1)} | {F(h.KqDiagonalSpread)} | {F(h.OvLastEntry)} | {F(h.OvLastEntryShare)} |");
        }

        foreach (var h in r.SingleHead)
        {
            sb.AppendLine($"| single | {h.Head} | {F(h.KqDiagonalMean)} | {F(h.KqDiagonality, 1)} | {F(h.KqDiagonalSpread)} | {F(h.OvLastEntry)} | {F(h.OvLastEntryShare)} |");
        }

        sb.AppendLine();
        sb.AppendLine($"Zero-sum of the multi-head OV[y→y]: |Σ_h| / Σ_h|·| = {F(r.OvZeroSum)} (0: the heads cancel exactly).");
        sb.AppendLine();
        sb.AppendLine($"![loss](loss.png) — in-context MSE, blue multi-head, orange single-head; x: step 0…{o.Steps}.");
        sb.AppendLine();
        sb.AppendLine($"![KQ](kq-multihead.png) — W_Q W_Kᵀ of each multi-head head ({dd}×{dd}; rows query coordinate, columns key coordinate, last = y); red positive, blue negative.");
        sb.AppendLine();
        sb.AppendLine("![OV](ov-multihead.png) — W_V W_O of each head (rows input coordinate, columns output coordinate; only the last column reaches the prediction).");
        sb.AppendLine();
        sb.AppendLine("![single](kq-ov-singlehead.png) — the single head's KQ and OV.");
        string path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }
}
