using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Restructure;
using Headwise.Training;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// Pruning that removes heads (per-layer head counts, Headwise's format) against pruning that zeroes them (W_O = 0, the
/// Hugging Face form): known by construction to compute the same, on every family's golden and stories260K, in prefill and
/// in decode with the KV cache; the parameters and the cache shrink by exactly the removed heads' rows; pruning nothing is
/// lossless; the format saves and loads back; hooks have the layer's own heads; analyses that index heads alike refuse;
/// the trainer (heal) runs the pruned model in its source's shape and writes it pruned again; bad input is refused.
/// </summary>
public sealed class HeadPruningTests
{
    public static TheoryData<string> Goldens => RestructureGoldens.Families();

    private static readonly int[] Tokens = RestructureGoldens.Tokens;

    private static float MaxDiff(float[] a, float[] b) => RestructureGoldens.MaxDiff(a, b);

    private static LoadedModel Golden(string name) => RestructureGoldens.Load(name);

    // heads 0, 1 and the last of layer 0 (with grouped-query attention: a whole group, and one head of a group that stays),
    // and every head of the last layer (which keeps one zeroed group)
    private static HeadId[] Chosen(ModelConfig c) =>
        [.. new[] { 0, 1, c.NHeads - 1 }.Distinct().Select(h => new HeadId(0, h)), .. Enumerable.Range(0, c.NHeads).Select(h => new HeadId(c.NLayers - 1, h))];

    // decode one token at a time after a 3-token prefill: the logits of every position, (T, V)
    private static float[] Decode(TransformerModel model, int[] tokens)
    {
        int T = tokens.Length, V = model.Config.VocabSize;
        model.ResetCache(1, T);
        var steps = new float[T * V];
        model.ForwardChunk(tokens[..3], null, 3).CopyTo(steps, 0);
        for (int t = 3; t < T; t++)
        {
            model.ForwardChunk([tokens[t]], null, 1).CopyTo(steps, t * V);
        }
        return steps;
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void RemovedHeadsComputeWhatZeroedHeadsDoWithFewerParametersAndCache(string golden)
    {
        using var loaded = Golden(golden);
        var c = loaded.Config;
        var heads = Chosen(c);
        using var zeroed = TransformerModel.Create(HeadPruning.Zeroed(loaded.Model, heads));
        var r = HeadPruning.Removed(loaded.Model, heads);
        using var removed = TransformerModel.Create(r.Weights);
        var lh = removed.Config.LayerHeads!;

        // the format's rule: whole groups; a layer pruned entirely keeps its first group, zeroed
        int G = c.KvGroupSize;
        Assert.Equal(G, lh.QueryHeads[^1]);
        Assert.Equal(1, lh.KvHeads[^1]);
        Assert.Equal(G == 1 ? c.NHeads - 3 : c.NHeads - G, lh.QueryHeads[0]); // 4 heads: 0, 1, 3 pruned; with pairs, {0, 1} goes
        // kept zeroed: the last layer's first group, and with pairs head 0.3, whose kv head still serves 0.2
        var keptZeroed = Enumerable.Range(0, G).Select(h => new HeadId(c.NLayers - 1, h)).ToList();
        if (G > 1)
        {
            keptZeroed.Insert(0, new HeadId(0, 3));
        }
        Assert.Equal(keptZeroed, r.KeptZeroed);

        // decode with the KV cache (first, so the cache is sized for it alone), and prefill of a left-padded batch
        var steps = Decode(removed, Tokens[..8]);
        long allocated = removed.KvCacheAllocatedBytes;
        var prefill = zeroed.Forward(ModelInput.Single(Tokens[..8]));
        Assert.True(MaxDiff(prefill, steps) <= 1e-4f, $"{golden}: decode max |Δlogit| {MaxDiff(prefill, steps)}");
        var input = new ModelInput([.. Tokens[..6], .. Tokens[6..]], 2, 6, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        var expected = zeroed.Forward(input);
        var got = removed.Forward(input);
        Assert.True(MaxDiff(expected, got) <= 1e-4f, $"{golden}: prefill max |Δlogit| {MaxDiff(expected, got)}");

        // the parameters and the cache fall by the removed heads' rows: W_Q, W_O (and b_Q) per query head, W_K, W_V (and
        // their biases) per kv head
        long C = c.DModel, HD = c.DHead, fewerParameters = 0, cacheFloats = 0;
        for (int l = 0; l < c.NLayers; l++)
        {
            long q = c.NHeads - lh.QueryHeads[l], kv = c.NKvHeads - lh.KvHeads[l];
            fewerParameters += 2 * C * HD * q + 2 * C * HD * kv + (c.QkvBias ? HD * (q + 2 * kv) : 0);
            cacheFloats += 2 * HD * lh.KvHeads[l];
        }
        Assert.Equal(c.ParameterCount - fewerParameters, removed.Config.ParameterCount);
        Assert.Equal(cacheFloats * sizeof(float), removed.KvCacheBytesPerToken);
        Assert.True(removed.KvCacheBytesPerToken < loaded.Model.KvCacheBytesPerToken);
        Assert.Equal(removed.KvCacheBytesPerToken * 8, allocated);

        // saved and loaded back: the same logits, the parameters are the tensors written
        string dir = Path.Combine(Path.GetTempPath(), "hw-prune-" + Guid.NewGuid().ToString("N"));
        try
        {
            r.Weights.SaveHf(dir);
            using var back = ModelLoader.Load(dir);
            Assert.Equal(lh.QueryHeads, back.Config.LayerHeads!.QueryHeads);
            Assert.Equal(lh.Kept, back.Config.LayerHeads!.Kept);
            Assert.True(MaxDiff(got, back.Model.Forward(input)) <= 1e-5f);
            using var file = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"));
            Assert.Equal(removed.Config.ParameterCount, file.Tensors.Values.Sum(t => t.ElementCount));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void PruningNothingIsLossless(string golden)
    {
        using var loaded = Golden(golden);
        using var same = TransformerModel.Create(HeadPruning.Removed(loaded.Model, []).Weights);
        Assert.Equal(loaded.Config.ParameterCount, same.Config.ParameterCount);
        Assert.Equal(loaded.Model.KvCacheBytesPerToken, same.KvCacheBytesPerToken);
        double before = MlaConversion.Nll(loaded.Model, Tokens), after = MlaConversion.Nll(same, Tokens);
        Assert.True(Math.Abs(before - after) <= 1e-4, $"{golden}: NLL {before} → {after}");
    }

    [Fact]
    public void Stories260KRemovedEqualsZeroedInPrefillAndDecode()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        int[] ids = loaded.RequireTokenizer().Encode(CalibrationText.Default)[..48];
        using (var same = TransformerModel.Create(HeadPruning.Removed(loaded.Model, []).Weights))
        {
            Assert.True(Math.Abs(MlaConversion.Nll(same, ids) - MlaConversion.Nll(loaded.Model, ids)) <= 1e-4);
        }
        // 8 query heads, 4 kv heads: 0.0 and 0.1 are a whole group (removed with its kv head); 2.3 leaves its kv head, so it
        // stays zeroed; 4.6 and 4.7 are another whole group
        HeadId[] heads = [new(0, 0), new(0, 1), new(2, 3), new(4, 6), new(4, 7)];
        using var zeroed = TransformerModel.Create(HeadPruning.Zeroed(loaded.Model, heads));
        var r = HeadPruning.Removed(loaded.Model, heads);
        Assert.Equal([new HeadId(2, 3)], r.KeptZeroed);
        using var removed = TransformerModel.Create(r.Weights);
        Assert.Equal([6, 8, 8, 8, 6], removed.Config.LayerHeads!.QueryHeads);
        Assert.True(Math.Abs(MlaConversion.Nll(zeroed, ids) - MlaConversion.Nll(removed, ids)) <= 1e-4);
        var prefill = zeroed.Forward(ModelInput.Single(ids[..10]));
        var steps = Decode(removed, ids[..10]);
        Assert.True(MaxDiff(prefill, steps) <= 1e-4f, $"decode max |Δlogit| {MaxDiff(prefill, steps)}");
        Assert.Equal((5 * 4 - 2) * 2 * 8 * sizeof(float), removed.KvCacheBytesPerToken); // 18 kv heads × (k + v) × 8 dims
    }

    [Fact]
    public void HooksHaveTheLayersOwnHeadsAndUniformAnalysesRefuse()
    {
        using var loaded = Golden("llama_gqa");
        using var removed = TransformerModel.Create(HeadPruning.Removed(loaded.Model, [new(0, 0), new(0, 1)]).Weights);
        var (_, cache) = removed.RunWithCache(ModelInput.Single(Tokens[..6]));
        Assert.Equal([1, 6, 2, 8], cache["blocks.0.attn.hook_z"].Shape);
        Assert.Equal([1, 6, 1, 8], cache["blocks.0.attn.hook_k"].Shape);
        Assert.Equal([1, 2, 6, 6], cache["blocks.0.attn.hook_pattern"].Shape);
        Assert.Equal([1, 6, 4, 8], cache["blocks.1.attn.hook_z"].Shape);
        Assert.Equal(2, removed.GetAttentionWeights(0).NHeads);
        var e = Assert.Throws<InvalidInputException>(() => HeadDetectors.Run(removed));
        Assert.Contains("pruned per layer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheTrainerRunsThePrunedModelInItsSourcesShapeAndWritesItPrunedAgain()
    {
        using var loaded = Golden("llama_gqa");
        var pruned = HeadPruning.Removed(loaded.Model, [new(0, 0), new(0, 1), new(1, 3)]).Weights;
        using var model = TransformerModel.Create(pruned);
        var student = TrainableTransformer.FromCanonical(HeadPruning.Expanded(model.ToCanonical()));
        student.Forward(Tokens[..8], default, 1, 8);
        var expected = model.Forward(ModelInput.Single(Tokens[..8]));
        Assert.True(MaxDiff(expected, student.Logits.ToArray()) <= 1e-4f);
        var back = HeadPruning.Repruned(student.ToCanonical(), model.Config.LayerHeads!);
        using var again = TransformerModel.Create(back);
        Assert.Equal(model.Config.ParameterCount, again.Config.ParameterCount);
        Assert.True(MaxDiff(expected, again.Forward(ModelInput.Single(Tokens[..8]))) <= 1e-4f);
    }

    [Fact]
    public void BadHeadsAreRefusedInOneLine()
    {
        using var loaded = Golden("gpt2_tied");
        var c = loaded.Config;
        Assert.Contains("does not exist", Assert.Throws<InvalidInputException>(() => HeadPruning.Removed(loaded.Model, [new(0, c.NHeads)])).Message, StringComparison.Ordinal);
        Assert.Contains("named twice", Assert.Throws<InvalidInputException>(() => HeadPruning.Removed(loaded.Model, [new(0, 1), new(0, 1)])).Message, StringComparison.Ordinal);
        using var removed = TransformerModel.Create(HeadPruning.Removed(loaded.Model, [new(0, 1)]).Weights);
        Assert.Contains("pruned per layer", Assert.Throws<InvalidInputException>(() => HeadPruning.Removed(removed, [new(1, 0)])).Message, StringComparison.Ordinal);
    }
}
