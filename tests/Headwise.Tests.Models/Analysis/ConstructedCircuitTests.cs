using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Statistics;

namespace Headwise.Tests.Models.Analysis;

/// <summary>Weight and attention analyses on models whose heads are known by construction (<see cref="ToyModels"/>).</summary>
public class ConstructedCircuitTests
{
    [Fact]
    public void InductionCircuitKCompositionIsTheLargestScore()
    {
        using var model = ToyModels.InductionCircuit();
        var r = CircuitAnalysis.Compute(model, new CircuitOptions(SingularValues: false, CopyingScores: false));
        var prev = ToyModels.InductionPreviousTokenHeadId;
        var induction = ToyModels.InductionHeadId;
        var top = r.K!.Top(1)[0];
        Assert.Equal((prev, induction), (top.From, top.To));
        // the score of two perfectly aligned rank-r maps with equal singular values is √r / r: here the previous-token head's
        // OV maps the 127-dim centred TOK subspace onto PREV, and the induction head's keys read exactly PREV: ≈ 1/√127 = 0.089
        Assert.InRange(top.Score, 0.08, 0.09);
        // it is also larger than every Q- and V-composition score: the previous-token head's output feeds keys only
        Assert.True(r.Q!.Top(1)[0].Score < 0.1 * top.Score);
        Assert.True(r.V!.Top(1)[0].Score < 0.1 * top.Score);
        // and the second-best K-composition is far below it
        Assert.True(r.K.Top(2)[1].Score < 0.1 * top.Score);
    }

    [Fact]
    public void InductionHeadCopies()
    {
        using var model = ToyModels.InductionCircuit();
        var r = CircuitAnalysis.Compute(model, new CircuitOptions([ToyModels.InductionHeadId], SingularValues: false, Composition: false));
        // OV copies TOK → OUT and the unembedding reads OUT as the same token: W_E W_OV W_U is a positive multiple of the identity
        Assert.True(r.Heads[0].CopyingScore > 0.99, $"copying score {r.Heads[0].CopyingScore}");
    }

    [Fact]
    public void AHeadWhoseOvCircuitIsNearlyZeroStillGetsACopyingScore()
    {
        // the previous-token head writes PREV, which the unembedding never reads: W_E W_OV W_U ≈ 0 (entries ~1e-30), on
        // which the eigen-solver used to stall; normalising the scale first gives every head a finite score
        using var model = ToyModels.InductionCircuit();
        var r = CircuitAnalysis.Compute(model, new CircuitOptions([ToyModels.InductionPreviousTokenHeadId, ToyModels.InductionHeadId],
            SingularValues: false, Composition: false));
        Assert.All(r.Heads, h => Assert.InRange(h.CopyingScore, -1 - 1e-9, 1 + 1e-9));
    }

    [Fact]
    public void SinkHeadMakesPositionZeroThePrimarySink()
    {
        using var model = ToyModels.SinkHead();
        int[] tokens = Enumerable.Range(0, 24).Select(i => (i * 37 + 5) % ToyModels.VocabSize).ToArray();
        var cache = PatternCache.Run(model, tokens);
        var r = AttentionSinks.Compute(model, tokens, cache);
        var sink = Assert.Single(r.Sinks);
        Assert.Equal(0, sink.Position);
        Assert.True(sink.Primary);
        Assert.Equal([0], sink.Layers);
        // one head of four puts (almost) all its attention on position 0: at least a quarter of every query's attention
        Assert.InRange(sink.MeanReceived, 0.25, 0.5);
        // the toy's residual vectors have the same norm at every position by construction
        Assert.Equal(r.Layers[0].MedianResidNorm, r.Layers[0].Sinks[0].ResidNorm, 3);
    }

    [Fact]
    public void PreviousTokenHeadPatternHasFullEffectiveRank()
    {
        using var model = ToyModels.PreviousTokenHead();
        int[] tokens = Enumerable.Range(0, 12).Select(i => (i * 11 + 3) % ToyModels.VocabSize).ToArray();
        var r = AttentionStatistics.Compute(model, tokens, PatternCache.Run(model, tokens));
        // a previous-token pattern is a shift matrix with [0,0]=1: rank T−1 with equal singular values → effective rank ≈ T − 1
        Assert.InRange(r.EffectiveRank[ToyModels.PreviousTokenHeadId], tokens.Length - 1 - 0.1, tokens.Length - 1 + 0.1);
        // the self head is the identity: effective rank T
        Assert.InRange(r.EffectiveRank[new HeadId(0, 2)], tokens.Length - 0.1, tokens.Length + 0.1);
        // the two uniform heads (0.0 and 0.3) attend identically, and are clustered together
        Assert.Equal(1, r.HeadSimilarity[0][3], 6);
        Assert.Contains(r.Clusters, c => c.Contains(new HeadId(0, 0)) && c.Contains(new HeadId(0, 3)));
    }
}
