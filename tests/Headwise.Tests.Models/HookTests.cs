using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Models;

/// <summary>Hook points: names and shapes as TransformerLens, and identities between them that hold only if each is the right activation.</summary>
public class HookTests
{
    private static LoadedModel Load(string name) => ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));

    private static ModelInput Input(int vocab) => new([3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6], 2, 6);

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    [InlineData("neox_sequential")]
    public void CacheHasEveryPointWithTransformerLensShapes(string name)
    {
        using var m = Load(name);
        var c = m.Config;
        var (_, cache) = m.Model.RunWithCache(Input(c.VocabSize), _ => true);
        Assert.Equal(m.Model.HookPoints.Count, cache.Count);
        Assert.Equal([2, 6, c.DModel], cache["blocks.0.hook_resid_pre"].Shape);
        Assert.Equal([2, 6, c.NHeads, c.DHead], cache["blocks.1.attn.hook_q"].Shape);
        Assert.Equal([2, 6, c.NKvHeads, c.DHead], cache["blocks.1.attn.hook_k"].Shape);
        Assert.Equal([2, c.NHeads, 6, 6], cache["blocks.0.attn.hook_pattern"].Shape);
        Assert.Equal([2, 6, c.NHeads, c.DModel], cache["blocks.0.attn.hook_result"].Shape);
        Assert.Equal([2, 6, 1], cache["ln_final.hook_scale"].Shape);
        Assert.Equal([2, 6, c.DMlp], cache["blocks.0.mlp.hook_post"].Shape);
        Assert.Equal(c.ParallelResidual, !cache.Contains("blocks.0.hook_resid_mid"));
        Assert.Equal(c.Family == ArchitectureFamily.Gpt2, cache.Contains("hook_pos_embed"));
    }

    [Theory]
    [InlineData("gpt2_untied")]
    [InlineData("llama_gqa")]
    [InlineData("qwen2")]
    [InlineData("neox_sequential")]
    public void ResidualStreamIdentitiesHold(string name)
    {
        using var m = Load(name);
        var c = m.Config;
        var (logits, cache) = m.Model.RunWithCache(Input(c.VocabSize), _ => true);
        for (int l = 0; l < c.NLayers; l++)
        {
            var pre = cache[$"blocks.{l}.hook_resid_pre"].Data;
            var attnOut = cache[$"blocks.{l}.hook_attn_out"].Data;
            var mlpOut = cache[$"blocks.{l}.hook_mlp_out"].Data;
            var post = cache[$"blocks.{l}.hook_resid_post"].Data;
            // resid_post = resid_pre + attn_out + mlp_out, in either residual arrangement
            for (int i = 0; i < pre.Length; i++)
            {
                Assert.Equal(pre[i] + attnOut[i] + mlpOut[i], post[i], 1e-4f);
            }
            if (l + 1 < c.NLayers)
            {
                Assert.Equal(post, cache[$"blocks.{l + 1}.hook_resid_pre"].Data);
            }
            // attn_out = Σ_h result_h + b_O: the per-head decomposition is exact
            var result = cache[$"blocks.{l}.attn.hook_result"].Data;
            int rows = 12, H = c.NHeads, C = c.DModel;
            string? biasName = c.Family switch
            {
                ArchitectureFamily.Gpt2 => $"transformer.h.{l}.attn.c_proj.bias",
                ArchitectureFamily.GptNeoX => $"gpt_neox.layers.{l}.attention.dense.bias",
                _ => null,
            };
            var bias = biasName is null ? new float[C] : m.Model.Weights.GetAnyShape(biasName).ToArray();
            for (int r = 0; r < rows; r++)
            {
                for (int d = 0; d < C; d++)
                {
                    float sum = bias[d];
                    for (int h = 0; h < H; h++)
                    {
                        sum += result[(r * H + h) * C + d];
                    }
                    Assert.Equal(attnOut[r * C + d], sum, 1e-4f);
                }
            }
            // pattern rows are distributions over visible keys: causal zeros above the diagonal, sum 1
            var pattern = cache[$"blocks.{l}.attn.hook_pattern"];
            for (int b = 0; b < 2; b++)
            {
                for (int h = 0; h < H; h++)
                {
                    for (int q = 0; q < 6; q++)
                    {
                        float rowSum = 0;
                        for (int k = 0; k < 6; k++)
                        {
                            float p = pattern[b, h, q, k];
                            if (k > q)
                            {
                                Assert.Equal(0f, p);
                                Assert.True(float.IsNegativeInfinity(cache[$"blocks.{l}.attn.hook_attn_scores"][b, h, q, k]));
                            }
                            rowSum += p;
                        }
                        Assert.Equal(1f, rowSum, 1e-5f);
                    }
                }
            }
        }
        // the logits are the final-normed residual times the unembedding
        var normalized = cache["ln_final.hook_normalized"].Data;
        var wU = m.Model.Weights.GetAnyShape(c.Family switch
        {
            ArchitectureFamily.Gpt2 => c.TiedEmbeddings ? "transformer.wte.weight" : "lm_head.weight",
            ArchitectureFamily.GptNeoX => "embed_out.weight",
            _ => c.TiedEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight",
        }).ToArray();
        for (int v = 0; v < c.VocabSize; v += 7)
        {
            float dot = 0;
            for (int d = 0; d < c.DModel; d++)
            {
                dot += normalized[5 * c.DModel + d] * wU[v * c.DModel + d];
            }
            Assert.Equal(logits[5 * c.VocabSize + v], dot, 1e-4f);
        }
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("mistral")]
    public void HookedAttentionPathEqualsFusedPath(string name)
    {
        using var m = Load(name);
        var input = Input(m.Config.VocabSize);
        var plain = m.Model.Forward(input);
        // a hook on the pattern forces the three-pass path; reading it must not change anything
        var hooked = m.Model.RunWithHooks(input, ("blocks.0.attn.hook_pattern", _ => { }), ("blocks.1.attn.hook_attn_scores", _ => { }));
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.Equal(plain[i], hooked[i], 1e-5f);
        }
    }

    // Without MLP hooks a gated MLP multiplies silu(gate)·up in the gate GEMM's store (GemmEpilogue.SwiGlu); a read-only
    // hook on every layer's hook_post forces the separate pass. The same element function: bitwise when d_mlp is a multiple
    // of 32 (llama_mha's 96, llama_sharded's 64), else within an ulp per MLP value (1e-5 on the logits).
    [Theory]
    [InlineData("llama_mha", true)]
    [InlineData("llama_sharded", true)]
    [InlineData("mistral", false)]
    [InlineData("deepseek_v3_bias", false)]
    public void FusedSwiGluEqualsTheHookedPath(string name, bool bitwise)
    {
        using var m = Load(name);
        var input = Input(m.Config.VocabSize);
        var plain = m.Model.Forward(input);
        var hooks = Enumerable.Range(0, m.Config.NLayers).Select(l => ($"blocks.{l}.mlp.hook_post", (HookFunction)(_ => { }))).ToArray();
        var hooked = m.Model.RunWithHooks(input, hooks);
        for (int i = 0; i < plain.Length; i++)
        {
            if (bitwise)
            {
                Assert.Equal(plain[i], hooked[i]);
            }
            else
            {
                Assert.Equal(plain[i], hooked[i], 1e-5f);
            }
        }
    }

    [Fact]
    public void AblatingAHeadThroughZEqualsAblatingItThroughResult()
    {
        using var m = Load("llama_mha");
        var c = m.Config;
        var input = Input(c.VocabSize);
        const int layer = 1, head = 2;
        var viaZ = m.Model.RunWithHooks(input, ($"blocks.{layer}.attn.hook_z", a =>
        {
            var d = a.Data.Span;
            for (int r = 0; r < 12; r++)
            {
                d.Slice((r * c.NHeads + head) * c.DHead, c.DHead).Clear();
            }
        }
        ));
        var viaResult = m.Model.RunWithHooks(input, ($"blocks.{layer}.attn.hook_result", a =>
        {
            var d = a.Data.Span;
            for (int r = 0; r < 12; r++)
            {
                d.Slice((r * c.NHeads + head) * c.DModel, c.DModel).Clear();
            }
        }
        ));
        var clean = m.Model.Forward(input);
        double changed = 0;
        for (int i = 0; i < clean.Length; i++)
        {
            Assert.Equal(viaZ[i], viaResult[i], 1e-4f);
            changed = Math.Max(changed, Math.Abs(viaZ[i] - clean[i]));
        }
        Assert.True(changed > 1e-3, "ablating a head should change the logits");
    }

    [Fact]
    public void ReplacingThePatternWithUniformAttentionChangesOnlyLaterPositionsAndLayers()
    {
        using var m = Load("gpt2_tied");
        var input = ModelInput.Single(3, 17, 5, 9, 22, 1);
        var clean = m.Model.Forward(input);
        var edited = m.Model.RunWithHooks(input, ("blocks.1.attn.hook_pattern", a =>
        {
            var d = a.Data.Span;
            int H = a.Shape[1], T = a.Shape[2], S = a.Shape[3];
            for (int h = 0; h < H; h++)
            {
                for (int q = 0; q < T; q++)
                {
                    for (int k = 0; k < S; k++)
                    {
                        d[(h * T + q) * S + k] = k <= q ? 1f / (q + 1) : 0f;
                    }
                }
            }
        }
        ));
        int V = m.Config.VocabSize;
        // position 0 attends only to itself under both patterns
        for (int v = 0; v < V; v++)
        {
            Assert.Equal(clean[v], edited[v], 1e-5f);
        }
        Assert.True(Enumerable.Range(V, clean.Length - V).Max(i => Math.Abs(clean[i] - edited[i])) > 1e-3);
    }

    [Fact]
    public void GroupedKvHeadsCanBeSeenPerQueryHead()
    {
        using var m = Load("llama_gqa");
        var c = m.Config;
        Assert.True(c.NKvHeads < c.NHeads);
        var (_, grouped) = m.Model.RunWithCache(Input(c.VocabSize), n => n == "blocks.0.attn.hook_k");
        var (_, expanded) = m.Model.RunWithCache(Input(c.VocabSize), n => n == "blocks.0.attn.hook_k", expandKvHeads: true);
        var g = grouped["blocks.0.attn.hook_k"];
        var e = expanded["blocks.0.attn.hook_k"];
        Assert.Equal([2, 6, c.NHeads, c.DHead], e.Shape);
        for (int h = 0; h < c.NHeads; h++)
        {
            Assert.Equal(g[1, 3, h / c.KvGroupSize, 5], e[1, 3, h, 5]);
        }
    }

    [Fact]
    public void UnknownHookNameIsAClearError()
    {
        using var m = Load("gpt2_tied");
        var e = Assert.Throws<InvalidInputException>(() => m.Model.RunWithHooks(Input(m.Config.VocabSize), ("blocks.0.attn.hook_patern", _ => { })));
        Assert.Contains("hook_patern", e.Message);
        Assert.Throws<InvalidInputException>(() => m.Model.RunWithHooks(Input(m.Config.VocabSize), ("blocks.9.attn.hook_pattern", _ => { })));
        Assert.Throws<InvalidInputException>(() => m.Model.RunWithHooks(Input(m.Config.VocabSize), ($"blocks.{m.Config.NLayers}.hook_resid_pre", _ => { })));
    }

    [Fact]
    public void HookNamesRoundTrip()
    {
        using var m = Load("neox_parallel");
        foreach (var p in m.Model.HookPoints)
        {
            Assert.Equal(p, HookPoint.TryParse(p.Name));
        }
        Assert.Equal("blocks.3.attn.hook_pattern", new HookPoint(3, HookKind.Pattern).Name);
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    public void ForwardFromACachedResidualEqualsTheFullForward(string name)
    {
        using var m = Load(name);
        var input = Input(m.Config.VocabSize);
        var (clean, cache) = m.Model.RunWithCache(input, n => n.EndsWith("hook_resid_pre", StringComparison.Ordinal));
        for (int layer = 0; layer <= m.Config.NLayers; layer++)
        {
            var resid = layer < m.Config.NLayers ? cache[$"blocks.{layer}.hook_resid_pre"].Data : null;
            if (resid is null)
            {
                continue;
            }
            var resumed = m.Model.ForwardFrom(layer, resid, input);
            Assert.Equal(clean, resumed);
        }
        // with an intervention in the resumed layer, the result equals the same intervention on a full run
        var hooks = new HookSet(m.Config.NLayers);
        hooks.Add("blocks.1.attn.hook_z", a => a.Data.Span[..m.Config.DHead].Clear());
        var full = m.Model.Forward(input, hooks);
        var partial = m.Model.ForwardFrom(1, cache["blocks.1.hook_resid_pre"].Data, input, hooks);
        Assert.Equal(full, partial);
        Assert.NotEqual(clean, full);
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    public void LogitRowsAreTheChosenRowsOfTheFullForward(string name)
    {
        using var m = Load(name);
        var input = Input(m.Config.VocabSize);
        int V = m.Config.VocabSize, T = input.SeqLen;
        var (full, cache) = m.Model.RunWithCache(input, n => n == "blocks.1.hook_resid_pre");
        var rows = new LogitRows([2, 0], [3, 6]); // sequence 0: positions 2..4; sequence 1: all six
        var buffer = new float[20 * V];          // larger than needed: only the first 9 rows are written
        var chosen = m.Model.Forward(input, null, rows, buffer);
        var resumed = m.Model.ForwardFrom(1, cache["blocks.1.hook_resid_pre"].Data, input, null, rows, null);
        Assert.Same(buffer, chosen);
        Assert.Equal(9 * V, resumed.Length);
        for (int r = 0; r < 9; r++)
        {
            int b = r < 3 ? 0 : 1, t = r < 3 ? 2 + r : r - 3;
            for (int v = 0; v < V; v++)
            {
                float want = full[(((b * T) + t) * V) + v];
                Assert.Equal(want, chosen[(r * V) + v], 1e-5f);
                Assert.Equal(want, resumed[(r * V) + v], 1e-5f);
            }
        }
        // a row's logits are the same bits whatever else is asked for (a few rows alone would take the GEMV's order)
        var alone = m.Model.Forward(input, null, new LogitRows([2, 0], [3, 0]), null);
        Assert.Equal(chosen.AsSpan(0, 3 * V).ToArray(), alone.AsSpan(0, 3 * V).ToArray());
        Assert.Throws<InvalidInputException>(() => m.Model.Forward(input, null, new LogitRows([4, 0], [3, 1]), null));
        Assert.Throws<InvalidInputException>(() => m.Model.Forward(input, null, new LogitRows([0], [1]), null));
    }

    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_sequential")]
    public void ForwardFromMidEqualsTheFullForwardAndParallelModelsRefuseIt(string name)
    {
        using var m = Load(name);
        var input = Input(m.Config.VocabSize);
        var (clean, cache) = m.Model.RunWithCache(input, n => n.EndsWith("hook_resid_mid", StringComparison.Ordinal));
        for (int layer = 0; layer < m.Config.NLayers; layer++)
        {
            Assert.Equal(clean, m.Model.ForwardFromMid(layer, cache[$"blocks.{layer}.hook_resid_mid"].Data, input));
        }
        using var parallel = Load("neox_parallel");
        var p = Input(parallel.Config.VocabSize);
        var e = Assert.Throws<InvalidInputException>(() => parallel.Model.ForwardFromMid(0, new float[p.Batch * p.SeqLen * parallel.Config.DModel], p));
        Assert.Contains("parallel residual", e.Message);
    }

    [Fact]
    public void ARefilledCacheHoldsTheNewRunsActivationsInTheSameArrays()
    {
        using var m = Load("gpt2_tied");
        var a = Input(m.Config.VocabSize);
        var b = new ModelInput([9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12], 2, 6);
        var (_, cache) = m.Model.RunWithCache(a);
        var pattern = cache["blocks.1.attn.hook_pattern"].Data;
        var (logitsB, refilled) = m.Model.RunWithCache(b, reuse: cache);
        var (freshLogits, fresh) = m.Model.RunWithCache(b);
        Assert.Same(cache, refilled);
        Assert.Same(pattern, refilled["blocks.1.attn.hook_pattern"].Data); // no new array
        Assert.Equal(freshLogits, logitsB);
        Assert.Equal(fresh.Names.Order(), refilled.Names.Order());
        foreach (var name in fresh.Names)
        {
            Assert.Equal(fresh[name].Data, refilled[name].Data);
            Assert.Equal(fresh[name].Shape, refilled[name].Shape);
        }
        // a narrower filter leaves only what it asked for
        m.Model.RunWithCache(a, n => n.EndsWith("hook_z", StringComparison.Ordinal), reuse: cache);
        Assert.All(cache.Names, n => Assert.EndsWith("hook_z", n));
        Assert.Equal(m.Config.NLayers, cache.Count);
    }
}
