using Headwise.Analysis;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Detectors;
using Headwise.Loading;

namespace Headwise.Tests.Models.Analysis;

public class HeadDetectorTests
{
    // Small settings keep the toy runs fast; the induction test draws from 96 ids, so few tokens repeat within a half.
    private static readonly HeadDetectorOptions Small = new(SeqLen: 20, Batch: 3, Seed: 1);

    [Fact]
    public void PreviousTokenDetectorRanksTheConstructedHeadFirst()
    {
        using var model = ToyModels.PreviousTokenHead();
        var r = HeadDetectors.Run(model, options: Small);
        Assert.Equal(ToyModels.PreviousTokenHeadId, r.PrevToken.Ranked()[0].Head);
        Assert.True(r.PrevToken[ToyModels.PreviousTokenHeadId] > 0.99f);
        // the self head attends at distance 0 and has (almost) zero entropy; the uniform head has the largest entropy
        Assert.True(r.Distance[new HeadId(0, 2)] < 0.01f);
        Assert.Equal(new HeadId(0, 0), r.Entropy.Ranked()[0].Head);
        Assert.False(r.Bos); // the toy models have no BOS
    }

    [Fact]
    public void InductionDetectorRanksTheConstructedHeadFirst()
    {
        using var model = ToyModels.InductionCircuit();
        var r = HeadDetectors.Run(model, options: Small);
        Assert.Equal(ToyModels.InductionHeadId, r.Induction.Ranked()[0].Head);
        Assert.True(r.Induction[ToyModels.InductionHeadId] > 0.8f, $"{r.Induction[ToyModels.InductionHeadId]}");
        Assert.Equal(ToyModels.InductionPreviousTokenHeadId, r.PrevToken.Ranked()[0].Head);
        Assert.True(r.Induction[ToyModels.InductionPreviousTokenHeadId] < 0.05f);
    }

    [Fact]
    public void SinkDetectorRanksTheConstructedHeadFirst()
    {
        using var model = ToyModels.SinkHead();
        var r = HeadDetectors.Run(model, [40, 41, 42, 43, 44, 45, 46, 47, 48, 49], Small);
        Assert.Equal(ToyModels.SinkHeadId, r.Sink.Ranked()[0].Head);
        Assert.True(r.Sink[ToyModels.SinkHeadId] > 0.99f);
        // with --tokens, the pattern scores are on exactly those ids: the previous-token head 0.3 scores 1 there too
        Assert.True(r.PrevToken[new HeadId(0, 3)] > 0.99f);
    }

    [Fact]
    public void ScoresOfAHandMadePattern()
    {
        // T = 3:   q0: [1, 0, 0]   q1: [0.25, 0.75, 0]   q2: [0.5, 0.25, 0.25]
        float[] p = [1, 0, 0, 0.25f, 0.75f, 0, 0.5f, 0.25f, 0.25f];
        Assert.Equal((0.25 + 0.25) / 2, HeadDetectors.PrevTokenScore(p, 3), 6);
        Assert.Equal((0.25 + 0.5) / 2, HeadDetectors.SinkScore(p, 3), 6);
        double h1 = -(0.25 * Math.Log(0.25) + 0.75 * Math.Log(0.75));
        double h2 = -(0.5 * Math.Log(0.5) + 2 * 0.25 * Math.Log(0.25));
        Assert.Equal((h1 + h2) / 2, HeadDetectors.MeanEntropy(p, 3), 6);
        // distances: q1: 0.25·1 = 0.25; q2: 0.5·2 + 0.25·1 = 1.25
        Assert.Equal((0.25 + 1.25) / 2, HeadDetectors.MeanDistance(p, 3), 6);
    }

    [Fact]
    public void InductionAndDuplicateIndexArithmeticWithBos()
    {
        // BOS + 2 × n with n = 2: positions 0 (BOS), 1 2 (first half), 3 4 (second half); T = 5
        int T = 5, n = 2;
        var p = new float[T * T];
        p[3 * T + 2] = 0.5f; // induction target of q3: 3 − 2 + 1 = 2
        p[3 * T + 1] = 0.5f; // duplicate target of q3: 1
        p[4 * T + 3] = 1f;   // induction target of q4: 3
        Assert.Equal((0.5 + 1) / 2, HeadDetectors.InductionScore(p, T, offset: 1, n), 6);
        Assert.Equal((0.5 + 0) / 2, HeadDetectors.DuplicateScore(p, T, offset: 1, n), 6);
    }

    [Fact]
    public void RepeatedSequencesAvoidSpecialIdsAndRepeat()
    {
        var cfg = ModelConfig.Gpt2Small with { VocabSize = 100, BosTokenId = 0, EosTokenId = 30 };
        var seqs = HeadDetectors.RepeatedSequences(cfg, new HeadDetectorOptions(SeqLen: 30, Batch: 4, Seed: 7), bos: true);
        Assert.Equal(4, seqs.Length);
        foreach (var s in seqs)
        {
            Assert.Equal(61, s.Length);
            Assert.Equal(0, s[0]);
            for (int i = 1; i <= 30; i++)
            {
                Assert.Equal(s[i], s[i + 30]);
                Assert.InRange(s[i], 25, 99); // [min(100, V/4), V)
                Assert.NotEqual(30, s[i]);    // EOS skipped
            }
        }
        Assert.Equal(seqs[0], HeadDetectors.RepeatedSequences(cfg, new HeadDetectorOptions(SeqLen: 30, Batch: 4, Seed: 7), bos: true)[0]);
    }

    [Fact]
    public void TooLongSequencesAreRejected()
    {
        using var model = ToyModels.PreviousTokenHead();
        var e = Assert.Throws<InvalidInputException>(() => HeadDetectors.Run(model, options: new HeadDetectorOptions(SeqLen: 100)));
        Assert.Contains("seq-len", e.Message);
    }
}
