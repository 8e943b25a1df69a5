using System.IO.Compression;
using Headwise.Training;
using Headwise.Training.Experiments;

namespace Headwise.Tests.Unit.Training;

public sealed class TaskModelTests
{
    /// <summary>Central finite differences of the loss against the hand-written gradient, for every parameter entry sampled.</summary>
    private static void CheckGradients(IReadOnlyList<Param> ps, Func<double> loss, Action lossAndBackward, int perParam = 12)
    {
        foreach (var p in ps)
        {
            Array.Clear(p.G);
        }

        lossAndBackward();
        var rng = new Random(5);
        foreach (var p in ps.Where(p => p.Trainable))
        {
            for (int n = 0; n < perParam; n++)
            {
                int i = rng.Next(p.W.Length);
                double w = p.W[i];
                const double eps = 1e-5;
                p.W[i] = w + eps;
                double up = loss();
                p.W[i] = w - eps;
                double down = loss();
                p.W[i] = w;
                double fd = (up - down) / (2 * eps);
                Assert.True(Math.Abs(fd - p.G[i]) <= 1e-6 + (1e-4 * Math.Abs(fd)), $"{p.Name}[{i}]: finite difference {fd}, backward {p.G[i]}");
            }
        }
    }

    [Theory]
    [InlineData(false, 2)]
    [InlineData(false, 1)]
    [InlineData(true, 2)]
    [InlineData(true, 1)]
    public void OvMatrixIsWhatTheHeadsWriteIntoTheResidualStream(bool combined, int kvHeads)
    {
        // One token, so every head attends to it with weight 1; one-hot embeddings, no bias, no norm: the logits are
        // e_tok + Σ_h (e_tok · M_h) = δ(tok, j) + Σ_h M_h[tok, j].
        var c = new TrainableConfig
        {
            VocabSize = 7,
            DModel = 7,
            NLayers = 1,
            NHeads = 2,
            NKvHeads = kvHeads,
            DHead = 3,
            SeqLen = 4,
            AttentionOnly = true,
            UseNorm = false,
            UseBias = false,
            UsePositions = false,
            OneHotEmbeddings = true,
            CombinedOV = combined,
            InitStd = 0.5f,
        };
        var model = new TrainableTransformer(c, seed: 4);
        var m0 = model.OvMatrix(0, 0);
        var m1 = model.OvMatrix(0, 1);
        for (int tok = 0; tok < 7; tok++)
        {
            model.Forward([tok], default, 1, 1);
            var logits = model.Logits;
            for (int j = 0; j < 7; j++)
            {
                double expected = (tok == j ? 1 : 0) + m0[(tok * 7) + j] + m1[(tok * 7) + j];
                Assert.True(Math.Abs(expected - logits[j]) < 1e-5, $"token {tok}, logit {j}: {logits[j]} vs e_tok + Σ_h M_h = {expected}");
            }
        }

        Assert.True(m0.Any(v => Math.Abs(v) > 1e-3), "the OV matrix should not be zero");
        if (!combined)
        {
            // a factored head's OV map has rank ≤ head size (3 of 7): at most 3 non-zero singular values
            Assert.Equal(3, Linalg.SingularValues(m0, 7, 7).Count(v => v > 1e-6));
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ResidualProjectionsAreScaledOnlyWhenAsked(bool scale)
    {
        // 2 layers: scaled std = 0.1 / √4 = 0.05 for attn.w_o; the q/k/v weights keep 0.1
        var c = ModelGradientTests.Variant("gpt2") with { DModel = 64, NHeads = 4, InitStd = 0.1f, ScaleResidualInit = scale };
        var model = new TrainableTransformer(c, seed: 2);
        static double Std(ReadOnlySpan<float> w)
        {
            double s = 0;
            foreach (float x in w) s += (double)x * x;
            return Math.Sqrt(s / w.Length);
        }
        Assert.Equal(scale ? 0.05 : 0.1, Std(model.Param("blocks.1.attn.w_o")), 0.005);
        Assert.Equal(0.1, Std(model.Param("blocks.1.attn.w_qkv")), 0.005);
    }

    [Fact]
    public void OneHotEmbeddingsAreNotParameters()
    {
        var model = new TrainableTransformer(OcrExperiment.ModelConfig(9, factoredOv: true, initStd: 0.3) with { SeqLen = 3 }, seed: 1);
        Assert.DoesNotContain(model.Parameters, p => p.Name is "wte" or "w_u" or "wpe");
        Assert.Equal(["blocks.0.attn.w_qkv", "blocks.0.attn.w_o"], model.Parameters.Select(p => p.Name));
        // no position information: the last position's logits depend on the set of earlier tokens, not their order
        model.Forward([2, 7, 5], default, 1, 3);
        var a = model.Logits[18..].ToArray();
        model.Forward([7, 2, 5], default, 1, 3);
        Assert.All(model.Logits[18..].ToArray().Zip(a), p => Assert.Equal(p.First, p.Second, 1e-6f));
        model.Forward([7, 3, 5], default, 1, 3);
        Assert.NotEqual(a, model.Logits[18..].ToArray());
    }

    [Fact]
    public void RegressionAttentionBackwardMatchesFiniteDifferences()
    {
        var m = new SoftmaxRegressionAttention(4, 2, 3, seed: 4, initStd: 0.6);
        var task = new IclRegressionTask(3, 5);
        var (ctx, q, y, _) = task.Sample(new Random(1));
        double Loss() => Math.Pow(m.Predict(ctx, 5, q) - y, 2);
        CheckGradients(m.Parameters, Loss, () => m.Predict(ctx, 5, q, dPred: 2 * (m.Predict(ctx, 5, q) - y)));
    }

    [Fact]
    public void SameParameterCountForOneWideHeadAndSeveralNarrowOnes() =>
        Assert.Equal(new SoftmaxRegressionAttention(5, 4, 5, 0).ParameterCount, new SoftmaxRegressionAttention(5, 1, 20, 0).ParameterCount);

    [Fact]
    public void SingularValuesOfKnownMatrices()
    {
        // diag(3, -2, 0.5) embedded in a 4×3 matrix: singular values 3, 2, 0.5.
        double[] a = [3, 0, 0, 0, -2, 0, 0, 0, 0.5, 0, 0, 0];
        Assert.Equal([3, 2, 0.5], Linalg.SingularValues(a, 4, 3).Select(v => Math.Round(v, 9)));
        // rank one u vᵀ: one singular value |u|·|v| = 5 · 2.
        double[] u = [3, 4];
        double[] v = [0, 2, 0];
        var r1 = new double[6];
        Linalg.Mm(u, v, r1, 2, 1, 3);
        Assert.Equal(10, Linalg.NuclearNorm(r1, 2, 3), 9);
    }

    [Fact]
    public void InductionSamplesRepeatAndScoresFindTheInductionOffset()
    {
        var task = new InductionTask(10, 8);
        var rng = new Random(3);
        for (int n = 0; n < 20; n++)
        {
            var e = task.Sample(rng);
            Assert.Equal(task.Length, e.Tokens.Length);
            Assert.InRange(e.Period, 4, 8);
            Assert.Equal(InductionTask.Bos, e.Tokens[0]);
            for (int i = 0; i < e.Period; i++)
            {
                Assert.Equal(e.Tokens[e.Start + i], e.Tokens[e.Start + e.Period + i]);
            }

            // A perfect induction pattern (second copy attends to i − L + 1, everything else to BOS) scores 1.
            int t = e.Tokens.Length;
            var pattern = new double[t * t];
            for (int i = 0; i < t; i++)
            {
                pattern[(i * t) + (i >= e.Start + e.Period ? i - e.Period + 1 : 0)] = 1;
            }

            Assert.Equal(1.0, InductionTask.Scores(e, pattern).Induction);
        }
    }

    [Fact]
    public void OcrSplitHoldsEveryFactAndHidesTheTestImplications()
    {
        var task = new OcrTask(24, 4, 0.5, seed: 2);
        var train = task.Train();
        var test = task.Test();
        Assert.Equal(24, train.Count(e => e.Tokens[1] == task.Fact));
        Assert.Equal(24, train.Count(e => e.Tokens[1] == task.Implication) + test.Count);
        Assert.DoesNotContain(train, e => test.Any(x => x.Tokens.SequenceEqual(e.Tokens)));
        // every implied object is taught for some subject, and the implication follows the fact
        Assert.Equal(4, train.Where(e => e.Tokens[1] == task.Implication).Select(e => e.Targets[1]).Distinct().Count());
        Assert.All(test, e => Assert.Equal(task.FactToken(e.Tokens[0]) + task.Objects, e.Targets[1]));
    }

    [Fact]
    public void ListRecallAnswerIsTheItemNotRepeated()
    {
        var task = new ListRecallTask(12, 5);
        var e = task.Sample(new Random(9));
        var list = e.Tokens[1..6];
        var rest = e.Tokens[7..^1];
        Assert.Equal(list.Except(rest).Single(), e.Targets[^1]);
    }

    [Fact]
    public void MultiHeadBeatsSingleHeadOnInContextRegressionAndHeadsCancel()
    {
        var r = IclRegressionExperiment.Run(new IclOptions(Steps: 600, EvalPrompts: 300, EvalEvery: 300));
        Assert.True(r.MultiHeadMse < 0.9 * r.SingleHeadMse, $"multi {r.MultiHeadMse} vs single {r.SingleHeadMse}");
        Assert.True(r.MultiHeadMse < 0.5 * r.ZeroMse);
        Assert.True(r.OvZeroSum < 0.3, $"zero-sum {r.OvZeroSum}");
        Assert.True(r.MultiHeads[0].KqDiagonalMean * r.MultiHeads[1].KqDiagonalMean < 0, "the two heads' KQ diagonals have opposite signs");
    }

    [Fact]
    public void FactoredModelAnswersHeldOutImplicationsAndCombinedDoesNot()
    {
        var r = OcrExperiment.Run(new OcrOptions(Steps: 250, Subjects: 24, Objects: 4, EvalEvery: 250));
        Assert.Equal(1.0, r.Factored.Final.TrainAccuracy);
        Assert.Equal(1.0, r.Combined.Final.TrainAccuracy);
        Assert.True(r.Factored.Final.HeldOutAccuracy >= 0.75, $"factored {r.Factored.Final.HeldOutAccuracy}");
        Assert.True(r.Combined.Final.HeldOutAccuracy <= 0.5 && r.Factored.Final.HeldOutAccuracy - r.Combined.Final.HeldOutAccuracy >= 0.3, $"combined {r.Combined.Final.HeldOutAccuracy}");
        Assert.All(r.Factored.Curve, p => Assert.True(p.OvNuclearNorm >= 0));
    }

    [Fact]
    public void InductionExperimentMechanics()
    {
        var r = InductionExperiment.Run(new InductionOptions(Steps: 30, EvalEvery: 10, EvalSamples: 4, Vocab: 10, Half: 6, DModel: 16, HeadDim: 8));
        Assert.Equal([0, 10, 20, 30], r.Curve.Select(p => p.Step));
        Assert.Equal(4, r.Heads.Count);
        Assert.Equal(Math.Log(9), r.ChanceLoss, 12);
        Assert.All(r.Heads, h => Assert.InRange(h.Induction, 0, 1));
        string dir = Directory.CreateTempSubdirectory("headwise-ind-").FullName;
        try
        {
            string report = ExperimentReports.WriteInduction(r, dir);
            Assert.Contains("induction score", File.ReadAllText(report));
            Assert.True(File.Exists(Path.Combine(dir, "loss.png")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void PngHasValidHeaderAndPixels()
    {
        string path = Path.GetTempFileName();
        try
        {
            TaskPlots.WritePng(path, [255, 0, 0, 0, 0, 255], 2, 1);
            byte[] b = File.ReadAllBytes(path);
            Assert.Equal([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], b[..8]);
            Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(b, 12, 4));
            Assert.Equal(2, b[19]);   // width 2
            Assert.Equal(1, b[23]);   // height 1
            int idat = System.Text.Encoding.ASCII.GetString(b).IndexOf("IDAT", StringComparison.Ordinal);
            int len = (b[idat - 4] << 24) | (b[idat - 3] << 16) | (b[idat - 2] << 8) | b[idat - 1];
            using var z = new ZLibStream(new MemoryStream(b, idat + 4, len), CompressionMode.Decompress);
            var raw = new MemoryStream();
            z.CopyTo(raw);
            Assert.Equal([0, 255, 0, 0, 0, 0, 255], raw.ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }
}
