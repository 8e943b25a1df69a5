using Headwise.Analysis;
using Headwise.Models;
using Headwise.Restructure;
using Headwise.Training;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// Healing by distillation on stories260K: a mean-pooled GQA conversion (far from its teacher) gets closer to it on held-out
/// text; a conversion that loses nothing starts at KL ≈ 0; pruned heads stay exactly zero while the rest trains; bad input
/// is refused.
/// </summary>
public sealed class HealingTests
{
    // trained on the built-in calibration text, held out: the story the docs use
    internal static (LoadedModel Teacher, int[] Train, int[] HeldOut) Stories()
    {
        string dir = TestPaths.RequireStories260K();
        var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var tok = loaded.RequireTokenizer();
        string story = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "examples", "texts", "story.txt"));
        return (loaded, tok.Encode(CalibrationText.Default), tok.Encode(story));
    }

    [Fact]
    public void HealingAMeanPooledGqaConversionLowersTheHeldOutKl()
    {
        var (teacher, train, heldOut) = Stories();
        using var _ = teacher;
        var converted = GqaConversion.Convert(teacher.Model, 2, GqaMethod.Mean, train).Weights;
        using var before = TransformerModel.Create(converted);
        var start = Healing.Score(before, teacher.Model, heldOut);
        Assert.True(start.Kl > 0.5, $"a mean-pooled G = 2 conversion is known to start far from its teacher (KL {start.Kl})");

        var student = TrainableTransformer.FromCanonical(converted);
        var kls = Healing.Heal(student, teacher.Model, train, new HealingOptions { Steps = 25, SeqLen = 64, BatchSize = 4, LearningRate = 1e-3f });
        Assert.Equal(2, student.Config.KvHeads); // GQA stays GQA
        using var after = TransformerModel.Create(student.ToCanonical());
        var end = Healing.Score(after, teacher.Model, heldOut);
        Assert.True(end.Kl < 0.8 * start.Kl, $"held-out KL {start.Kl:F4} → {end.Kl:F4}");
        Assert.True(end.Nll < start.Nll, $"held-out NLL {start.Nll:F4} → {end.Nll:F4}");
        Assert.True(kls[^5..].Average() < kls[..5].Average(), "the batch KL falls during training");
    }

    [Fact]
    public void AConversionThatLosesNothingStartsAtKlZero()
    {
        var (teacher, train, heldOut) = Stories();
        using var _ = teacher;
        var converted = GqaConversion.Convert(teacher.Model, teacher.Config.NKvHeads, GqaMethod.Mean, train).Weights;
        using var model = TransformerModel.Create(converted);
        Assert.True(Healing.Score(model, teacher.Model, heldOut).Kl <= 1e-6);
        var kls = Healing.Heal(TrainableTransformer.FromCanonical(converted), teacher.Model, train, new HealingOptions { Steps = 1 });
        Assert.True(kls[0] <= 1e-6, $"first batch KL {kls[0]}");
    }

    [Fact]
    public void PrunedHeadsStayZeroWhileTheRestTrains()
    {
        var (teacher, train, _) = Stories();
        using var __ = teacher;
        var pruned = HeadPruning.Zeroed(teacher.Model, [new(1, 0), new(2, 3), new(4, 7)]);
        var student = TrainableTransformer.FromCanonical(pruned);
        Assert.Equal([(1, 0), (2, 3), (4, 7)], Healing.ZeroedHeads(student));
        var w = student.Params.ToArray();
        Healing.Heal(student, teacher.Model, train, new HealingOptions { Steps = 5, LearningRate = 1e-2f });
        Assert.Equal([(1, 0), (2, 3), (4, 7)], Healing.ZeroedHeads(student));
        // every other head's W_O moved
        var c = student.Config;
        var wo = student.Info("blocks.2.attn.w_o");
        int C = c.DModel, NH = c.NHeads, HD = c.HeadSize;
        for (int h = 0; h < NH; h++)
        {
            bool moved = Enumerable.Range(0, C).Any(r => Enumerable.Range(0, HD).Any(d =>
            {
                int i = wo.Offset + r * NH * HD + h * HD + d;
                return student.Params[i] != w[i];
            }));
            Assert.Equal(h != 3, moved);
        }
    }

    [Fact]
    public void BadInputIsRefused()
    {
        var (teacher, train, _) = Stories();
        using var _ = teacher;
        var student = TrainableTransformer.FromCanonical(teacher.Model.ToCanonical());
        Assert.Contains("steps", Assert.Throws<InvalidInputException>(() => Healing.Heal(student, teacher.Model, train, new HealingOptions { Steps = 0 })).Message, StringComparison.Ordinal);
        using var gpt2 = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        Assert.Contains("vocabulary", Assert.Throws<InvalidInputException>(() => Healing.Heal(student, gpt2.Model, train, new HealingOptions { Steps = 1 })).Message, StringComparison.Ordinal);
        Assert.Contains("sequence length", Assert.Throws<InvalidInputException>(() => Healing.Heal(student, teacher.Model, train, new HealingOptions { Steps = 1, SeqLen = 100_000 })).Message, StringComparison.Ordinal);
    }
}
