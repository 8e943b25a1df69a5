using Headwise.Analysis;
using Headwise.Interventions;
using Headwise.Models;
using Headwise.Training;
using Headwise.Training.Experiments;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Tests.Unit.Training;

/// <summary>The intervention findings (talking-heads, factual-recall): task generators by construction, the weight edits
/// against an independent edit, the identity at factor 1, and short end-to-end runs.</summary>
public sealed class FindingsExperimentTests
{
    [Fact]
    public void ListRecallSampleAtAPositionLeavesThatItemOut()
    {
        var task = new ListRecallTask(12, 5);
        var rng = new Random(3);
        for (int p = 0; p < 5; p++)
        {
            var e = task.Sample(rng, p);
            var list = e.Tokens[1..6];
            var rest = e.Tokens[7..^1];
            Assert.Equal(list[p], e.Targets[^1]);
            Assert.Equal(list.Except(rest).Single(), e.Targets[^1]);
            Assert.Equal(p, task.MissingPosition(e));
        }
        var heldOut = TalkingHeadsExperiment.HeldOut(task, 7, seed: 0);
        Assert.Equal(35, heldOut.Length);
        Assert.Equal(Enumerable.Range(0, 5).SelectMany(p => Enumerable.Repeat(p, 7)), heldOut.Select(task.MissingPosition));
        Assert.Throws<InvalidInputException>(() => task.Sample(rng, 5));
    }

    [Fact]
    public void FactualRecallTaskKeepsHeldOutPairsOutOfTraining()
    {
        var task = new FactualRecallTask(24, 8, stubbornRate: 0.2, yieldingRate: 0.8, seed: 1);
        Assert.Equal(12, task.Stubborn.Count(s => s));
        var rng = new Random(2);
        int[] inContext = new int[2], counterfactual = new int[2];
        for (int i = 0; i < 20_000; i++)
        {
            var e = task.Sample(rng);
            Assert.Equal(FactualRecallTask.Length, e.Tokens.Length);
            Assert.Equal([task.Bos, task.Relation, task.Dot, task.Relation], [e.Tokens[0], e.Tokens[2], e.Tokens[4], e.Tokens[6]]);
            int prefixSubject = e.Tokens[1], subject = e.Tokens[5], x = e.Tokens[3] - task.Subjects, answer = e.Targets[^1] - task.Subjects;
            bool trueFact = x == task.Memorised[prefixSubject];
            if (trueFact)
            {
                // a fact (any prefix subject) or a consistent prefix: the answer is memorised, and the prefix is a target too
                Assert.Equal(task.Memorised[subject], answer);
                Assert.Equal(e.Tokens[3], e.Targets[2]);
                continue;
            }
            // a counterfactual: same subject, a seen pair, answered in context or from memory, no target inside the prefix
            Assert.Equal(prefixSubject, subject);
            Assert.False(FactualRecallTask.IsHeldOut(subject, x));
            Assert.Contains(answer, new[] { x, task.Memorised[subject] });
            Assert.Equal(-1, e.Targets[2]);
            int g = task.Stubborn[subject] ? 0 : 1;
            counterfactual[g]++;
            inContext[g] += answer == x ? 1 : 0;
        }
        Assert.InRange((double)inContext[0] / counterfactual[0], 0.17, 0.23);
        Assert.InRange((double)inContext[1] / counterfactual[1], 0.77, 0.83);

        var heldOut = task.HeldOut();
        Assert.NotEmpty(heldOut);
        Assert.All(heldOut, h =>
        {
            Assert.True(FactualRecallTask.IsHeldOut(h.Subject, h.InContext));
            Assert.NotEqual(task.Memorised[h.Subject], h.InContext);
            Assert.Equal(task.AttributeToken(h.InContext), h.Prompt.Tokens[3]);
            Assert.Equal(h.Subject, h.Prompt.Tokens[5]);
        });
        Assert.All(task.Facts(), e => Assert.Equal(task.AttributeToken(task.Memorised[e.Tokens[5]]), e.Targets[^1]));
    }

    // a small GPT-2 with well-separated singular values (init std 0.3), as an engine model
    private static TransformerModel RandomGpt2()
    {
        var config = new TrainableConfig { VocabSize = 11, DModel = 16, NLayers = 2, NHeads = 2, SeqLen = 8, InitStd = 0.3f };
        var trainable = new TrainableTransformer(config, seed: 5);
        return TransformerModel.Create(trainable.ToCanonical(), "random gpt2");
    }

    private static Matrix<double> Block(ReadOnlySpan<float> w, int rows, int cols)
    {
        var copy = w.ToArray();
        return Matrix<double>.Build.Dense(rows, cols, (r, c) => copy[r * cols + c]);
    }

    // ΔM = Σ_i (1 − g_i) s_i u_i v_iᵀ from the dense SVD of M: what an edit takes away
    private static Matrix<double> Removed(Matrix<double> m, Func<int, double> gain)
    {
        var svd = m.Svd(computeVectors: true);
        var delta = Matrix<double>.Build.Dense(m.RowCount, m.ColumnCount);
        for (int i = 0; i < svd.S.Count; i++)
        {
            delta += (1 - gain(i)) * svd.S[i] * svd.U.Column(i).ToColumnMatrix() * svd.VT.Row(i).ToRowMatrix();
        }
        return delta;
    }

    [Theory]
    [InlineData(Interventions.HeadCircuit.Ov)]
    [InlineData(Interventions.HeadCircuit.Qk)]
    public void EditRecipeEqualsAnIndependentlyEditedModel(Interventions.HeadCircuit circuit)
    {
        using var model = RandomGpt2();
        var head = new HeadId(1, 1);
        var edit = new EditWeights(circuit, head, Remove: [0, 2], Scale: new Dictionary<int, double> { [1] = 1.5 });
        int[] ids = [1, 4, 2, 9, 3, 3, 7, 0];
        using var applied = RecipeApplication.Apply(new Recipe("edit", [edit]), model);
        var viaRecipe = applied.Forward(ModelInput.Single(ids));

        // independently: the dense C×C circuit, its SVD, and the change written back through a pseudo-inverse of the shared factor
        var weights = model.ToCanonical();
        var a = weights.Layers[head.Layer].Attention;
        int C = a.DModel, HD = a.DHead, h = head.Head, j = a.KvHeadOf(h);
        if (circuit == Interventions.HeadCircuit.Ov)
        {
            var wv = Block(a.V(j), C, HD);                                       // (C, HD)
            var wo = Block(a.O(h), HD, C);                                       // (HD, C)
            var edited = wo - wv.PseudoInverse() * Removed(wv * wo, edit.Gain);  // W_V·W_O′ = W_OV − ΔM
            Write(a.O(h), edited);
        }
        else
        {
            var wq = Block(a.Q(h), C, HD);                                       // (C, HD)
            var wk = Block(a.K(j), C, HD);                                       // (C, HD)
            var edited = wq - Removed(wq * wk.Transpose(), edit.Gain) * wk.Transpose().PseudoInverse(); // W_Q′·W_Kᵀ = W_QK − ΔM
            Write(a.Q(h), edited);
        }
        using var rebuilt = TransformerModel.Create(weights, "edited by hand");
        var byHand = rebuilt.Forward(ModelInput.Single(ids));
        var plain = model.Forward(ModelInput.Single(ids));
        Assert.Equal(byHand.Length, viaRecipe.Length);
        double maxDiff = byHand.Zip(viaRecipe, (x, y) => Math.Abs(x - y)).Max();
        double change = plain.Zip(byHand, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(maxDiff < 1e-4, $"recipe vs hand-edited logits differ by {maxDiff}");
        Assert.True(change > 1e-2, $"the edit should change the logits (max change {change})");
    }

    private static void Write(Span<float> target, Matrix<double> m)
    {
        for (int r = 0; r < m.RowCount; r++)
        {
            for (int c = 0; c < m.ColumnCount; c++)
            {
                target[r * m.ColumnCount + c] = (float)m[r, c];
            }
        }
    }

    [Fact]
    public void FactorOneAndNoRemovalReproduceTheUneditedScores()
    {
        using var model = RandomGpt2();
        // list recall on 2 items of 5 has vocabulary 8 ≤ 11, length 6 ≤ 8: the random model scores it like any model
        var task = new ListRecallTask(5, 2);
        var set = TalkingHeadsExperiment.HeldOut(task, 10, seed: 4);
        var original = TalkingHeadsExperiment.Evaluate(model, null, set, task);
        using (var applied = RecipeApplication.Apply(new Recipe("none", [new EditWeights(Interventions.HeadCircuit.Ov, new HeadId(0, 1), [], new Dictionary<int, double> { [0] = 1 })]), model))
        {
            var edited = TalkingHeadsExperiment.Evaluate(applied.Model, applied.CreateHooks(), set, task);
            Assert.Equal(original.Accuracy, edited.Accuracy);
            Assert.Equal(original.AccuracyByPosition, edited.AccuracyByPosition);
            Assert.Equal(original.AnswerLoss, edited.AnswerLoss);
        }

        var facts = new FactualRecallTask(4, 5, 0.2, 0.8, seed: 0);
        var config = new TrainableConfig { VocabSize = facts.Vocab, DModel = 16, NLayers = 2, NHeads = 2, SeqLen = FactualRecallTask.Length, InitStd = 0.3f };
        using var factModel = TransformerModel.Create(new TrainableTransformer(config, seed: 2).ToCanonical());
        var heldOut = facts.HeldOut();
        var plain = FactualRecallExperiment.Score(factModel, null, facts, heldOut, facts.Facts(), 1, "none");
        using var scaled = RecipeApplication.Apply(new Recipe("scale 1", [new ScaleHeads([new HeadId(0, 1)], 1)]), factModel);
        var one = FactualRecallExperiment.Score(scaled.Model, scaled.CreateHooks(), facts, heldOut, facts.Facts(), 1, "none");
        Assert.Equal(plain, one);
    }

    [Fact]
    public void ShortTalkingHeadsRunWritesTheReport()
    {
        string dir = Directory.CreateTempSubdirectory("headwise-th-").FullName;
        try
        {
            var r = TalkingHeadsExperiment.Run(new TalkingHeadsOptions(Steps: 40, EvalPerPosition: 8), dir);
            Assert.Equal(16, r.Pairs.Count);
            Assert.Equal(0, r.Writer.Layer);
            Assert.Equal(1, r.Reader.Layer);
            Assert.Equal(1.0, r.WriterComponents.Sum(c => c.Share), 6);
            Assert.NotEmpty(r.Channel);
            Assert.Equal(r.Channel.Length, r.Control.Length);
            Assert.Empty(r.Channel.Intersect(r.Control));
            Assert.Equal(8, r.Edits.Count);
            Assert.Equal(8, r.HeadAblations.Count);
            string report = FindingsReports.WriteTalkingHeads(r, dir);
            Assert.Contains("ov-remove-channel", File.ReadAllText(report));
            foreach (string f in new[] { "result.json", "ov-edits-by-position.png", "qk-edits-by-position.png", "channel-shares.png", "model/config.json" })
            {
                Assert.True(File.Exists(Path.Combine(dir, f)), f);
            }
            // the recipes are ordinary recipe files: they load again
            Assert.All(r.Edits, e => Recipe.Load(Path.Combine(dir, e.Recipe)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void ShortFactualRecallRunWritesTheReport()
    {
        string dir = Directory.CreateTempSubdirectory("headwise-fr-").FullName;
        try
        {
            var r = FactualRecallExperiment.Run(new FactualRecallOptions(Steps: 40, EvalEvery: 20, Subjects: 16, Attributes: 8, Batch: 16), dir);
            Assert.Equal([0, 20, 40], r.Curve.Select(p => p.Step));
            Assert.Equal(8, r.Attributions.Count);
            Assert.Equal(r.Options.Factors, r.Sweep.Select(p => p.Factor));
            Assert.All(r.Sweep, p => Assert.Equal(1.0, p.InContextWins + p.MemorisedWins, 12));
            Assert.Equal(r.Attributions.MaxBy(a => a.MeanLogitDifference)!.Head, r.Head);
            string report = FindingsReports.WriteFactualRecall(r, dir);
            Assert.Contains("in-context wins", File.ReadAllText(report));
            foreach (string f in new[] { "result.json", "scale-sweep.png", "scale-sweep-argmax.png", "training.png", "recipes/scale-0.5.json" })
            {
                Assert.True(File.Exists(Path.Combine(dir, f)), f);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
