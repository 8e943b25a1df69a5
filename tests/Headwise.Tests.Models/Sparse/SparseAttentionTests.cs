using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Models;
using Headwise.Sparse;

namespace Headwise.Tests.Models.Sparse;

/// <summary>
/// Every spec against the straightforward reference: the mask built explicitly here (from the spec's rule, or from the key
/// blocks the policy chose), applied by a hook on hook_attn_scores in the existing three-pass path, while the spec itself
/// runs on the blocked kernel. On every causal family's golden and on stories260K. A spec that keeps everything (density 1)
/// equals dense within 1e-5; a hook that observes the pattern moves the spec onto the masked path, which equals it too.
/// </summary>
public class SparseAttentionTests(ITestOutputHelper output)
{
    // a sparse spec runs on the blocked kernel (online softmax over key tiles) and the reference on the three passes: the
    // sums go in another order, so logits agree to the goldens' 1e-4; a spec at density 1 runs the dense path itself (1e-5)
    private const float MaskTolerance = 1e-4f;
    private const float DenseTolerance = 1e-5f;

    public static TheoryData<string> CausalGoldens()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(TestPaths.Goldens).Where(d => File.Exists(Path.Combine(d, "golden.json"))).Order(StringComparer.Ordinal))
        {
            if (!Path.GetFileName(dir).StartsWith("vit", StringComparison.Ordinal))
            {
                data.Add(Path.GetFileName(dir));
            }
        }
        return data;
    }

    private static readonly string[] SparseSpecs = ["window:7,sinks:2", "window:5,sinks:0", "topk-blocks:4,3", "topk-blocks:4,2,proxy:2", "chunks:4,2"];
    private static readonly string[] FullSpecs = ["window:1000,sinks:0", "topk-blocks:4,1000", "topk-blocks:8,1000,proxy:1", "chunks:4,1000"];

    private static int[] Ids(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    [Theory]
    [MemberData(nameof(CausalGoldens))]
    public void EverySpecEqualsTheExplicitMaskOnTheGolden(string caseName)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, caseName));
        var ids = Ids(Math.Min(37, loaded.Config.MaxPositions), loaded.Config.VocabSize, 1);
        foreach (string spec in SparseSpecs)
        {
            CheckAgainstMask(loaded.Model, ids, spec, $"{caseName} {spec}", expectSparse: true);
        }
    }

    [Theory]
    [MemberData(nameof(CausalGoldens))]
    public void SpecsAtDensityOneEqualDense(string caseName)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, caseName));
        CheckDensityOne(loaded.Model, Ids(Math.Min(37, loaded.Config.MaxPositions), loaded.Config.VocabSize, 2), caseName);
    }

    [Fact]
    public void EverySpecEqualsTheExplicitMaskOnStories260K()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var ids = loaded.RequireTokenizer().Encode(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "examples", "texts", "stories.txt")));
        ids = ids[..Math.Min(ids.Length, 160)];
        foreach (string spec in (string[])["window:32,sinks:4", "window:16,sinks:0", "topk-blocks:16,3", "topk-blocks:16,3,proxy:2", "chunks:16,3"])
        {
            CheckAgainstMask(loaded.Model, ids, spec, $"stories260K {spec}", expectSparse: true);
        }
        CheckDensityOne(loaded.Model, ids, "stories260K");
    }

    [Fact]
    public void TheMaskedPathUnderObserversEqualsTheBlockedKernel()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"));
        var ids = Ids(200, loaded.Config.VocabSize, 6);
        foreach (string spec in (string[])["window:40,sinks:4", "topk-blocks:32,3,proxy:2", "chunks:32,3"])
        {
            CheckAgainstMask(loaded.Model, ids, spec, $"stories260K random {spec}", expectSparse: true);
            loaded.Model.SparseAttention = AttentionSpec.Parse(spec);
            var blocked = loaded.Model.Forward(ModelInput.Single(ids));
            var (masked, cache) = loaded.Model.RunWithCache(ModelInput.Single(ids), name => name.EndsWith("hook_pattern", StringComparison.Ordinal));
            loaded.Model.SparseAttention = null;
            AssertClose(blocked, masked, $"stories260K {spec} blocked vs masked", null, loaded.Config.VocabSize, MaskTolerance);
            // the observed pattern is the sparse one: a row of layer 0 puts no weight on a dropped key
            var p = cache["blocks.0.attn.hook_pattern"];
            if (spec.StartsWith("window", StringComparison.Ordinal))
            {
                Assert.Equal(0f, p[0, 0, 199, 100]);
                Assert.True(p[0, 0, 199, 2] > 0);
            }
        }
    }

    [Theory]
    [InlineData(200, 40, 4, 8, 2)]
    [InlineData(160, 32, 4, 8, 2)]
    [InlineData(200, 40, 0, 4, 4)]
    [InlineData(100, 17, 3, 2, 1)]
    [InlineData(200, 40, 4, 8, 4, 10f)]
    [InlineData(200, 40, 4, 8, 4, 30f)]
    public void BlockedKernelFollowsWindowAndSinksAsTheThreePasses(int T, int window, int sinks, int NH, int NKV, float magnitude = 1)
    {
        const int HD = 8;
        var rng = new Random(7);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var q = Random(T * NH * HD).Select(x => x * magnitude).ToArray();
        var k = Random(T * NKV * HD);
        var v = Random(T * NKV * HD);
        var sparsity = new AttentionSparsity { Window = window, Sinks = sinks };
        var blocked = new float[T * NH * HD];
        var ones = Enumerable.Repeat((byte)1, T).ToArray();
        Kernels.BlockedAttention(q, k, v, blocked, T, T, NH, NKV, HD, 0, 0.35f, ones, 0, sparsity);
        var scores = new float[NH * T * T];
        Kernels.AttentionScores(q, k, scores, T, T, NH, NKV, HD, 0, 0.35f, default, 0);
        SparseMask.Apply(scores, sparsity, T, T, NH, 0);
        Kernels.MaskedSoftmax(scores, NH * T, T);
        var reference = new float[T * NH * HD];
        Kernels.AttentionApply(scores, v, reference, T, T, NH, NKV, HD);
        double max = 0;
        for (int j = 0; j < reference.Length; j++)
        {
            max = Math.Max(max, Math.Abs(reference[j] - blocked[j]));
        }
        output.WriteLine($"T {T} window {window} sinks {sinks}: max |Δz| = {max:E2}");
        Assert.True(max <= 1e-5, $"max |Δz| {max}");
    }

    [Fact]
    public void BatchedPaddedInputFollowsTheMaskPerSequence()
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        int V = loaded.Config.VocabSize;
        var input = ModelInput.Padded([Ids(20, V, 3), Ids(13, V, 4)], padLeft: true);
        foreach (string spec in (string[])["window:6,sinks:1", "topk-blocks:4,2", "chunks:4,2"])
        {
            var sparsities = new Dictionary<(int, int), AttentionSparsity>();
            var policy = AttentionSpec.Parse(spec);
            policy.Observer = (l, b, s) => sparsities[(l, b)] = s;
            loaded.Model.SparseAttention = policy;
            var sparse = loaded.Model.Forward(input);
            loaded.Model.SparseAttention = null;
            var reference = loaded.Model.Forward(input, MaskHooks(loaded.Model, (l, b, h, i, s) => Keep(sparsities[(l, b)], h, i, s)));
            AssertClose(reference, sparse, $"padded {spec}", input.AttentionMask, V, MaskTolerance);
        }
    }

    [Fact]
    public void TopKBlocksKeepsTheBestScoringBlocksWithBlockZeroAndTheDiagonal()
    {
        // one head, HD 2, blocks of 2: query block 3 (positions 6, 7) points along x; the keys of block 2 point along x,
        // block 1 along −x: K = 3 keeps blocks 0 and 3 (forced) and block 2 (the best of the rest), not block 1
        int T = 8, HD = 2;
        var q = new float[T * HD];
        var k = new float[T * HD];
        for (int t = 0; t < T; t++)
        {
            q[t * HD] = 1;
            k[t * HD] = t / 2 switch { 1 => -1, 2 => 1, _ => 0 };
        }
        var policy = new TopKBlocksPolicy(2, 3);
        var sparsity = policy.Select(0, 0, q, k, T, T, 1, 1, HD, 0, default);
        Assert.Equal([0, 2, 3], sparsity.Blocks!.KeyBlocks(0, 3).ToArray());
        Assert.Equal([0, 1, 2], sparsity.Blocks.KeyBlocks(0, 2).ToArray());
        Assert.Equal([0, 1], sparsity.Blocks.KeyBlocks(0, 1).ToArray());
        // causal pairs 36; dropped: block 1's keys (2) for query block 3's two queries
        Assert.Equal(32.0 / 36, policy.Density, 6);
    }

    [Fact]
    public void ChunksFollowTheTurnsOfTheKeys()
    {
        // block mean keys: x, x, y, y, x → boundaries before block 2 and block 4
        float[] blockKeys = [1, 0, 1, 0, 0, 1, 0, 1, 1, 0];
        Assert.Equal([0, 0, 1, 1, 2], ChunksPolicy.Segment(blockKeys, [2, 2, 2, 2, 2], 2));
    }

    [Theory]
    [InlineData("window:0,sinks:4", "window W must be at least 1")]
    [InlineData("topk-blocks:0,4", "block size B must be at least 1")]
    [InlineData("topk-blocks:16,0", "blocks kept K must be at least 1")]
    [InlineData("topk-blocks:16,-2", "blocks kept K must be at least 1")]
    [InlineData("topk-blocks:16", "expected topk-blocks:B,K[,proxy:P]")]
    [InlineData("topk-blocks:16,4,proxy:0", "proxy heads P must be at least 1")]
    [InlineData("chunks:8,x", "chunks kept K must be a whole number")]
    [InlineData("window:8,sink:4", "expected window:W,sinks:S")]
    [InlineData("sparse", "unknown kind 'sparse'")]
    [InlineData("dense:3", "dense takes no values")]
    public void MalformedSpecsAreRefusedWithOneLine(string spec, string expected)
    {
        var e = Assert.Throws<InvalidInputException>(() => AttentionSpec.Parse(spec));
        Assert.Contains(expected, e.Message);
        Assert.Contains(spec, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("dense")]
    [InlineData("window:64,sinks:4")]
    [InlineData("topk-blocks:16,4")]
    [InlineData("topk-blocks:16,4,proxy:2")]
    [InlineData("chunks:16,4")]
    public void SpecsRoundTrip(string spec) => Assert.Equal(spec, AttentionSpec.Parse(spec).Spec);

    // ---------------------------------------------------------------------------------------------------------------

    private void CheckAgainstMask(TransformerModel model, int[] ids, string spec, string label, bool expectSparse)
    {
        var policy = AttentionSpec.Parse(spec);
        var sparsities = new Dictionary<int, AttentionSparsity>();
        policy.Observer = (l, _, s) => sparsities[l] = s;
        model.SparseAttention = policy;
        var sparse = model.Forward(ModelInput.Single(ids));
        model.SparseAttention = null;

        // the explicit mask: the window rule written out, or the blocks the policy chose
        Func<int, int, int, int, int, bool> keep = policy is WindowPolicy w
            ? (_, _, _, i, s) => s <= i && (i - s < w.Window || s < w.Sinks)
            : (l, _, h, i, s) => Keep(sparsities[l], h, i, s);
        var reference = model.Forward(ModelInput.Single(ids), MaskHooks(model, keep));
        AssertClose(reference, sparse, label, null, model.Config.VocabSize, MaskTolerance);
        output.WriteLine($"{label}: density {policy.Density:F3}");
        if (expectSparse)
        {
            Assert.True(policy.Density < 1, $"{label}: density {policy.Density} — the test input should drop something");
        }
    }

    private void CheckDensityOne(TransformerModel model, int[] ids, string label)
    {
        var dense = model.Forward(ModelInput.Single(ids));
        foreach (string spec in FullSpecs)
        {
            var policy = AttentionSpec.Parse(spec);
            model.SparseAttention = policy;
            var sparse = model.Forward(ModelInput.Single(ids));
            model.SparseAttention = null;
            Assert.Equal(1.0, policy.Density);
            AssertClose(dense, sparse, $"{label} {spec} (density 1)", null, model.Config.VocabSize, DenseTolerance);
        }
    }

    // the key blocks read straight from the selection's rows, with the element rule written out
    private static bool Keep(AttentionSparsity sparsity, int h, int i, int s)
    {
        if (s > i || (sparsity.Window > 0 && i - s >= sparsity.Window && s >= sparsity.Sinks))
        {
            return false;
        }
        if (sparsity.Blocks is not { } b)
        {
            return true;
        }
        foreach (int kb in b.KeyBlocks(h, i / b.BlockSize))
        {
            if (kb == s / b.BlockSize)
            {
                return true;
            }
        }
        return false;
    }

    // hook_attn_scores [batch, head, qpos, kpos] set to −∞ where keep(layer, batch, head, query index, key) is false
    private static HookSet MaskHooks(TransformerModel model, Func<int, int, int, int, int, bool> keep)
    {
        var hooks = new HookSet(model.Config.NLayers);
        for (int l = 0; l < model.Config.NLayers; l++)
        {
            int layer = l;
            hooks.Add($"blocks.{l}.attn.hook_attn_scores", a =>
            {
                int B = a.Shape[0], NH = a.Shape[1], T = a.Shape[2], S = a.Shape[3];
                var data = a.Data.Span;
                for (int b = 0; b < B; b++)
                {
                    for (int h = 0; h < NH; h++)
                    {
                        for (int t = 0; t < T; t++)
                        {
                            for (int s = 0; s < S; s++)
                            {
                                if (!keep(layer, b, h, S - T + t, s))
                                {
                                    data[((b * NH + h) * T + t) * S + s] = float.NegativeInfinity;
                                }
                            }
                        }
                    }
                }
            });
        }
        return hooks;
    }

    private void AssertClose(float[] want, float[] got, string label, byte[]? mask, int V, float tolerance)
    {
        Assert.Equal(want.Length, got.Length);
        double max = 0;
        for (int j = 0; j < want.Length; j++)
        {
            if (mask is null || mask[j / V] != 0)
            {
                max = Math.Max(max, Math.Abs(want[j] - got[j]));
            }
        }
        output.WriteLine($"{label}: max |Δlogit| = {max:E2}");
        Assert.True(max <= tolerance, $"{label}: max |Δlogit| {max} > {tolerance}");
    }
}
