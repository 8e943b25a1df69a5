using Headwise.Hooks;
using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Analysis.Vision;

/// <summary>One labelled image: the model's input and its true label id.</summary>
public sealed record LabelledImage(string Name, ModelInput Image, int Label);

/// <summary>An image classifier scored on labelled images (<see cref="ImageEvaluation.Evaluate"/>).</summary>
/// <param name="Accuracy">Share of images whose most probable label (ties: lowest id) is the true one.</param>
/// <param name="MeanCrossEntropy">Mean over the images of −log p(true label), in nats (softmax of the CLS logits).</param>
/// <param name="Predicted">Each image's most probable label id, in input order; <paramref name="CrossEntropy"/> its −log p(true).</param>
/// <param name="ForwardSeconds">Wall time of the forwards alone (not decoding or preprocessing, nor one untimed warm-up
/// forward of the first image).</param>
/// <param name="TokensKept">Under token pruning, the mean share of the image's tokens (CLS included) each block ran on,
/// averaged over blocks and images; 1 without.</param>
public sealed record ImageEvaluationResult(int Images, int Correct, double Accuracy, double MeanCrossEntropy, int[] Predicted, double[] CrossEntropy,
    double ForwardSeconds, double TokensKept);

/// <summary>The metric a head-pruning scan reads over labelled images (<see cref="ImageEvaluation.Importance"/>).</summary>
public enum ImageMetric
{
    /// <summary>Share of images classified correctly.</summary>
    Accuracy,

    /// <summary>Mean cross-entropy −log p(true label), nats.</summary>
    Loss,
}

/// <summary>
/// An image classifier (ViT) over labelled images: accuracy and mean cross-entropy, and head importance by pruning — each
/// head's z (<c>blocks.L.attn.hook_z</c>) zeroed alone and the metric over the images compared with the clean run
/// [How Does Attention Work in Vision Transformers? A Visual Analytics Attempt: head importance by pruning].
/// Images are read once, as the enumeration yields them (a directory of any size streams through).
/// </summary>
public static class ImageEvaluation
{
    /// <summary>Accuracy and mean cross-entropy over <paramref name="images"/>; under <paramref name="pruning"/> each
    /// forward drops patches as <see cref="Vit.ForwardPruned"/> does [Adaptive Sparse ViT].</summary>
    public static ImageEvaluationResult Evaluate(TransformerModel model, IEnumerable<LabelledImage> images,
        IProgress<AnalysisProgress>? progress = null, int total = 0, CancellationToken cancel = default, Action<HookSet>? baseHooks = null,
        TokenPruning? pruning = null)
    {
        int V = RequireClassifier(model);
        var vit = pruning is null ? null : model as Vit ?? throw new InvalidInputException("token pruning needs a ViT");
        var clock = new System.Diagnostics.Stopwatch();
        double kept = 0;
        bool warm = false;
        var predicted = new List<int>();
        var ce = new List<double>();
        int correct = 0;
        foreach (var item in images)
        {
            cancel.ThrowIfCancellationRequested();
            CheckLabel(item, V);
            if (!warm)
            {
                // one untimed forward first: JIT compilation and weight packing are not the model's speed
                Run(model, item.Image, baseHooks, null, V);
                warm = true;
            }
            clock.Start();
            float[] logits;
            if (vit is not null)
            {
                var hooks = new HookSet(model.Config.NLayers);
                baseHooks?.Invoke(hooks);
                var pruned = vit.ForwardPruned(item.Image, pruning!, hooks);
                logits = pruned.Output;
                kept += pruned.TokensPerLayer.Average() / item.Image.SeqLen;
            }
            else
            {
                logits = Run(model, item.Image, baseHooks, null, V);
                kept += 1;
            }
            clock.Stop();
            var (top, loss, right) = Score(logits, item.Label);
            predicted.Add(top);
            ce.Add(loss);
            correct += right ? 1 : 0;
            progress?.Report(new AnalysisProgress("images", predicted.Count, Math.Max(total, predicted.Count)));
        }
        if (predicted.Count == 0)
        {
            throw new InvalidInputException("no images to evaluate");
        }
        int n = predicted.Count;
        return new ImageEvaluationResult(n, correct, (double)correct / n, ce.Average(), [.. predicted], [.. ce], clock.Elapsed.TotalSeconds, kept / n);
    }

    /// <summary>
    /// Head importance by pruning: Values[layer][head] = metric(head zeroed) − metric(clean) over the images — for loss, how
    /// much worse the model does without the head; for accuracy, how much accuracy it loses (negative: the head matters).
    /// One clean and L·H pruned forwards per image, images outer (each image is held once).
    /// <paramref name="clean"/> is the metric of the unpruned model, for the caller to print beside the changes.
    /// </summary>
    public static HeadScores Importance(TransformerModel model, IEnumerable<LabelledImage> images, ImageMetric metric, out double clean,
        IProgress<AnalysisProgress>? progress = null, int total = 0, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        int V = RequireClassifier(model);
        int L = model.Config.NLayers, NH = model.Config.NHeads, HD = model.Config.DHead;
        var sums = new double[L, NH];
        double cleanSum = 0;
        int n = 0;
        foreach (var item in images)
        {
            CheckLabel(item, V);
            cleanSum += Metric(Score(Run(model, item.Image, baseHooks, null, V), item.Label), metric);
            for (int l = 0; l < L; l++)
            {
                for (int h = 0; h < NH; h++)
                {
                    cancel.ThrowIfCancellationRequested();
                    int head = h;
                    var pruned = Run(model, item.Image, baseHooks, hooks => hooks.Add($"blocks.{l}.attn.hook_z", a => ZeroHead(a.Data.Span, NH, HD, head)), V);
                    sums[l, h] += Metric(Score(pruned, item.Label), metric);
                }
            }
            n++;
            progress?.Report(new AnalysisProgress("pruning heads", n, Math.Max(total, n)));
        }
        if (n == 0)
        {
            throw new InvalidInputException("no images to score");
        }
        clean = cleanSum / n;
        double c = clean;
        string name = metric == ImageMetric.Accuracy ? "accuracy" : "loss";
        string what = metric == ImageMetric.Accuracy ? "accuracy" : "mean cross-entropy (nats)";
        return HeadScores.Create($"importance-zero-{name}", $"{what} over {n} image{(n == 1 ? "" : "s")} with the head zero-ablated (hook_z) minus without",
            L, NH, (l, h) => (float)(sums[l, h] / n - c));
    }

    private static double Metric((int Top, double Loss, bool Correct) s, ImageMetric metric) =>
        metric == ImageMetric.Accuracy ? (s.Correct ? 1 : 0) : s.Loss;

    // the most probable label (ties: lowest id), −log p(label) and whether the two agree
    private static (int Top, double Loss, bool Correct) Score(float[] logits, int label)
    {
        var p = Classification.Probabilities(logits);
        int top = 0;
        for (int i = 1; i < p.Length; i++)
        {
            top = p[i] > p[top] ? i : top;
        }
        return (top, -Math.Log(Math.Max(p[label], double.Epsilon)), top == label);
    }

    // logits = self.classifier(sequence_output[:, 0, :]): the CLS position's V logits
    private static float[] Run(TransformerModel model, ModelInput image, Action<HookSet>? baseHooks, Action<HookSet>? extra, int V)
    {
        var hooks = new HookSet(model.Config.NLayers);
        baseHooks?.Invoke(hooks);
        extra?.Invoke(hooks);
        return model.Forward(image, hooks)[..V];
    }

    // z: (rows, NH, HD); head h's slice zeroed at every row
    private static void ZeroHead(Span<float> z, int NH, int HD, int h)
    {
        for (int r = 0; r < z.Length / (NH * HD); r++)
        {
            z.Slice((r * NH + h) * HD, HD).Clear();
        }
    }

    private static int RequireClassifier(TransformerModel model)
    {
        var vision = model.Config.Vision ?? throw new InvalidInputException("image evaluation: the model reads token ids, not images");
        return vision.HasClassifier ? model.Config.VocabSize
            : throw new InvalidInputException($"{model.Weights.Source} has no classifier: there are no labels to score");
    }

    private static void CheckLabel(LabelledImage item, int V)
    {
        if (item.Label < 0 || item.Label >= V)
        {
            throw new InvalidInputException($"{item.Name}: label {item.Label} is outside the model's {V} labels");
        }
    }
}
