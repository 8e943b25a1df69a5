using Headwise.Benchmarks;
using Headwise.Loading;
using Headwise.Tests.Unit.Compute;

namespace Headwise.Tests.Unit.Benchmarks;

/// <summary>`bench --recipes`: what the benchmark itself could get wrong — its ratio, whether the timed forwards really ran
/// the recipe, and stopping on Ctrl-C.</summary>
[Collection(KernelThreadsCollection.Name)]
public sealed class RecipeBenchmarkTests
{
    private static readonly ModelConfig Tiny = ModelConfig.Gpt2Small with { NLayers = 2, VocabSize = 64, DModel = 32, NHeads = 2, NKvHeads = 2, DHead = 16, DMlp = 64, MaxPositions = 32 };

    [Fact]
    public void RatiosMatchTheirTimesAndTheRecipeForwardsAreIntervened()
    {
        using var model = ModelBenchmarks.RandomModel(Tiny);
        var costs = InterventionBenchmarks.Recipes(model, tokens: 16, rounds: 3);

        Assert.Equal(InterventionBenchmarks.StandardRecipes(Tiny).Select(r => r.Name), costs.Select(c => c.Recipe));
        Assert.Equal(["empty", "soften 1.0 s=0.5", "scale 1.0 ×2", "redistribute_sink 1.0 f=0.5"], costs.Select(c => c.Recipe));
        foreach (var c in costs)
        {
            Assert.True(c.PlainMs > 0 && c.RecipeMs > 0 && c.Ratio > 0, c.Recipe);
            Assert.Equal(c.RecipeMs / c.PlainMs, c.Ratio, 1e-12);
            Assert.Equal(costs[0].PlainMs, c.PlainMs); // one plain baseline, timed in the same rounds as every recipe
        }
        // the empty recipe runs the plain path: the same logits to the bit; every other recipe changes them
        Assert.Equal(costs[0].PlainChecksum, costs[0].RecipeChecksum);
        foreach (var c in costs.Skip(1))
        {
            Assert.NotEqual(c.PlainChecksum, c.RecipeChecksum);
        }
    }

    [Fact]
    public void StopsOnACancelledToken()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        using var model = ModelBenchmarks.RandomModel(Tiny);
        Assert.ThrowsAny<OperationCanceledException>(() => InterventionBenchmarks.Recipes(model, tokens: 8, rounds: 1, cancel: cancelled.Token));
    }

    [Fact]
    public void SearchCostIsTheSearchOverOneForward()
    {
        using var model = ModelBenchmarks.RandomModel(Tiny);
        var c = InterventionBenchmarks.Search(model, tokens: 16, budget: 3);
        Assert.Equal(4, c.Heads);
        Assert.Equal(3, c.Budget);
        Assert.Equal(c.SearchSeconds / c.ForwardSeconds, c.Ratio, 1e-12);
        Assert.Equal(3 + 4 + 3 + 2, c.Forwards); // a cached run per round, then every remaining head
        Assert.True(c.ForwardEquivalents < c.Forwards);
    }
}
