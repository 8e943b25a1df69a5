using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Restructure;

namespace Headwise.Tests.Models.Restructure;

/// <summary>
/// Cross-layer attention sharing [EchoAtt]: groups of one layer are lossless on every family's golden and stories260K; a shared
/// model computes exactly what the original computes when hooks hand the first layer's pattern to the later layers (an
/// independent route: the hooked three-pass attention); it saves without the shared layers' q/k tensors and loads back the
/// same; its decode with the KV cache equals its prefill, and the cache it allocates is what kv_cache_bytes_per_token says;
/// bad groups are refused in one line each.
/// </summary>
public sealed class AttentionSharingTests
{
    public static TheoryData<string> Goldens => RestructureGoldens.Families();

    private static readonly int[] Tokens = RestructureGoldens.Tokens;

    private static float MaxDiff(float[] a, float[] b) => RestructureGoldens.MaxDiff(a, b);

    private static LoadedModel Golden(string name) => RestructureGoldens.Load(name);

    [Theory]
    [MemberData(nameof(Goldens))]
    public void GroupsOfOneLayerAreLossless(string golden)
    {
        using var loaded = Golden(golden);
        int L = loaded.Config.NLayers;
        var groups = Enumerable.Range(0, L).Select(l => new[] { l }).ToArray();
        var w = AttentionSharing.Apply(loaded.Model, groups);
        Assert.Null(w.Config.SharedAttention);
        using var shared = TransformerModel.Create(w);
        double before = MlaConversion.Nll(loaded.Model, Tokens), after = MlaConversion.Nll(shared, Tokens);
        Assert.True(Math.Abs(before - after) <= 1e-4, $"{golden}: NLL {before} → {after}");
    }

    [Fact]
    public void Stories260KGroupsOfOneLayerAreLosslessAndSharingCostsSomething()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        int[] ids = loaded.RequireTokenizer().Encode(CalibrationText.Default);
        double before = MlaConversion.Nll(loaded.Model, ids);
        using (var same = TransformerModel.Create(AttentionSharing.Apply(loaded.Model, AttentionSharing.ParseGroups("0,1,2,3,4", 5))))
        {
            Assert.True(Math.Abs(MlaConversion.Nll(same, ids) - before) <= 1e-4);
        }
        using var shared = TransformerModel.Create(AttentionSharing.Apply(loaded.Model, AttentionSharing.ParseGroups("3-4", 5)));
        double after = MlaConversion.Nll(shared, ids);
        Assert.True(double.IsFinite(after) && after != before, $"NLL {before} → {after}");
    }

    /// <summary>The reference: the original model, with a hook that keeps each group's first layer's pattern and hooks that
    /// write it over the later layers' patterns (the engine's hooked three-pass attention).</summary>
    private static float[] SharedByHooks(TransformerModel model, int[][] groups, ModelInput input)
    {
        var hooks = new HookSet(model.Config.NLayers);
        foreach (var g in groups)
        {
            float[] kept = [];
            hooks.Add(new HookPoint(g[0], HookKind.Pattern), a => kept = a.Data.ToArray());
            foreach (int l in g.Skip(1))
            {
                hooks.Add(new HookPoint(l, HookKind.Pattern), a => kept.CopyTo(a.Data));
            }
        }
        return model.Forward(input, hooks);
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void SharedModelEqualsHandingThePatternOnByHooksAndRoundTrips(string golden)
    {
        using var loaded = Golden(golden);
        int L = loaded.Config.NLayers;
        int[][] groups = [[.. Enumerable.Range(0, L)]];
        var input = new ModelInput([.. Tokens[..6], .. Tokens[6..]], 2, 6, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        var expected = SharedByHooks(loaded.Model, groups, input);
        var w = AttentionSharing.Apply(loaded.Model, groups);
        using var shared = TransformerModel.Create(w);
        var got = shared.Forward(input);
        Assert.True(MaxDiff(expected, got) <= 1e-4f, $"{golden}: max |Δlogit| {MaxDiff(expected, got)}");
        Assert.True(MaxDiff(loaded.Model.Forward(input), got) > 1e-4f, "sharing should change something");

        // parameters: each shared layer loses its q and k projections (and biases)
        var c = loaded.Config;
        long qk = (long)c.DModel * (c.NHeads + c.NKvHeads) * c.DHead + (c.QkvBias ? (c.NHeads + c.NKvHeads) * c.DHead : 0);
        Assert.Equal(c.ParameterCount - (L - 1) * qk, shared.Config.ParameterCount);

        string dir = Path.Combine(Path.GetTempPath(), "hw-share-" + Guid.NewGuid().ToString("N"));
        try
        {
            w.SaveHf(dir);
            using var back = ModelLoader.Load(dir);
            Assert.Equal(groups, back.Config.SharedAttention!.Groups);
            Assert.True(MaxDiff(got, back.Model.Forward(input)) <= 1e-5f);
            using var file = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"));
            Assert.Equal(shared.Config.ParameterCount, file.Tensors.Values.Sum(t => t.ElementCount));
            Assert.DoesNotContain(file.Tensors.Keys, n => n.Contains("layers.1.self_attn.q_proj", StringComparison.Ordinal)
                || n.Contains("layers.1.self_attn.k_proj", StringComparison.Ordinal));
            // the canonical view of a shared layer reads zero W_Q and W_K
            Assert.All(back.Model.GetAttentionWeights(1).WQ, x => Assert.Equal(0f, x));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("gpt2_untied")]
    [InlineData("neox_parallel")]
    public void DecodeEqualsPrefillAndTheCacheIsWhatItsSizeSays(string golden)
    {
        using var loaded = Golden(golden);
        var c = loaded.Config;
        int L = c.NLayers, T = 6, V = c.VocabSize;
        using var shared = TransformerModel.Create(AttentionSharing.Apply(loaded.Model, [[.. Enumerable.Range(0, L)]]));
        var prefill = shared.Forward(ModelInput.Single(Tokens[..T]));
        shared.ResetCache(1, T);
        var steps = new float[T * V];
        shared.ForwardChunk(Tokens[..3], null, 3).CopyTo(steps, 0);
        for (int t = 3; t < T; t++)
        {
            shared.ForwardChunk([Tokens[t]], null, 1).CopyTo(steps, t * V);
        }
        Assert.True(MaxDiff(prefill, steps) <= 1e-4f, $"max |Δlogit| {MaxDiff(prefill, steps)}");
        // every layer caches values, only layer 0 keys: (L + 1) · NKV · HD floats per token
        long perToken = (long)(L + 1) * c.NKvHeads * c.DHead * sizeof(float);
        Assert.Equal(perToken, shared.KvCacheBytesPerToken);
        Assert.Equal(perToken * T, shared.KvCacheAllocatedBytes);
    }

    [Fact]
    public void SharedLayersFireTheReusedPatternAndNoQueryOrKey()
    {
        using var loaded = Golden("llama_gqa");
        using var shared = TransformerModel.Create(AttentionSharing.Apply(loaded.Model, [[0, 1]]));
        var names = shared.HookPoints.Select(p => p.Name).ToHashSet();
        Assert.Contains("blocks.0.attn.hook_q", names);
        Assert.DoesNotContain("blocks.1.attn.hook_q", names);
        Assert.DoesNotContain("blocks.1.attn.hook_k", names);
        Assert.DoesNotContain("blocks.1.attn.hook_attn_scores", names);
        Assert.Contains("blocks.1.attn.hook_pattern", names);
        Assert.Contains("blocks.1.attn.hook_v", names);
        var (_, cache) = shared.RunWithCache(ModelInput.Single(Tokens[..8]));
        Assert.Equal(cache["blocks.0.attn.hook_pattern"].Data, cache["blocks.1.attn.hook_pattern"].Data);
        Assert.False(cache.Contains("blocks.1.attn.hook_q"));
    }

    [Fact]
    public void ResumingAboveAGroupsFirstLayerIsRefused()
    {
        using var loaded = Golden("gpt2_untied");
        using var shared = TransformerModel.Create(AttentionSharing.Apply(loaded.Model, [[0, 2]]));
        var input = ModelInput.Single(Tokens[..5]);
        var (logits, cache) = shared.RunWithCache(input);
        var e = Assert.Throws<InvalidInputException>(() => shared.ForwardFrom(1, cache["blocks.1.hook_resid_pre"].Data, input));
        Assert.Contains("layer 2 reuses layer 0's attention pattern", e.Message, StringComparison.Ordinal);
        Assert.True(MaxDiff(logits, shared.ForwardFrom(0, cache["blocks.0.hook_resid_pre"].Data, input)) <= 1e-5f);
        Assert.True(MaxDiff(logits, shared.ForwardFrom(3, cache["blocks.2.hook_resid_post"].Data, input)) <= 1e-5f);
    }

    [Theory]
    [InlineData("4-x", "'4-x' is not a layer range")]
    [InlineData("1-0", "group 1-0 does not ascend")]
    [InlineData("0-5", "group 0-5: layers must be 0 to 4")]
    [InlineData("0-2,2-3", "layer 2 is already in another group")]
    [InlineData("", "'' is not a layer range")]
    public void BadGroupsAreOneClearLine(string spec, string expected)
    {
        var e = Assert.Throws<InvalidInputException>(() => AttentionSharing.ParseGroups(spec, 5));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void UnsupportedFamiliesAndSharedModelsAreRefused()
    {
        using var mla = Golden("deepseek_v3_noqlora");
        Assert.Contains("deepseek_v3 checkpoints are not supported", Assert.Throws<InvalidInputException>(() => AttentionSharing.Apply(mla.Model, [[0, 1]])).Message, StringComparison.Ordinal);
        using var loaded = Golden("llama_mha");
        using var shared = TransformerModel.Create(AttentionSharing.Apply(loaded.Model, [[0, 1]]));
        Assert.Contains("shares attention already", Assert.Throws<InvalidInputException>(() => AttentionSharing.Apply(shared, [[0, 1]])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SuggestGroupsLayersWithAlikePatterns()
    {
        using var loaded = Golden("llama_mha");
        var all = AttentionSharing.Suggest(loaded.Model, Tokens, 0);
        Assert.Equal([[0, 1]], all.Select(g => g.Layers).ToArray());
        Assert.InRange(all[0].Similarity[0], 0, 1);
        Assert.Empty(AttentionSharing.Suggest(loaded.Model, Tokens, 1.0));
    }
}
