using Headwise.Analysis;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Tasks;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Models.Analysis;

/// <summary>Ablation, activation patching and context sensitivity: identities that hold only if the hooks hit the right
/// activation, hand-computed KL, and the hand-built induction circuit whose answer is known by construction.</summary>
public class InterventionTests
{
    private static LoadedModel Load(string name) => ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));

    private static readonly int[] Tokens = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6, 17, 5, 9, 40];

    [Theory]
    [InlineData("gpt2_tied", AblationMethod.Zero, MetricKind.Loss)]
    [InlineData("gpt2_tied", AblationMethod.Mean, MetricKind.Kl)]
    [InlineData("llama_gqa", AblationMethod.Resample, MetricKind.Loss)]
    [InlineData("neox_parallel", AblationMethod.Mean, MetricKind.Loss)]
    public void ResumingAfterTheAttentionSublayerGivesTheFullForwardsMetric(string name, AblationMethod method, MetricKind metric)
    {
        using var m = Load(name);
        var target = InterventionTarget.FromTokens(Tokens);
        foreach (HeadId[] heads in new[] { new[] { new HeadId(1, 2) }, [new HeadId(1, 0), new HeadId(1, 3)], [new HeadId(0, 1), new HeadId(1, 3)] })
        {
            var fast = Ablation.Ablate(m.Model, target, heads, method, metric, reuseClean: true);
            var slow = Ablation.Ablate(m.Model, target, heads, method, metric, reuseClean: false);
            // the shortcut adds (z′_h − z_h)·W_O[h] to the cached resid_mid instead of recomputing the layer: equal up to rounding
            Assert.Equal(slow.Ablated, fast.Ablated, 1e-5);
            Assert.Equal(slow.Clean, fast.Clean);
            Assert.NotEqual(fast.Clean, fast.Ablated); // the ablation did something
        }
    }

    [Theory]
    [InlineData("gpt2_tied", AblationMethod.Mean, MetricKind.Loss)]
    [InlineData("llama_gqa", AblationMethod.Resample, MetricKind.Kl)]
    [InlineData("neox_parallel", AblationMethod.Zero, MetricKind.Loss)]
    public void TheImportanceScanEqualsAFullHookedForwardPerHead(string name, AblationMethod method, MetricKind metric)
    {
        using var m = Load(name);
        var target = InterventionTarget.FromTokens(Tokens);
        var scan = Ablation.Importance(m.Model, target, method, metric);
        for (int l = 0; l < m.Config.NLayers; l++)
        {
            for (int h = 0; h < m.Config.NHeads; h++)
            {
                var full = Ablation.Ablate(m.Model, target, [new HeadId(l, h)], method, metric, reuseClean: false);
                Assert.Equal(full.Change, scan.Values[l][h], 1e-5);
            }
        }
        Assert.Contains(scan.Values.SelectMany(v => v), v => Math.Abs(v) > 1e-4); // some head matters
    }

    [Fact]
    public void ZeroAblatingEveryHeadOfALayerIsRemovingItsAttentionOutput()
    {
        using var m = Load("llama_gqa"); // no output bias: z = 0 gives attn_out = 0 exactly
        var c = m.Config;
        var input = ModelInput.Single(Tokens);
        for (int l = 0; l < c.NLayers; l++)
        {
            var removed = m.Model.RunWithHooks(input, ($"blocks.{l}.hook_attn_out", a => a.Data.Span.Clear()));
            var heads = Enumerable.Range(0, c.NHeads).Select(h => new HeadId(l, h)).ToArray();
            var r = Ablation.Ablate(m.Model, InterventionTarget.FromTokens(Tokens), heads, AblationMethod.Zero, MetricKind.Loss);
            Assert.Equal(InterventionMetrics.MeanNll(removed, Tokens, c.VocabSize, 1, Tokens.Length), r.Ablated, 1e-5);
            var viaZ = m.Model.RunWithHooks(input, ($"blocks.{l}.attn.hook_z", a => a.Data.Span.Clear()));
            Assert.Equal(removed, viaZ);
        }
    }

    [Fact]
    public void KlMatchesAHandComputationAndIsZeroForAnUnchangedRun()
    {
        // two positions over a vocabulary of 3
        float[] p = [1f, 2f, 0.5f, -1f, 0f, 3f];
        float[] q = [0.2f, 2.5f, 1f, 0f, 0f, 0f];
        double expected = 0;
        for (int t = 0; t < 2; t++)
        {
            var a = p.Skip(3 * t).Take(3).Select(x => (double)x).ToArray();
            var b = q.Skip(3 * t).Take(3).Select(x => (double)x).ToArray();
            double za = a.Sum(Math.Exp), zb = b.Sum(Math.Exp);
            for (int i = 0; i < 3; i++)
            {
                double pa = Math.Exp(a[i]) / za, pb = Math.Exp(b[i]) / zb;
                expected += pa * Math.Log(pa / pb);
            }
        }
        Assert.Equal(expected / 2, InterventionMetrics.MeanKl(p, q, 3), 1e-6);
        Assert.Equal(0.0, InterventionMetrics.MeanKl(p, p, 3));

        // a head that writes nothing (toy model: OV zero) changes nothing: KL exactly 0
        using var toy = ToyModels.InductionCircuit();
        var r = Ablation.Ablate(toy, InterventionTarget.FromTokens(DistinctRepeated(1, 12)), [new HeadId(1, 2)], AblationMethod.Zero, MetricKind.Kl);
        Assert.Equal(0.0, r.Ablated);
    }

    private static PatchPair[] Pair(LoadedModel m)
    {
        int[] clean = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6];
        int[] corrupted = [3, 17, 5, 9, 40, 1, 8, 41, 30, 2, 11, 6];   // equal up to position 3; last token equal
        return [new PatchPair(clean, corrupted, ActivationPatching.LogitDifference(m.Config.VocabSize, 22, 40))];
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_sequential")]
    public void PatchingEveryHeadsZGivesOneAndNothingGivesZero(string name)
    {
        using var m = Load(name);
        var all = Enumerable.Range(0, m.Config.NLayers).SelectMany(l => Enumerable.Range(0, m.Config.NHeads).Select(h => new HeadId(l, h))).ToArray();
        Assert.Equal(1.0, ActivationPatching.PatchHeads(m.Model, Pair(m), PatchSite.Z, all), 1e-5);
        Assert.Equal(0.0, ActivationPatching.PatchHeads(m.Model, Pair(m), PatchSite.Z, []));
    }

    [Theory]
    [InlineData("gpt2_tied", PatchSite.Z)]
    [InlineData("llama_gqa", PatchSite.K)]
    [InlineData("llama_gqa", PatchSite.Pattern)]
    public void PerPositionPatchingBeforeTheFirstDifferenceContributesNothing(string name, PatchSite site)
    {
        using var m = Load(name);
        var r = ActivationPatching.Run(m.Model, Pair(m), site, perPosition: true);
        int units = ActivationPatching.Units(m.Config, site);
        Assert.Equal(units, r.Scores.Heads);
        // zero up to float rounding: a patched layer runs the three-pass (hookable) attention, the corrupted baseline the
        // blocked kernel (online softmax), so equal inputs agree to ~1e-6 relative, not bit for bit
        for (int h = 0; h < units; h++)
        {
            for (int p = 0; p < 4; p++)
            {
                Assert.Equal(0f, r.PerPosition![0][h][p], 1e-5f);
            }
        }
        // somewhere, some position matters
        Assert.Contains(r.PerPosition!.SelectMany(l => l.SelectMany(h => h)), v => Math.Abs(v) > 1e-3);
    }

    [Fact]
    public void PatchingRejectsPromptsOfDifferentLengths()
    {
        using var m = Load("gpt2_tied");
        var e = Assert.Throws<InvalidInputException>(() => ActivationPatching.Run(m.Model,
            [new PatchPair([1, 2, 3], [1, 2], ActivationPatching.LogitDifference(m.Config.VocabSize, 1, 2))], PatchSite.Z));
        Assert.Contains("same number of tokens", e.Message);
    }

    /// <summary>A random permutation's first <paramref name="half"/> tokens, twice (distinct tokens: one earlier occurrence each).</summary>
    private static int[] DistinctRepeated(int seed, int half)
    {
        var ids = Enumerable.Range(0, ToyModels.VocabSize).ToArray();
        new Random(seed).Shuffle(ids);
        return [.. ids[..half], .. ids[..half]];
    }

    [Fact]
    public void AblatingTheInductionHeadRaisesTheSecondHalfLossMost()
    {
        using var toy = ToyModels.InductionCircuit();
        var prompts = Enumerable.Range(0, 3).Select(s => new TokenizedPrompt(DistinctRepeated(s, 20), null, [], [], LossFrom: 21)).ToArray();
        var task = new TokenizedTask("toy-induction", TaskMetric.SecondHalfLoss, "second-half loss", prompts, []);
        var scores = Ablation.Importance(toy, InterventionTarget.FromTask(task), AblationMethod.Zero, MetricKind.Task);
        var induction = scores[ToyModels.InductionHeadId];
        Assert.True(induction > 2, $"ablating the induction head raised the loss by only {induction}");
        Assert.Equal(ToyModels.InductionHeadId, scores.Top(1)[0].Head);
        foreach (var (head, score) in scores.Ranked())
        {
            if (head != ToyModels.InductionHeadId && head != ToyModels.InductionPreviousTokenHeadId)
            {
                Assert.Equal(0f, score, 1e-5f); // heads that write nothing
            }
        }
    }

    [Fact]
    public void PatchingRecoversTheInductionCircuit()
    {
        using var toy = ToyModels.InductionCircuit();
        var clean = DistinctRepeated(4, 16);
        var corrupted = (int[])clean.Clone();
        var others = Enumerable.Range(0, ToyModels.VocabSize).Except(clean).ToArray();
        for (int i = 0; i < 16; i++)
        {
            corrupted[i] = others[i];   // first half replaced: nothing to copy from
        }
        // at the last position (token clean[15]) the circuit predicts clean[0]; compare with a token absent from both
        var pair = new PatchPair(clean, corrupted, ActivationPatching.LogitDifference(ToyModels.VocabSize, clean[0], others[40]));
        var r = ActivationPatching.Run(toy, [pair], PatchSite.Z);
        var top = r.Scores.Top(2).Select(x => x.Head).ToHashSet();
        Assert.Equal(new HashSet<HeadId> { ToyModels.InductionHeadId, ToyModels.InductionPreviousTokenHeadId }, top);
        Assert.True(r.Scores[ToyModels.InductionHeadId] > 0.9f, $"{r.Scores[ToyModels.InductionHeadId]}");
        Assert.True(r.Scores[ToyModels.InductionPreviousTokenHeadId] > 0.5f, $"{r.Scores[ToyModels.InductionPreviousTokenHeadId]}");
    }

    [Fact]
    public void ContextSensitivityIsZeroForAnIdenticalContextAndHighestForTheInductionHead()
    {
        using var m = Load("gpt2_tied");
        var same = ContextSensitivity.Compute(m.Model, Tokens, 4, replacementContext: Tokens[1..^4], keepPrefix: 1);
        Assert.All(same.Values.SelectMany(v => v), v => Assert.Equal(0f, v));

        using var toy = ToyModels.InductionCircuit();
        var scores = ContextSensitivity.Compute(toy, DistinctRepeated(2, 16), 8);
        Assert.Equal(ToyModels.InductionHeadId, scores.Top(1)[0].Head);
        Assert.True(scores[ToyModels.InductionHeadId] > 0.5f);
    }
}
