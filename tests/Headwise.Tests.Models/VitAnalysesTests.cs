using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Patterns;
using Headwise.Analysis.Vision;
using Headwise.Hooks;
using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Tests.Models;

/// <summary>
/// The vision papers' head analyses on the tiny ViT golden (tests/goldens/vit_cls: 2 layers × 4 heads, a 4×4 patch grid):
/// evaluation and head pruning against a direct computation, attention rollout against a direct matrix product, and the
/// sink score and pattern clusters by construction (heads whose patterns are set by hooks).
/// </summary>
public class VitAnalysesTests
{
    private static string Dir => Path.Combine(TestPaths.Goldens, "vit_cls");

    private static ModelInput Input(LoadedModel loaded, string file)
    {
        var vision = loaded.Config.Vision!;
        return ModelInput.Image(ImagePreprocessor.ForModel(Dir, vision).Process(DecodedImage.Load(Path.Combine(Dir, file), vision.Channels)), vision);
    }

    // a hook that sets head `head`'s pattern [batch 1, head, q, k] to one-hot rows: query q reads key(q) only
    private static void Set(ActivationView a, int head, int T, Func<int, int> key)
    {
        var span = a.Data.Span.Slice(head * T * T, T * T);
        span.Clear();
        for (int q = 0; q < T; q++)
        {
            span[q * T + key(q)] = 1;
        }
    }

    [Fact]
    public void EvaluationIsAccuracyAndMeanCrossEntropyOfTheClsLogits()
    {
        using var loaded = ModelLoader.Load(Dir);
        string[] files = ["image.png", "image_exact.png", "image_gray.png"];
        int[] labels = [2, 4, 0];
        var images = files.Select((f, i) => new LabelledImage(f, Input(loaded, f), labels[i])).ToArray();
        var r = ImageEvaluation.Evaluate(loaded.Model, images);

        // direct: softmax of the CLS logits, argmax and −log p(label)
        int correct = 0;
        double ce = 0;
        for (int i = 0; i < images.Length; i++)
        {
            var p = Classification.Probabilities(loaded.Model.Forward(images[i].Image)[..loaded.Config.VocabSize]);
            int top = Array.IndexOf(p, p.Max());
            Assert.Equal(top, r.Predicted[i]);
            correct += top == labels[i] ? 1 : 0;
            ce += -Math.Log(p[labels[i]]) / images.Length;
        }
        Assert.Equal(3, r.Images);
        Assert.Equal(correct, r.Correct);
        Assert.Equal(correct / 3.0, r.Accuracy, 1e-12);
        Assert.Equal(ce, r.MeanCrossEntropy, 1e-12);
        Assert.Throws<InvalidInputException>(() => ImageEvaluation.Evaluate(loaded.Model, [new LabelledImage("x", images[0].Image, 5)]));
    }

    [Fact]
    public void PruningImportanceIsTheLossChangeOfZeroAblatingEachHead()
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded, "image.png");
        var clean = Classification.Probabilities(loaded.Model.Forward(input)[..loaded.Config.VocabSize]);
        int label = Array.IndexOf(clean, clean.Max());
        var image = new LabelledImage("image.png", input, label);
        var loss = ImageEvaluation.Importance(loaded.Model, [image], ImageMetric.Loss, out double cleanLoss);
        var accuracy = ImageEvaluation.Importance(loaded.Model, [image], ImageMetric.Accuracy, out double cleanAccuracy);
        Assert.Equal(-Math.Log(clean[label]), cleanLoss, 1e-9);
        Assert.Equal(1.0, cleanAccuracy);
        for (int l = 0; l < loaded.Config.NLayers; l++)
        {
            for (int h = 0; h < loaded.Config.NHeads; h++)
            {
                // the same ablation through the ablate command's path: the clean top label's probability after zeroing z
                var direct = VisionAblation.Ablate(loaded.Model, input, [new HeadId(l, h)], AblationMethod.Zero);
                Assert.Equal(Math.Log(direct.CleanProbability / direct.AblatedProbability), loss.Values[l][h], 1e-5);
                Assert.Equal(direct.AblatedTop == label ? 0 : -1, accuracy.Values[l][h]);
            }
        }
    }

    [Fact]
    public void SinkScoreFindsAHeadOnOnePatchAndAveragingKeepsTheRanking()
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded, "image.png");
        int T = input.SeqLen, G = loaded.Config.Vision!.GridSize;
        var p = PatternAnalysis.RunImage(loaded.Model, input, baseHooks: hooks => hooks.Add("blocks.0.attn.hook_pattern", a => Set(a, 3, T, _ => 6)));
        var scores = VisionHeads.Score(p, G, G);
        var sink = scores.Single(s => s.Id == new HeadId(0, 3));
        Assert.Equal(1.0, sink.Sink, 1e-12);
        Assert.Equal(sink, scores.MaxBy(s => s.Sink));
        Assert.All(scores, s => Assert.InRange(s.Sink, 1.0 / (G * G) - 1e-6, 1 + 1e-6));

        var other = VisionHeads.Score(PatternAnalysis.RunImage(loaded.Model, Input(loaded, "image_exact.png")), G, G);
        var mean = VisionHeads.Average([scores, other]);
        foreach (var m in mean)
        {
            var a = scores.Single(s => s.Id == m.Id);
            var b = other.Single(s => s.Id == m.Id);
            Assert.Equal((a.Entropy + b.Entropy) / 2, m.Entropy, 1e-12);
            Assert.Equal((a.Cls + b.Cls) / 2, m.Cls, 1e-12);
            Assert.Equal((a.Sink + b.Sink) / 2, m.Sink, 1e-12);
        }
        var distances = mean.Select(m => m.Distance).ToArray();
        Assert.Equal(distances.Order().ToArray(), distances);
    }

    [Fact]
    public void RolloutIsTheProductOfTheLayersHalfResidualMeanAttention()
    {
        using var loaded = ModelLoader.Load(Dir);
        var p = PatternAnalysis.RunImage(loaded.Model, Input(loaded, "image.png"));
        int T = p.Length;
        // direct: Â_l = (mean_h A + I)/2 as matrices, rows renormalised, and R = Â_1 · Â_0
        double[,] LayerMatrix(int l)
        {
            var m = new double[T, T];
            for (int q = 0; q < T; q++)
            {
                double sum = 0;
                for (int k = 0; k < T; k++)
                {
                    m[q, k] = 0.5 * p.Patterns[l].Average(a => (double)a[q * T + k]) + (q == k ? 0.5 : 0);
                    sum += m[q, k];
                }
                for (int k = 0; k < T; k++)
                {
                    m[q, k] /= sum;
                }
            }
            return m;
        }
        var a0 = LayerMatrix(0);
        var a1 = LayerMatrix(1);
        var rollout = AttentionRollout.Compute(p);
        var first = AttentionRollout.Compute(p, throughLayer: 0);
        for (int q = 0; q < T; q++)
        {
            double rowSum = 0;
            for (int k = 0; k < T; k++)
            {
                double product = 0;
                for (int m = 0; m < T; m++)
                {
                    product += a1[q, m] * a0[m, k];
                }
                Assert.Equal(product, rollout[q * T + k], 1e-6);
                Assert.Equal(a0[q, k], first[q * T + k], 1e-6);
                rowSum += rollout[q * T + k];
            }
            Assert.Equal(1.0, rowSum, 1e-5);
        }
        Assert.Throws<InvalidInputException>(() => AttentionRollout.Compute(p, throughLayer: 2));
    }

    [Fact]
    public void HeadsBuiltToAttendLeftUpOrToTheClsFallInSeparateClusters()
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded, "image.png");
        int T = input.SeqLen, G = loaded.Config.Vision!.GridSize;
        // left: the patch to the left (the right one in column 0); up: the patch above (below in row 0); the CLS query reads itself
        int Left(int q) => q == 0 ? 0 : (q - 1) % G == 0 ? q + 1 : q - 1;
        int Up(int q) => q == 0 ? 0 : (q - 1) / G == 0 ? q + G : q - G;
        static int Cls(int q) => 0;
        var built = new Dictionary<HeadId, Func<int, int>>
        {
            [new(0, 0)] = Left,
            [new(1, 0)] = Left,
            [new(1, 3)] = Left,
            [new(0, 1)] = Up,
            [new(1, 1)] = Up,
            [new(0, 2)] = Cls,
            [new(0, 3)] = Cls,
            [new(1, 2)] = Cls,
        };
        void Build(HookSet hooks)
        {
            foreach (var layer in built.GroupBy(b => b.Key.Layer))
            {
                hooks.Add($"blocks.{layer.Key}.attn.hook_pattern", a =>
                {
                    foreach (var (head, key) in layer)
                    {
                        Set(a, head.Head, T, key);
                    }
                });
            }
        }
        var images = new[] { "image.png", "image_exact.png" }.Select(f => PatternAnalysis.RunImage(loaded.Model, Input(loaded, f), baseHooks: Build)).ToArray();
        for (int seed = 0; seed < 5; seed++)
        {
            var clusters = PatternClustering.Run(images, G, G, k: 3, seed);
            Assert.Equal(3, clusters.K);
            int ClusterOf(HeadId h) => clusters.Cluster[Array.IndexOf(clusters.Heads, h)];
            var groups = built.GroupBy(b => b.Value.Method.Name).Select(g => g.Select(b => ClusterOf(b.Key)).Distinct().ToArray()).ToArray();
            Assert.All(groups, g => Assert.Single(g)); // each built kind in one cluster
            Assert.Equal(3, groups.Select(g => g[0]).Distinct().Count()); // and the three kinds apart
            // prototypes: the CLS cluster reads the CLS only; the left cluster puts 3/4 on (0, −1) and 1/4 on (0, +1)
            var cls = clusters.Prototypes[ClusterOf(new HeadId(0, 2))];
            Assert.Equal(1.0, cls[PatternClusters.ClsIndex], 1e-6);
            var left = clusters.Prototypes[ClusterOf(new HeadId(0, 0))];
            Assert.Equal(0.75, left[clusters.Index(0, -1)], 1e-6);
            Assert.Equal(0.25, left[clusters.Index(0, 1)], 1e-6);
            Assert.All(clusters.Profiles, profile => Assert.Equal(1.0, profile.Sum(), 1e-5)); // a distribution over CLS + offsets
        }
        Assert.Throws<InvalidInputException>(() => PatternClustering.Run(images, G, G, k: 9));
    }

    [Fact]
    public void TokenPruningAtOneIsExactAndOtherwiseEqualsMaskingTheDroppedPatches()
    {
        using var loaded = ModelLoader.Load(Dir);
        var vit = (Vit)loaded.Model;
        var input = Input(loaded, "image.png");
        int V = loaded.Config.VocabSize, T = input.SeqLen, NH = loaded.Config.NHeads;
        var full = vit.Forward(input)[..V];

        var exact = vit.ForwardPruned(input, new TokenPruning([0, 1], 1.0));
        Assert.Equal(full, exact.Output); // bit for bit: nothing dropped
        Assert.Equal([T, T], exact.TokensPerLayer);

        // keep half of the 16 patches after block 0: block 1 runs on the CLS + 8 patches, those with the largest mean
        // (over heads) CLS attention of block 0
        var pruned = vit.ForwardPruned(input, new TokenPruning([0], 0.5));
        Assert.Equal([T, 9], pruned.TokensPerLayer);
        var p = PatternAnalysis.RunImage(loaded.Model, input);
        double Cls(int k) => p.Patterns[0].Average(a => (double)a[k]);
        int[] expected = [0, .. Enumerable.Range(1, T - 1).OrderByDescending(Cls).Take(8).Order()];
        Assert.Equal(expected, pruned.Kept);

        // the same model with the dropped patches masked out as keys of block 1: per-token MLPs and norms cannot carry them
        // to the CLS, so its logits must match (float rounding of the shorter GEMMs aside)
        var dropped = Enumerable.Range(1, T - 1).Except(expected).ToArray();
        var masked = new HookSet(loaded.Config.NLayers);
        masked.Add("blocks.1.attn.hook_attn_scores", a =>
        {
            var scores = a.Data.Span; // [1, head, q, k]
            for (int r = 0; r < NH * T; r++)
            {
                foreach (int k in dropped)
                {
                    scores[r * T + k] = -1e30f;
                }
            }
        });
        var reference = vit.Forward(input, masked)[..V];
        for (int i = 0; i < V; i++)
        {
            Assert.Equal(reference[i], pruned.Output[i], 1e-4);
        }
        Assert.NotEqual(full, pruned.Output);

        // head weights: a layer whose weight sits on one head keeps that head's top patches
        var weights = new[] { new float[NH], new float[NH] };
        weights[0][2] = 1;
        var oneHead = vit.ForwardPruned(input, new TokenPruning([0], 0.25, weights));
        int[] byHead = [0, .. Enumerable.Range(1, T - 1).OrderByDescending(k => p.Patterns[0][2][k]).Take(4).Order()];
        Assert.Equal(byHead, oneHead.Kept);
        Assert.Equal([0, 1], TokenPruning.DefaultLayers(3));
        Assert.Equal([3, 6, 9], TokenPruning.DefaultLayers(12));
        Assert.Throws<InvalidInputException>(() => vit.ForwardPruned(input, new TokenPruning([2], 0.5)));
        Assert.Throws<InvalidInputException>(() => vit.ForwardPruned(input, new TokenPruning([0], 0)));
    }

    [Fact]
    public void TheVisionReportHasTheImageScoresOverlaysAndClusters()
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded, "image.png");
        int T = input.SeqLen, G = loaded.Config.Vision!.GridSize;
        var data = Headwise.Reports.VisionReport.Build(loaded.Model, input, "image.png", new Headwise.Reports.ReportOptions(), clusters: 3);
        Assert.Equal(["attention distance", "entropy", "CLS attention", "patch sink"], data.Scores.Select(s => s.Name));
        var direct = VisionHeads.Score(PatternAnalysis.RunImage(loaded.Model, input), G, G);
        Assert.All(direct, s => Assert.Equal((float)s.Cls, data.Scores[2][s.Id]));
        Assert.Equal(8 + 1 + 3, data.Images.Count); // overlays, rollout, prototypes
        Assert.All(data.Images, i => Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], i.Png[..4]));
        Assert.Equal(new HeadId(1, 2), data.Images.Single(i => i.Title == "1.2").Head);
        Assert.Contains(data.Tables, t => t.Section == Headwise.Reports.VisionReport.ClusterSection && t.Rows.Count == 3);
        // bidirectional: the page's patterns carry every key of every query
        using var json = System.Text.Json.JsonDocument.Parse(Headwise.Reports.HtmlReport.DataJson(data));
        Assert.All(json.RootElement.GetProperty("patterns").GetProperty("heads")[0].EnumerateArray(), row => Assert.Equal(T, row.GetArrayLength()));

        // an overlay of a one-hot weight: the patch's pixels half viridis yellow, the others half viridis purple
        var display = new Headwise.Reports.RgbImage(4, 4, new byte[4 * 4 * 3]);
        var weights = new float[4];
        weights[3] = 0.5f;
        var overlay = Headwise.Reports.VisionReport.Overlay(display, weights, 2, 2);
        Assert.Equal(((byte)(0xfd / 2), (byte)(0xe7 / 2), (byte)(0x25 / 2)), overlay[3, 3]);
        Assert.Equal(((byte)(0x44 / 2), (byte)(0x01 / 2), (byte)(0x54 / 2)), overlay[0, 0]);
    }
}
