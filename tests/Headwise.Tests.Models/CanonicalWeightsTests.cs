using System.Text.RegularExpressions;
using Headwise.Analysis.Constructed;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Models;

/// <summary>
/// The canonical weights (TransformerModel.ToCanonical and the per-layer accessors): a round trip through them changes no logit
/// bit, whether rebuilt in memory or written as a Hugging Face checkpoint and loaded again; and they are the weights the
/// forward uses — every projection recomputed from them reproduces its hook activation.
/// </summary>
public sealed class CanonicalWeightsTests
{
    public static TheoryData<string> Families => ["gpt2_tied", "gpt2_untied", "llama_gqa", "qwen2", "neox_parallel", "neox_sequential"];

    private static readonly ModelInput Input = new([3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6], 2, 6);

    [Theory]
    [MemberData(nameof(Families))]
    public void CanonicalRoundTripGivesIdenticalLogits(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var want = m.Model.Forward(Input);
        var canonical = m.Model.ToCanonical();

        using (var rebuilt = TransformerModel.Create(canonical))
        {
            Assert.Equal(want, rebuilt.Forward(Input)); // bitwise: the same floats in the same layouts
            Assert.Equal(m.Model.HookPoints.Select(p => p.Name), rebuilt.HookPoints.Select(p => p.Name));
        }

        string dir = Path.Combine(Path.GetTempPath(), "hw-canonical-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            canonical.SaveHf(dir);
            using var reloaded = ModelLoader.Load(dir);
            Assert.Equal(m.Config with { StoredDType = TensorDType.F32 }, reloaded.Config with { StoredDType = TensorDType.F32 });
            Assert.Equal(want, reloaded.Model.Forward(Input));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void ToyModelRoundTripsThroughTheCanonicalWeights()
    {
        using var toy = ToyModels.InductionCircuit();
        var input = ModelInput.Single([5, 9, 2, 7, 5, 9, 2, 7]);
        using var rebuilt = TransformerModel.Create(toy.ToCanonical());
        Assert.Equal(toy.Forward(input), rebuilt.Forward(input));
    }

    /// <summary>Checkpoint tensor names live in the family files (src/Headwise/Models) and generic readers (src/Headwise/Loading)
    /// only: every other file — the toy models, analyses, training's export — goes through the canonical weights.</summary>
    [Fact]
    public void CheckpointTensorNamesStayInModelsAndLoading()
    {
        var names = new Regex(@"q_proj|k_proj|v_proj|o_proj|c_attn|c_fc|embed_tokens|lm_head|embed_in\b|embed_out|input_layernorm|post_attention_layernorm|query_key_value|dense_h_to_4h|""transformer\.|model\.layers\.|gpt_neox\.|wte\.weight|wpe\.weight|ln_1\.|final_layer_norm");
        string src = Path.Combine(TestPaths.RepoRoot, "src");
        string[] allowed = [Path.Combine(src, "Headwise", "Models") + Path.DirectorySeparatorChar, Path.Combine(src, "Headwise", "Loading") + Path.DirectorySeparatorChar];
        var offenders = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !allowed.Any(a => f.StartsWith(a, StringComparison.Ordinal)) && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => names.IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(src, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "checkpoint tensor names outside Models/ and Loading/:\n" + string.Join("\n", offenders));
    }

    /// <summary>
    /// Each projection recomputed from the canonical weights equals its hook: q = ln1(x)·W_Q[h] + b_Q[h] = hook_q (before RoPE),
    /// k and v through the kv head of h, result_h = z_h·W_O[h], attn_out = Σ_h result_h + b_O, the MLP's pre/pre_linear/out,
    /// the norms from hook_scale, the embeddings and the unembedding.
    /// </summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void CanonicalWeightsReproduceTheHooks(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var model = m.Model;
        var c = m.Config;
        var (logits, cache) = model.RunWithCache(Input, _ => true);
        int rows = Input.Batch * Input.SeqLen, C = c.DModel, NH = c.NHeads, NKV = c.NKvHeads, HD = c.DHead, F = c.DMlp, V = c.VocabSize;

        // out (rows, n) =? x (rows, k) · W (k, n) + b
        static void Check(string what, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, ReadOnlySpan<float> want,
            int rows, int k, int n, int xStride, int xOffset, int wantStride, int wantOffset)
        {
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = b.IsEmpty ? 0 : b[j];
                    for (int i = 0; i < k; i++)
                    {
                        sum += (double)x[r * xStride + xOffset + i] * w[i * n + j];
                    }
                    float got = want[r * wantStride + wantOffset + j];
                    Assert.True(Math.Abs(sum - got) <= 1e-5 * Math.Max(1, Math.Abs(got)), $"{what} row {r} [{j}]: {sum} from the weights, {got} hooked");
                }
            }
        }

        void CheckNorm(string prefix, float[] x, NormWeights norm)
        {
            var scale = cache[prefix + ".hook_scale"].Data.AsSpan();
            var normalized = cache[prefix + ".hook_normalized"].Data.AsSpan();
            for (int r = 0; r < rows; r++)
            {
                double mean = 0;
                for (int i = 0; i < C && norm.Kind == NormKind.LayerNorm; i++)
                {
                    mean += x[r * C + i] / (double)C;
                }
                for (int i = 0; i < C; i++)
                {
                    double want = (x[r * C + i] - mean) / scale[r] * norm.Weight[i] + (norm.Bias?[i] ?? 0);
                    Assert.True(Math.Abs(want - normalized[r * C + i]) <= 1e-4, $"{prefix} row {r} [{i}]");
                }
            }
        }

        // embeddings
        var embed = cache["hook_embed"].Data.AsSpan();
        for (int r = 0; r < rows; r++)
        {
            Assert.True(embed.Slice(r * C, C).SequenceEqual(model.TokenEmbedding.Span.Slice(Input.Tokens[r] * C, C)));
        }
        Assert.Equal(c.Positions == PositionKind.Learned, model.PositionEmbedding is not null);
        if (model.PositionEmbedding is { } wpe)
        {
            var pos = cache["hook_pos_embed"].Data.AsSpan();
            for (int r = 0; r < rows; r++)
            {
                Assert.True(pos.Slice(r * C, C).SequenceEqual(wpe.Span.Slice(r % Input.SeqLen * C, C)));
            }
        }

        for (int l = 0; l < c.NLayers; l++)
        {
            string b = $"blocks.{l}.";
            var a = model.GetAttentionWeights(l);
            var resid = cache[b + "hook_resid_pre"].Data;
            CheckNorm(b + "ln1", resid, model.AttentionNorm(l));
            var x = cache[b + "ln1.hook_normalized"].Data.AsSpan();
            var (q, k, v) = (cache[b + "attn.hook_q"].Data, cache[b + "attn.hook_k"].Data, cache[b + "attn.hook_v"].Data);
            for (int h = 0; h < NH; h++)
            {
                int j = a.KvHeadOf(h);
                Assert.Equal(h / (NH / NKV), j);
                Check($"{b}q head {h}", x, a.Q(h), a.BQ is null ? default : a.BQ.AsSpan(h * HD, HD), q, rows, C, HD, C, 0, NH * HD, h * HD);
                Check($"{b}k head {j}", x, a.K(j), a.BK is null ? default : a.BK.AsSpan(j * HD, HD), k, rows, C, HD, C, 0, NKV * HD, j * HD);
                Check($"{b}v head {j}", x, a.V(j), a.BV is null ? default : a.BV.AsSpan(j * HD, HD), v, rows, C, HD, C, 0, NKV * HD, j * HD);
                Check($"{b}result head {h}", cache[b + "attn.hook_z"].Data.AsSpan(), a.O(h), default, cache[b + "attn.hook_result"].Data.AsSpan(),
                    rows, HD, C, NH * HD, h * HD, NH * C, h * C);
            }
            // attn_out = z · W_O (as one (NH·HD, C) matrix) + b_O
            Check($"{b}attn_out", cache[b + "attn.hook_z"].Data.AsSpan(), a.WO, a.BO, cache[b + "hook_attn_out"].Data.AsSpan(), rows, NH * HD, C, NH * HD, 0, C, 0);

            var mlp = model.GetMlpWeights(l);
            var mlpIn = (c.ParallelResidual ? resid : cache[b + "hook_resid_mid"].Data);
            CheckNorm(b + "ln2", mlpIn, model.MlpNorm(l));
            var x2 = cache[b + "ln2.hook_normalized"].Data.AsSpan();
            Assert.Equal(c.GatedMlp, mlp.WGate is not null);
            if (mlp.WGate is { } gate)
            {
                Check($"{b}mlp pre (gate)", x2, gate, mlp.BGate, cache[b + "mlp.hook_pre"].Data.AsSpan(), rows, C, F, C, 0, F, 0);
                Check($"{b}mlp pre_linear", x2, mlp.WIn, mlp.BIn, cache[b + "mlp.hook_pre_linear"].Data.AsSpan(), rows, C, F, C, 0, F, 0);
            }
            else
            {
                Check($"{b}mlp pre", x2, mlp.WIn, mlp.BIn, cache[b + "mlp.hook_pre"].Data.AsSpan(), rows, C, F, C, 0, F, 0);
            }
            Check($"{b}mlp out", cache[b + "mlp.hook_post"].Data.AsSpan(), mlp.WOut, mlp.BOut, cache[b + "hook_mlp_out"].Data.AsSpan(), rows, F, C, F, 0, C, 0);
        }

        // logits = ln_final(x) · W_Uᵀ
        var final = cache["ln_final.hook_normalized"].Data.AsSpan();
        CheckNorm("ln_final", cache[$"blocks.{c.NLayers - 1}.hook_resid_post"].Data, model.FinalNormWeights);
        var wU = model.Unembedding.W.Span;
        Assert.Equal(c.TiedEmbeddings, model.Unembedding.W == model.TokenEmbedding);
        Check("logits", final, Transpose(wU, V, C), default, logits, rows, C, V, C, 0, V, 0);
    }

    private static float[] Transpose(ReadOnlySpan<float> a, int rows, int cols)
    {
        var t = new float[a.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
