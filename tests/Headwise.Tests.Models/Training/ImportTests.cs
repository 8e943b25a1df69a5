using Headwise.Models;
using Headwise.Training;

namespace Headwise.Tests.Models.Training;

// Import (the inverse of export): a checkpoint the engine loads becomes a trainable model whose forward gives the engine's
// logits, and exporting it again gives back the same tensors bit for bit; what the trainer cannot represent is refused.
public class ImportTests
{
    public static TheoryData<string> Importable => ["gpt2_tied", "gpt2_untied", "gpt2_bf16", "llama_mha", "llama_gqa", "llama_f16", "llama_sharded", "stories260K"];

    private static LoadedModel Load(string name)
    {
        if (name != "stories260K") return ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));
        string dir = TestPaths.RequireStories260K();
        return ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
    }

    [Theory]
    [MemberData(nameof(Importable))]
    public void TrainerForwardEqualsTheEngineAndExportRoundTripsBitExactly(string name)
    {
        using var loaded = Load(name);
        var canonical = loaded.Model.ToCanonical();
        var model = TrainableTransformer.FromCanonical(canonical);
        Assert.Equal(loaded.Config.NKvHeads, model.Config.KvHeads);

        // two sequences in one batch, as healing runs them
        int V = loaded.Config.VocabSize, B = 2, T = 12;
        int[] tokens = Enumerable.Range(0, B * T).Select(i => (i * 37 + 5) % V).ToArray();
        model.Forward(tokens, default, B, T);
        var mine = model.Logits.ToArray();
        var theirs = loaded.Model.Forward(new ModelInput(tokens, B, T));
        float maxAbs = theirs.Max(Math.Abs);
        Assert.True(maxAbs > 0.05f, $"{name}: logits too small for the comparison to mean anything ({maxAbs})");
        for (int i = 0; i < mine.Length; i++)
        {
            Assert.True(Math.Abs(mine[i] - theirs[i]) <= 1e-4f, $"{name}: logit {i}: trainer {mine[i]} vs engine {theirs[i]}");
        }

        // the tensors a checkpoint holds (llama2.c's interleaved RoPE is written rotate-half, as SaveHf writes it)
        var expected = canonical.WithRotateHalfRope().ToCheckpointTensors();
        var actual = model.ToHfTensors();
        Assert.Equal(expected.Select(t => t.Name), actual.Select(t => t.Name));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Shape, actual[i].Shape);
            Assert.True(expected[i].Data.Span.SequenceEqual(actual[i].Data.Span), $"{name}: {expected[i].Name} differs after import → export");
        }
    }

    [Theory]
    [InlineData("neox_parallel", "the trainer builds GPT-2 and Llama models; a gpt_neox model (GptNeoX family) does not fit")]
    [InlineData("qwen2", "the trainer's Llama has no biases; this qwen2 model has q/k/v biases")]
    [InlineData("mistral", "sliding window of 4")]
    [InlineData("deepseek_v3_qlora", "DeepseekV3 family")]
    [InlineData("vit_model", "Vit family")]
    public void WhatTheTrainerCannotRepresentIsRefusedNamingIt(string golden, string message)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        string? why = TrainableTransformer.ImportBlocker(loaded.Config);
        Assert.NotNull(why);
        Assert.Contains(message, why, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', why);
        if (loaded.Config.Mla is null && loaded.Config.Vision is null)
        {
            var e = Assert.Throws<InvalidInputException>(() => TrainableTransformer.FromCanonical(loaded.Model.ToCanonical()));
            Assert.StartsWith("cannot import into the trainer: ", e.Message, StringComparison.Ordinal);
        }
    }
}
