using Headwise.Analysis.Interventions;
using Headwise.Analysis.Tasks;

namespace Headwise.Tests.Unit.Analysis;

/// <summary>When a 0–1 patching score is trusted: known by construction for each rule.</summary>
public class PatchingTrustTests
{
    private static readonly PatchMetricScale Logits = PatchMetricScale.LogitDifference;
    private static readonly PatchMetricScale Loss = PatchMetricScale.For(TaskMetric.SecondHalfLoss, vocab: 1000); // chance ln 1000 = 6.908

    [Theory]
    [InlineData(5.3, -0.7, null)]                                        // a clear margin, clean prefers the answer
    [InlineData(1.0, 0.0, null)]                                         // exactly the margin
    [InlineData(0.5, 0.2, "beats the corrupted one by only 0.300 logits")]
    [InlineData(0.038, 1.017, "the clean run is worse than the corrupted one")]
    [InlineData(-1.0, -3.0, "is no better than chance")]                 // a 2-logit gap, but clean still prefers the wrong answer
    public void LogitDifference(double clean, double corrupted, string? why)
    {
        var (gap, warning) = ActivationPatching.Trust(Logits, clean, corrupted);
        Assert.Equal(clean - corrupted, gap, 12);
        if (why is null)
        {
            Assert.Null(warning);
        }
        else
        {
            Assert.Contains(why, warning);
            Assert.Contains("raw metric differences", warning);
        }
    }

    [Theory]
    [InlineData(2.0, 5.0, null)]                                         // lower is better: clean copies, corrupted does not
    [InlineData(12.721, 12.965, "only 0.244 nats")]                      // the demo model's induction patching before this rule
    [InlineData(17.154, 16.692, "the clean run is worse than the corrupted one")]
    [InlineData(7.5, 9.5, "no better than chance (6.908)")]
    public void LossIsBetterLower(double clean, double corrupted, string? why)
    {
        var (gap, warning) = ActivationPatching.Trust(Loss, clean, corrupted);
        Assert.Equal(corrupted - clean, gap, 12);
        if (why is null)
        {
            Assert.Null(warning);
        }
        else
        {
            Assert.Contains(why, warning);
        }
    }

    [Fact]
    public void BothReasonsAreNamedWhenBothHold()
    {
        var (_, warning) = ActivationPatching.Trust(Loss, 12.721, 12.965);
        Assert.Contains("only 0.244 nats", warning);
        Assert.Contains("no better than chance", warning);
    }
}
