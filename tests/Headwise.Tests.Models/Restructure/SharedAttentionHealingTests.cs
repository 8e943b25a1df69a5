using Headwise.Models;
using Headwise.Restructure;
using Headwise.Training;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// Healing a shared-attention model [EchoAtt] (convert share-attention): the trainer imports it with the engine's logits (the
/// shared layers reuse their group's first pattern), exports it back unchanged, and distillation over its trainable
/// parameters — the shared layers' values and W_O, and the source layer's q/k, which now serve two layers — lowers the KL to
/// the teacher on its text; the shared layers stay without q/k.
/// </summary>
public sealed class SharedAttentionHealingTests
{
    private static float MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            m = Math.Max(m, Math.Abs(a[i] - b[i]));
        }
        return m;
    }

    [Fact]
    public void TheTrainerImportsASharedModelWithTheEnginesLogitsAndExportsItBack()
    {
        var (teacher, train, _) = HealingTests.Stories();
        using var _ = teacher;
        var shared = AttentionSharing.Apply(teacher.Model, AttentionSharing.ParseGroups("2-4", 5));
        using var engine = TransformerModel.Create(shared);
        var ids = train[..64];
        var expected = engine.Forward(ModelInput.Single(ids));

        var student = TrainableTransformer.FromCanonical(shared);
        Assert.Equal([[2, 3, 4]], student.Config.SharedGroups!);
        student.Forward(ids, ids, 1, ids.Length);
        Assert.True(MaxDiff(expected, student.Logits) <= 1e-4f, $"max |Δlogit| {MaxDiff(expected, student.Logits)}");

        var back = student.ToCanonical();
        Assert.Equal([[2, 3, 4]], back.Config.SharedAttention!.Groups);
        using var exported = TransformerModel.Create(back);
        float exportedDiff = MaxDiff(expected, exported.Forward(ModelInput.Single(ids)));
        // not bitwise: 1.9e-5 was seen (the round trip through the trainer's layout is not traced to the bit); the
        // project's logit bar is 1e-4
        Assert.True(exportedDiff <= 1e-4f, $"exported: max |Δlogit| {exportedDiff}");
    }

    [Fact]
    public void HealingASharedModelLowersTheKlOnTheTeachersText()
    {
        var (teacher, train, heldOut) = HealingTests.Stories();
        using var _ = teacher;
        var shared = AttentionSharing.Apply(teacher.Model, AttentionSharing.ParseGroups("3-4", 5));
        using var before = TransformerModel.Create(shared);
        var startTrain = Healing.Score(before, teacher.Model, train);
        var startHeldOut = Healing.Score(before, teacher.Model, heldOut);
        Assert.True(startTrain.Kl > 0.01, $"sharing layer 3's pattern with layer 4 costs something (KL {startTrain.Kl})");

        var student = TrainableTransformer.FromCanonical(shared);
        var qkv = student.Info("blocks.4.attn.w_qkv");
        var sourceQkv = student.Param("blocks.3.attn.w_qkv").ToArray();
        var kls = Healing.Heal(student, teacher.Model, train, new HealingOptions { Steps = 25, SeqLen = 64, BatchSize = 4, LearningRate = 3e-4f });

        // the shared layer's unused q/k rows got no gradient and stay zero; the source layer's q/k (read by both) moved
        int C = student.Config.DModel, qkRows = (student.Config.NHeads + student.Config.KvHeads) * student.Config.HeadSize;
        Assert.All(student.Params.AsSpan(qkv.Offset, qkRows * C).ToArray(), w => Assert.Equal(0f, w));
        Assert.NotEqual(sourceQkv[..(qkRows * C)], student.Param("blocks.3.attn.w_qkv")[..(qkRows * C)].ToArray());

        using var after = TransformerModel.Create(student.ToCanonical());
        Assert.Equal([[3, 4]], after.Config.SharedAttention!.Groups);
        var endTrain = Healing.Score(after, teacher.Model, train);
        var endHeldOut = Healing.Score(after, teacher.Model, heldOut);
        Assert.True(endTrain.Kl < 0.8 * startTrain.Kl, $"KL on the teacher's text {startTrain.Kl:F4} → {endTrain.Kl:F4}");
        Assert.True(endHeldOut.Kl < startHeldOut.Kl, $"held-out KL {startHeldOut.Kl:F4} → {endHeldOut.Kl:F4}");
        Assert.True(kls[^5..].Average() < kls[..5].Average(), "the batch KL falls during training");
    }
}
