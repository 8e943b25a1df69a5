using Headwise.Analysis;
using Headwise.Analysis.Attribution;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Patterns;
using Headwise.Loading;

namespace Headwise.Tests.Models.Analysis;

public class DirectLogitAttributionTests
{
    // The contributions sum to the model's own logit (difference) minus the final norm's bias term.
    private static void AssertIdentity(DirectLogitAttributionResult r)
    {
        double scale = 1 + r.Contributions.Sum(c => Math.Abs(c.Value));
        Assert.True(Math.Abs(r.Sum - (r.Logit - r.NormBiasTerm)) < 1e-4 * scale,
            $"Σ contributions {r.Sum} vs logit {r.Logit} − bias term {r.NormBiasTerm}");
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("gpt2_untied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    [InlineData("neox_sequential")]
    [InlineData("qwen2")]
    public void ContributionsSumToTheLogitDifferenceOnGoldens(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        int[] ids = [5, 9, 13, 2, 7, 30, 44, 1];
        var r = DirectLogitAttribution.Run(m.Model, ids, answer: 11, wrong: 3);
        AssertIdentity(r);
        var plain = DirectLogitAttribution.Run(m.Model, ids, answer: 11, position: 4);
        AssertIdentity(plain);
        Assert.Equal(4, plain.Position);
        // the plain logit of one token and of another differ by the logit difference
        var other = DirectLogitAttribution.Run(m.Model, ids, answer: 3);
        var full = DirectLogitAttribution.Run(m.Model, ids, answer: 11);
        Assert.Equal(full.Logit - other.Logit, r.Logit, 4);
        Assert.Equal(m.Config.NLayers * m.Config.NHeads, r.Contributions.Count(c => c.Head is not null));
    }

    [Fact]
    public void ContributionsSumToTheLogitDifferenceOnStories260K()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"));
        int[] ids = [1, 403, 407, 261, 378, 432];
        var r = DirectLogitAttribution.Run(m.Model, ids, answer: 280, wrong: 300);
        AssertIdentity(r);
        Assert.Equal(0, r.NormBiasTerm); // RMSNorm has no bias
    }

    [Fact]
    public void TheInductionHeadHasTheLargestDirectEffectOnTheRepeatedToken()
    {
        using var model = ToyModels.InductionCircuit();
        int[] first = [50, 61, 72, 83, 94, 105, 116, 40];
        int[] tokens = [.. first, .. first[..5]]; // ... 50 61 72 83 94 → next is 105
        var r = DirectLogitAttribution.Run(model, tokens, answer: 105, wrong: 116);
        AssertIdentity(r);
        var top = r.Heads.Ranked()[0];
        Assert.Equal(ToyModels.InductionHeadId, top.Head);
        Assert.True(top.Score > 0.8 * ToyModels.UnembedScale, $"{top.Score}");
        Assert.True(r.Logit > 0.8 * ToyModels.UnembedScale);
    }

    [Fact]
    public void PatternsMatchTheCachedPatternAndCarryLabels()
    {
        using var model = ToyModels.PreviousTokenHead();
        int[] ids = [40, 41, 42, 43];
        var p = PatternAnalysis.Run(model, ids);
        Assert.Equal(["40", "41", "42", "43"], p.Tokens);
        Assert.Equal(1, p.Layers);
        Assert.Equal(4, p.Heads);
        Assert.True(p.At(ToyModels.PreviousTokenHeadId, 3, 2) > 0.99f);
        Assert.Equal(0.25f, p.At(new HeadId(0, 0), 3, 1), 4);
        Assert.Equal(0f, p.At(new HeadId(0, 0), 1, 3)); // causal
    }
}
