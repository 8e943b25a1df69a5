using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Restructure;

namespace Headwise.Tests.Models;

/// <summary>
/// The deepseek_v3 (multi-head latent attention) family beyond its logits (GoldenTests has those): the absorbed decode on a
/// latent-only cache against the decompressed prefill, the hook points and their MLA widths, interventions in either form,
/// the refusal of weight-only analyses, and bad checkpoints.
/// </summary>
public sealed class DeepseekV3Tests : IDisposable
{
    // absorbed and decompressed attention are the same sums in another order: float32 rounding only
    private const float AbsorbedTolerance = 1e-5f;

    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-deepseek-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string> Goldens => ["deepseek_v3_qlora", "deepseek_v3_noqlora", "deepseek_v3_bias", "deepseek_v3_sharded"];

    private static LoadedModel Load(string name) => ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));

    private static readonly int[] Tokens = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6];

    [Theory]
    [MemberData(nameof(Goldens))]
    public void AbsorbedDecodeEqualsTheDecompressedPrefill(string name)
    {
        using var m = Load(name);
        int V = m.Config.VocabSize, T = 6;
        // two sequences, the first left-padded by two: the cache's key mask and position ids take part too
        byte[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        var prefill = m.Model.Forward(new ModelInput(Tokens, 2, T, mask));

        m.Model.ResetCache(2, T);
        var steps = new float[2 * T * V];
        int[] Column(int t) => [Tokens[t], Tokens[T + t]];
        // positions 0..2 in one decompressed chunk, then one absorbed step per position
        var first = m.Model.ForwardChunk([.. Tokens[..3], .. Tokens[T..(T + 3)]], [.. mask[..3], .. mask[T..(T + 3)]], 3);
        for (int b = 0; b < 2; b++)
        {
            first.AsSpan(b * 3 * V, 3 * V).CopyTo(steps.AsSpan(b * T * V));
        }
        for (int t = 3; t < T; t++)
        {
            var logits = m.Model.ForwardChunk(Column(t), [mask[t], mask[T + t]], 1);
            for (int b = 0; b < 2; b++)
            {
                logits.AsSpan(b * V, V).CopyTo(steps.AsSpan(((b * T) + t) * V));
            }
        }
        Assert.Equal((long)m.Config.NLayers * (m.Config.Mla!.KvLoraRank + m.Config.Mla.QkRopeHeadDim) * 4 * 2 * T, m.Model.KvCacheAllocatedBytes);
        for (int i = 0; i < 2 * T; i++)
        {
            if (mask[i] == 0)
            {
                continue;
            }
            for (int v = 0; v < V; v++)
            {
                Assert.Equal(prefill[i * V + v], steps[i * V + v], AbsorbedTolerance);
            }
        }
    }

    [Theory]
    [InlineData("deepseek_v3_qlora")]
    [InlineData("deepseek_v3_sharded")]
    public void CacheHasEveryPointWithMlaWidths(string name)
    {
        using var m = Load(name);
        var c = m.Config;
        var mla = c.Mla!;
        var input = new ModelInput(Tokens, 2, 6);
        var (logits, cache) = m.Model.RunWithCache(input, _ => true);
        Assert.Equal(m.Model.HookPoints.Count, cache.Count);
        Assert.Equal([2, 6, c.NHeads, mla.QkHeadDim], cache["blocks.1.attn.hook_q"].Shape);
        Assert.Equal([2, 6, c.NHeads, mla.QkHeadDim], cache["blocks.1.attn.hook_rot_k"].Shape);
        Assert.Equal([2, 6, c.NHeads, c.DHead], cache["blocks.1.attn.hook_v"].Shape);
        Assert.Equal([2, 6, c.NHeads, c.DHead], cache["blocks.1.attn.hook_z"].Shape);
        Assert.Equal([2, 6, mla.KvLoraRank], cache["blocks.0.attn.hook_kv_latent"].Shape);
        Assert.Equal(mla.QLoraRank > 0, cache.Contains("blocks.0.attn.hook_q_latent"));
        if (mla.QLoraRank > 0)
        {
            Assert.Equal([2, 6, mla.QLoraRank], cache["blocks.0.attn.hook_q_latent"].Shape);
        }
        Assert.Equal([2, c.NHeads, 6, 6], cache["blocks.0.attn.hook_pattern"].Shape);
        Assert.Equal([2, 6, c.NHeads, c.DModel], cache["blocks.0.attn.hook_result"].Shape);
        // hook_result sums the heads' outputs one by one: the same logits up to rounding
        var plain = m.Model.Forward(input);
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.Equal(plain[i], logits[i], 1e-4f);
        }

        // every head reads the same rotary key: hook_rot_k's rotary part is equal across heads
        var rotK = cache["blocks.1.attn.hook_rot_k"].Data;
        for (int r = 0; r < 12; r++)
        {
            for (int h = 1; h < c.NHeads; h++)
            {
                for (int d = mla.QkNopeHeadDim; d < mla.QkHeadDim; d++)
                {
                    Assert.Equal(rotK[r * c.NHeads * mla.QkHeadDim + d], rotK[(r * c.NHeads + h) * mla.QkHeadDim + d]);
                }
            }
        }
        // attn_out = Σ_h result_h (+ o_proj bias, which these goldens' attention_bias true/false covers elsewhere) and
        // resid_post = resid_pre + attn_out + mlp_out
        for (int l = 0; l < c.NLayers; l++)
        {
            var pre = cache[$"blocks.{l}.hook_resid_pre"].Data;
            var attnOut = cache[$"blocks.{l}.hook_attn_out"].Data;
            var mlpOut = cache[$"blocks.{l}.hook_mlp_out"].Data;
            var post = cache[$"blocks.{l}.hook_resid_post"].Data;
            var result = cache[$"blocks.{l}.attn.hook_result"].Data;
            for (int r = 0; r < 12; r++)
            {
                for (int d = 0; d < c.DModel; d++)
                {
                    int i = r * c.DModel + d;
                    Assert.Equal(pre[i] + attnOut[i] + mlpOut[i], post[i], 1e-4f);
                    float sum = 0;
                    for (int h = 0; h < c.NHeads; h++)
                    {
                        sum += result[(r * c.NHeads + h) * c.DModel + d];
                    }
                    Assert.Equal(attnOut[i], sum, 1e-4f);
                }
            }
        }
    }

    // zero head `head` of hook_z at every row
    private static HookSet ZeroHead(ModelConfig c, int layer, int head)
    {
        var hooks = new HookSet(c.NLayers);
        hooks.Add($"blocks.{layer}.attn.hook_z", a =>
        {
            var d = a.Data.Span;
            for (int r = 0; r < a.Shape[0] * a.Shape[1]; r++)
            {
                d.Slice((r * c.NHeads + head) * c.DHead, c.DHead).Clear();
            }
        });
        return hooks;
    }

    [Theory]
    [InlineData("deepseek_v3_qlora")]
    [InlineData("deepseek_v3_bias")]
    public void AblatingAHeadWorksInPrefillAndInTheAbsorbedDecode(string name)
    {
        using var m = Load(name);
        var c = m.Config;
        int V = c.VocabSize, T = 6;
        const int layer = 1, head = 2;
        var input = ModelInput.Single(Tokens[..T]);
        var clean = m.Model.Forward(input);
        var viaZ = m.Model.Forward(input, ZeroHead(c, layer, head));
        var viaResult = m.Model.RunWithHooks(input, ($"blocks.{layer}.attn.hook_result", a =>
        {
            var d = a.Data.Span;
            for (int r = 0; r < T; r++)
            {
                d.Slice((r * c.NHeads + head) * c.DModel, c.DModel).Clear();
            }
        }
        ));
        for (int i = 0; i < clean.Length; i++)
        {
            Assert.Equal(viaZ[i], viaResult[i], 1e-4f);
        }
        Assert.True(Enumerable.Range(0, clean.Length).Max(i => Math.Abs(clean[i] - viaZ[i])) > 1e-3, "ablating a head should change the logits");

        // the same ablation while decoding (absorbed form from the second chunk on) gives the last position's ablated logits
        m.Model.ResetCache(1, T);
        m.Model.ForwardChunk(Tokens[..(T - 1)], null, T - 1, ZeroHead(c, layer, head));
        var last = m.Model.ForwardChunk([Tokens[T - 1]], null, 1, ZeroHead(c, layer, head));
        for (int v = 0; v < V; v++)
        {
            Assert.Equal(viaZ[((T - 1) * V) + v], last[v], AbsorbedTolerance);
        }
    }

    [Fact]
    public void ZeroingAHeadsValuesEqualsZeroingItsZAndRewrittenLatentsAreWhatTheCacheKeeps()
    {
        using var m = Load("deepseek_v3_sharded"); // v_head_dim 12 > qk_head_dim 8: the padded decompressed path
        var c = m.Config;
        int V = c.VocabSize, T = 6;
        const int layer = 2, head = 1;
        var input = ModelInput.Single(Tokens[..T]);
        var viaZ = m.Model.Forward(input, ZeroHead(c, layer, head));
        // z_h = pattern_h · v_h: a head whose values are zero writes nothing
        var viaV = m.Model.RunWithHooks(input, ($"blocks.{layer}.attn.hook_v", a =>
        {
            var d = a.Data.Span;
            for (int r = 0; r < T; r++)
            {
                d.Slice((r * c.NHeads + head) * c.DHead, c.DHead).Clear();
            }
        }
        ));
        for (int i = 0; i < viaZ.Length; i++)
        {
            Assert.Equal(viaZ[i], viaV[i], 1e-5f);
        }

        // a rewritten latent is cached as rewritten: halving layer 0's latents in every chunk of a decode equals halving them in one forward
        HookSet HalveLatent()
        {
            var hooks = new HookSet(c.NLayers);
            hooks.Add("blocks.0.attn.hook_kv_latent", a =>
            {
                foreach (ref float x in a.Data.Span)
                {
                    x *= 0.5f;
                }
            });
            return hooks;
        }
        var clean = m.Model.Forward(input);
        var full = m.Model.Forward(input, HalveLatent());
        m.Model.ResetCache(1, T);
        m.Model.ForwardChunk(Tokens[..(T - 1)], null, T - 1, HalveLatent());
        var last = m.Model.ForwardChunk([Tokens[T - 1]], null, 1, HalveLatent());
        Assert.True(Enumerable.Range(0, V).Max(v => Math.Abs(full[((T - 1) * V) + v] - clean[((T - 1) * V) + v])) > 1e-3);
        for (int v = 0; v < V; v++)
        {
            Assert.Equal(full[((T - 1) * V) + v], last[v], AbsorbedTolerance);
        }
    }

    [Fact]
    public void DecodeStepPatternAndPerHeadKeysAgreeBetweenTheTwoForms()
    {
        using var m = Load("deepseek_v3_noqlora");
        var c = m.Config;
        int T = 7, V = c.VocabSize;
        var input = ModelInput.Single(Tokens[..T]);
        var (_, full) = m.Model.RunWithCache(input, n => n == "blocks.1.attn.hook_pattern");
        var fullPattern = full["blocks.1.attn.hook_pattern"].Data; // [1, NH, T, T]

        // absorbed decode step, pattern observed: the last query row of the prefill's pattern
        var pattern = new float[c.NHeads * T];
        var observe = new HookSet(c.NLayers);
        observe.Add(new HookPoint(1, HookKind.Pattern), a => a.Data.Span.CopyTo(pattern), observeOnly: true);
        m.Model.ResetCache(1, T);
        m.Model.ForwardChunk(Tokens[..(T - 1)], null, T - 1);
        var absorbed = m.Model.ForwardChunk([Tokens[T - 1]], null, 1, observe);
        for (int h = 0; h < c.NHeads; h++)
        {
            for (int s = 0; s < T; s++)
            {
                Assert.Equal(fullPattern[(h * T + (T - 1)) * T + s], pattern[h * T + s], AbsorbedTolerance);
            }
        }

        // a hook on hook_k takes the decompressed form with a past (keys and values decompressed from the cache rows)
        var watchK = new HookSet(c.NLayers);
        int[]? kShape = null;
        watchK.Add(new HookPoint(0, HookKind.K), a => kShape = a.Shape.ToArray(), observeOnly: true);
        m.Model.ResetCache(1, T);
        m.Model.ForwardChunk(Tokens[..(T - 1)], null, T - 1);
        var decompressed = m.Model.ForwardChunk([Tokens[T - 1]], null, 1, watchK);
        Assert.Equal([1, 1, c.NHeads, c.Mla!.QkHeadDim], kShape!);
        for (int v = 0; v < V; v++)
        {
            Assert.Equal(absorbed[v], decompressed[v], AbsorbedTolerance);
        }
    }

    [Fact]
    public void ActivationPatchingRunsOnEverySiteAndPatchingEveryZRestoresTheCleanRun()
    {
        using var m = Load("deepseek_v3_bias");
        var c = m.Config;
        int V = c.VocabSize;
        int[] clean = Tokens[..8], corrupted = [.. Tokens[..8]];
        corrupted[2] = 40;
        int Top(int[] ids) { var l = m.Model.Forward(ModelInput.Single(ids)); return Enumerable.Range(0, V).MaxBy(v => l[(ids.Length - 1) * V + v]); }
        int answer = Top(clean), wrong = Top(corrupted);
        Assert.NotEqual(answer, wrong);
        PatchPair[] pairs = [new(clean, corrupted, ActivationPatching.LogitDifference(V, answer, wrong))];
        var everyHead = Enumerable.Range(0, c.NLayers).SelectMany(l => Enumerable.Range(0, c.NHeads).Select(h => new HeadId(l, h))).ToList();
        Assert.Equal(1.0, ActivationPatching.PatchHeads(m.Model, pairs, PatchSite.Z, everyHead), 1e-4);
        foreach (var site in Enum.GetValues<PatchSite>())
        {
            var result = ActivationPatching.Run(m.Model, pairs, site);
            Assert.All(result.Scores.Values.SelectMany(v => v), v => Assert.True(float.IsFinite(v), $"{site}: {v}"));
        }
    }

    [Fact]
    public void WeightOnlyAnalysesRefuseWithOneClearLine()
    {
        using var m = Load("deepseek_v3_qlora");
        var e = Assert.Throws<InvalidInputException>(() => m.Model.GetAttentionWeights(0));
        Assert.Contains("kv_a_layernorm", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Throws<InvalidInputException>(() => m.Model.ToCanonical());
        // what does not need W_Q/W_K/W_V still reads: the MLP and the norms
        Assert.Equal(m.Config.DModel * m.Config.DMlp, m.Model.GetMlpWeights(1).WIn.Length);
        Assert.Equal(m.Config.DModel, m.Model.AttentionNorm(1).Weight.Length);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Bad checkpoints

    private string CopyOf(string golden)
    {
        string dst = Path.Combine(_dir, golden + "-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Goldens, golden)))
        {
            File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        }
        return dst;
    }

    private string WithConfigEdit(string golden, string from, string to)
    {
        string d = CopyOf(golden);
        string path = Path.Combine(d, "config.json");
        string cfg = File.ReadAllText(path);
        Assert.Contains(from, cfg);
        File.WriteAllText(path, cfg.Replace(from, to));
        return d;
    }

    private static string LoadFails(string dir) => Assert.Throws<ModelFormatException>(() => ModelLoader.Load(dir).Dispose()).Message;

    [Fact]
    public void MixtureOfExpertsLayersAreRefused()
    {
        var msg = LoadFails(WithConfigEdit("deepseek_v3_qlora", "\"first_k_dense_replace\": 2", "\"first_k_dense_replace\": 1"));
        Assert.Contains("config.json", msg);
        Assert.Contains("mixture-of-experts", msg);
        Assert.Contains("first_k_dense_replace 1 < num_hidden_layers 2", msg);
        Assert.DoesNotContain('\n', msg);
        // no experts at all: every layer is dense whatever first_k_dense_replace says
        using var dense = ModelLoader.Load(WithConfigEdit("deepseek_v3_qlora", "\"n_routed_experts\": 4", "\"n_routed_experts\": null"));
        Assert.Equal(ArchitectureFamily.DeepseekV3, dense.Config.Family);
    }

    [Fact]
    public void ScaledRopeAndGroupedKvHeadsAreRefused()
    {
        var yarn = LoadFails(WithConfigEdit("deepseek_v3_qlora", "\"rope_scaling\": null",
            "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"mscale_all_dim\": 1.0}"));
        Assert.Contains("rope_scaling of type 'yarn'", yarn);
        var kv = LoadFails(WithConfigEdit("deepseek_v3_qlora", "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 2"));
        Assert.Contains("num_key_value_heads (2) must equal num_attention_heads (4)", kv);
    }

    [Fact]
    public void MissingTensorAndInconsistentLatentWidthAreNamed()
    {
        string d = CopyOf("deepseek_v3_qlora");
        using (var weights = ModelLoader.OpenWeights(d))
        {
            var kept = weights.Names.Where(n => n != "model.layers.1.self_attn.kv_b_proj.weight").ToList();
            var data = kept.Select(n => { var w = weights.GetAnyShape(n); return (n, w.Shape, (ReadOnlyMemory<float>)w.ToArray()); }).ToList();
            SafeTensorsWriter.Write(Path.Combine(d, "model.safetensors"), data);
        }
        var missing = LoadFails(d);
        Assert.Contains("'model.layers.1.self_attn.kv_b_proj.weight'", missing);
        Assert.Contains("missing", missing);

        // kv_lora_rank 12 in the tensors, 10 in the config: the first tensor it shapes is named, with both shapes
        var rank = LoadFails(WithConfigEdit("deepseek_v3_qlora", "\"kv_lora_rank\": 12", "\"kv_lora_rank\": 10"));
        Assert.Contains("'model.layers.0.self_attn.kv_a_proj_with_mqa.weight' has shape [16, 32] but the config implies [14, 32]", rank);
        // q_lora_rank given to a checkpoint that has q_proj: q_a_proj is missing
        var lora = LoadFails(WithConfigEdit("deepseek_v3_noqlora", "\"q_lora_rank\": null", "\"q_lora_rank\": 8"));
        Assert.Contains("'model.layers.0.self_attn.q_a_proj.weight'", lora);
        // the rotary width disagreeing with q_proj's rows
        var rope = LoadFails(WithConfigEdit("deepseek_v3_noqlora", "\"qk_rope_head_dim\": 4", "\"qk_rope_head_dim\": 6"));
        Assert.Contains("'model.layers.0.self_attn.q_proj.weight' has shape [48, 32] but the config implies [56, 32]", rope);
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("qwen2")] // a query bias, folded with W_UK too
    public void ConvertedModelsDecodeWithTheFoldedQueryAndTheLatentKernel(string golden)
    {
        // a quarter of the cache: R = 4 < NOPE = 12, so decode folds W_UK into q_proj once and runs the latent kernel
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var (rank, rope) = MlaConversion.RanksFor(loaded.Config, 0.25, MlaFormat.Headwise);
        int[] ids = [.. Enumerable.Range(0, 24).Select(i => (i * 37 + 11) % 90 + 3)];
        using var m = (DeepseekV3)MlaConversion.Convert(loaded.Model, rank, rope, ids).Checkpoint.ToModel();
        int V = m.Config.VocabSize, half = ids.Length / 2;
        var prefill = m.Forward(ModelInput.Single(ids));
        long folded = (long)m.Config.NLayers * m.Config.NHeads * (rank + rope) * (m.Config.DModel + (golden == "qwen2" ? 1 : 0)) * 4;
        Assert.Equal(folded, m.AbsorbedQueryBytes);

        // one decode step per token after a prefill of the first half; the same steps with hook_pattern observed take the
        // shared attention kernel on the cache rows instead of the latent kernel (and o_proj after W_UV, unfolded)
        var latent = DecodeSecondHalf(m, ids, null);
        var observed = DecodeSecondHalf(m, ids, HookKind.Pattern);
        for (int i = half * V; i < ids.Length * V; i++)
        {
            Assert.Equal(prefill[i], latent[i], 1e-4f);
            Assert.Equal(observed[i], latent[i], AbsorbedTolerance);
        }
    }

    // Logits (T, V) of a prefill of ids' first half, then one decode step per token, each step with `observe` watched in
    // every layer (nothing when null)
    private static float[] DecodeSecondHalf(TransformerModel m, int[] ids, HookKind? observe)
    {
        int V = m.Config.VocabSize, half = ids.Length / 2;
        var all = new float[ids.Length * V];
        m.ResetCache(1, ids.Length);
        m.ForwardChunk(ids[..half], null, half).AsSpan(0, half * V).CopyTo(all);
        for (int t = half; t < ids.Length; t++)
        {
            HookSet? hooks = null;
            if (observe is { } kind)
            {
                hooks = new HookSet(m.Config.NLayers);
                for (int l = 0; l < m.Config.NLayers; l++)
                {
                    hooks.Add(new HookPoint(l, kind), _ => { }, observeOnly: true);
                }
            }
            m.ForwardChunk([ids[t]], null, 1, hooks).AsSpan(0, V).CopyTo(all.AsSpan(t * V));
        }
        return all;
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("qwen2")] // a query bias: folded with W_UK, added after the factored query's mixing
    public void ConvertedModelsAtHalfTheCacheDecodeWithAFactoredFoldedQueryAndWuvFoldedIntoOProj(string golden)
    {
        // half the cache: R = NOPE = 8, so folding W_UK into q_proj once costs no more than q_proj and saves the fold per
        // step; each head's 16 query rows mix the source head's 8 (rank 8 ≤ 10, where factoring stops paying): the folded
        // query is kept as a basis and a per-head mixing. R = HD = 8: W_UV folds into o_proj, (C, NH·R).
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var (rank, rope) = MlaConversion.RanksFor(loaded.Config, 0.5, MlaFormat.Headwise);
        Assert.Equal((8, 8), (rank, rope));
        int[] ids = [.. Enumerable.Range(0, 24).Select(i => (i * 37 + 11) % 90 + 3)];
        using var m = (DeepseekV3)MlaConversion.Convert(loaded.Model, rank, rope, ids).Checkpoint.ToModel();
        var c = m.Config;
        int V = c.VocabSize, half = ids.Length / 2;
        Assert.Equal((long)c.NLayers * c.NHeads * (rank + rope) * (c.DModel + (golden == "qwen2" ? 1 : 0)) * 4, m.AbsorbedQueryBytes);
        Assert.Equal((long)c.NLayers * c.DModel * c.NHeads * rank * 4, m.AbsorbedOutputBytes);

        var prefill = m.Forward(ModelInput.Single(ids));
        var latent = DecodeSecondHalf(m, ids, null);
        for (int l = 0; l < c.NLayers; l++)
        {
            Assert.Equal(Enumerable.Repeat(c.DHead, c.NHeads), m.FactoredQueryRanks(l));
        }
        // hook_z watched: the same latent kernel, then W_UV per head and o_proj as the checkpoint has them; hook_q watched:
        // the decompressed form on the decompressed cache (no folded weight at all)
        var unfoldedOutput = DecodeSecondHalf(m, ids, HookKind.Z);
        var decompressed = DecodeSecondHalf(m, ids, HookKind.Q);
        for (int i = half * V; i < ids.Length * V; i++)
        {
            Assert.Equal(prefill[i], latent[i], 1e-4f);
            Assert.Equal(unfoldedOutput[i], latent[i], AbsorbedTolerance);
            Assert.Equal(decompressed[i], latent[i], 1e-4f);
        }
    }

    [Fact]
    public void LowRankRowsFactorsALowRankMatrixAndStopsAboveTheRankAllowed()
    {
        // (12, 20) = (12, 3)·(3, 20), and two zero rows: rank 3
        var rng = new Random(5);
        float[] a = [.. Enumerable.Range(0, 12 * 3).Select(_ => (float)(rng.NextDouble() - 0.5))];
        float[] b = [.. Enumerable.Range(0, 3 * 20).Select(_ => (float)(rng.NextDouble() - 0.5))];
        var m = new float[12 * 20];
        for (int i = 2; i < 12; i++)
        {
            for (int j = 0; j < 20; j++)
            {
                for (int k = 0; k < 3; k++)
                {
                    m[i * 20 + j] += a[i * 3 + k] * b[k * 20 + j];
                }
            }
        }
        var f = DeepseekV3.LowRankRows(m, 12, 20, maxRank: 5);
        Assert.NotNull(f);
        var (basis, coefficients, r) = f.Value;
        Assert.Equal(3, r);
        for (int i = 0; i < 12; i++)
        {
            for (int j = 0; j < 20; j++)
            {
                float sum = 0;
                for (int k = 0; k < r; k++)
                {
                    sum += coefficients[i * r + k] * basis[k * 20 + j];
                }
                Assert.Equal(m[i * 20 + j], sum, 1e-6f);
            }
        }
        // orthonormal basis rows
        for (int p = 0; p < r; p++)
        {
            for (int q = 0; q < r; q++)
            {
                float dot = 0;
                for (int j = 0; j < 20; j++)
                {
                    dot += basis[p * 20 + j] * basis[q * 20 + j];
                }
                Assert.Equal(p == q ? 1f : 0f, dot, 1e-6f);
            }
        }
        Assert.Null(DeepseekV3.LowRankRows(m, 12, 20, maxRank: 2));
    }
}
