using Headwise.Reports;

namespace Headwise.Tests.Models.Reports;

/// <summary>The six adapter scores on patterns built by hand, where each answer is known.</summary>
public sealed class RepeatedTokenScoresTests
{
    // [BOS] r1..r4 r1..r4: T = 9, n = 4, second half starts at q = 5
    private const int N = 4, T = 1 + 2 * N;

    private static float[] Pattern(Func<int, int> target)
    {
        var a = new float[T * T];
        for (int q = 0; q < T; q++)
        {
            a[q * T + target(q)] = 1f;
        }
        return a;
    }

    [Fact]
    public void PreviousTokenHead()
    {
        var s = RepeatedTokenScores.Score(Pattern(q => Math.Max(0, q - 1)), T, N, offset: 1);
        Assert.Equal(1.0, s[0], 1e-9);               // previous-token
        Assert.Equal(0.0, s[1], 1e-9);               // induction
        Assert.Equal(0.0, s[2], 1e-9);               // duplicate
        Assert.Equal(2.0 / T, s[3], 1e-9);           // sink: queries 0 and 1 look at position 0
        Assert.Equal(0.0, s[4], 1e-9);               // entropy: one-hot rows
        Assert.Equal((T - 1.0) / T, s[5], 1e-9);     // distance: 1 for every query but the first
    }

    [Fact]
    public void InductionAndDuplicateHeads()
    {
        var induction = RepeatedTokenScores.Score(Pattern(q => q >= 1 + N ? q - N + 1 : 0), T, N, offset: 1);
        Assert.Equal(1.0, induction[1], 1e-9);
        Assert.Equal(0.0, induction[2], 1e-9);
        Assert.Equal((1.0 + N) / T, induction[3], 1e-9); // the first half sinks on BOS
        var duplicate = RepeatedTokenScores.Score(Pattern(q => q >= 1 + N ? q - N : 0), T, N, offset: 1);
        Assert.Equal(0.0, duplicate[1], 1e-9);
        Assert.Equal(1.0, duplicate[2], 1e-9);
        // distance: q for the first-half queries sinking on BOS (1+2+3+4), N for each of the N second-half queries
        Assert.Equal((1 + 2 + 3 + 4 + N * N) / (double)T, duplicate[5], 1e-9);
    }

    [Fact]
    public void UniformHeadHasMaximalEntropy()
    {
        var a = new float[T * T];
        for (int q = 0; q < T; q++)
        {
            for (int k = 0; k <= q; k++)
            {
                a[q * T + k] = 1f / (q + 1);
            }
        }
        var s = RepeatedTokenScores.Score(a, T, N, offset: 1);
        double entropy = Enumerable.Range(1, T - 1).Average(q => Math.Log(q + 1));
        Assert.Equal(entropy, s[4], 1e-6);
        Assert.Equal(Enumerable.Range(0, T).Average(q => q / 2.0), s[5], 1e-6); // mean of 0..q is q/2
    }

    [Fact]
    public void RepeatedTokensRepeatAndAvoidBos()
    {
        var t = RepeatedTokenScores.Tokens(new Random(3), 50, 4, bos: 2);
        Assert.Equal(101, t.Length);
        Assert.Equal(2, t[0]);
        Assert.Equal(t[1..51], t[51..]);
        Assert.DoesNotContain(2, t[1..]);
    }
}
