using Headwise.Analysis.Interventions;

namespace Headwise.Tests.Unit.Analysis;

public class InterventionTargetTests
{
    [Theory]
    [InlineData(201, 128, 64)]
    [InlineData(300, 100, 99)]
    [InlineData(129, 128, 1)]
    [InlineData(50, 8, 3)]
    public void LongTextWindowsScoreEveryTargetOnceAndWeighByTheirShare(int n, int window, int stride)
    {
        var tokens = Enumerable.Range(0, n).ToArray();
        var t = InterventionTarget.FromLongTokens(tokens, window, stride);
        var scored = new int[n];
        double weights = 0;
        int begin = 0;
        for (int i = 0; i < t.Items.Count; i++, begin += stride)
        {
            var item = t.Items[i];
            Assert.True(item.Length <= window);
            Assert.Equal(tokens[begin..(begin + item.Length)], item);
            Assert.Equal(item.Length, t.Sources[i].Length);
            for (int target = t.ScoredFrom(i); target < item.Length; target++)
            {
                scored[begin + target]++;
            }
            Assert.Equal((double)(item.Length - t.ScoredFrom(i)) / (n - 1), t.Weight(i), 12);
            weights += t.Weight(i);
        }
        Assert.Equal(0, scored[0]);                        // the first token is never a target
        Assert.All(scored[1..], c => Assert.Equal(1, c));  // every other token exactly once
        Assert.Equal(1, weights, 12);
    }

    [Fact]
    public void AStrideEqualToTheWindowIsRefusedWhenItWouldLeaveTargetsUnscored()
    {
        var e = Assert.Throws<InvalidInputException>(() => InterventionTarget.FromLongTokens(Enumerable.Range(0, 300).ToArray(), 100, 100));
        Assert.Contains("first token of every later window would go unscored", e.Message);
    }

    [Fact]
    public void ATextThatFitsIsOneWholeItem()
    {
        var t = InterventionTarget.FromLongTokens([1, 2, 3, 4], window: 4, stride: 2);
        Assert.Single(t.Items);
        Assert.Equal(1, t.ScoredFrom(0));
        Assert.Equal(1, t.Weight(0));
    }
}
