using Headwise.Generation;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Tests.Models.Sparse;

/// <summary>
/// The rolling KV cache (window:W,sinks:S in generate) against a full recomputation, step by step: at every step the
/// reference runs the cache's tokens through an ordinary forward — positions 0 .. n − 1, so the new token is at its slot —
/// with each older token's pre-RoPE key and value (hook_k, hook_v) replaced by the ones it got when it entered. RoPE then
/// rotates every key at its slot, exactly what the rolling cache documents; for learned positions the stored keys and
/// values carry the position each token entered at, as in the cache.
/// </summary>
public class RollingCacheTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-4f; // RoPE of a key at its slot vs RoPE of the same key in another buffer: same math, different blocking

    [Theory]
    [InlineData("llama_gqa", 2, 5)]
    [InlineData("llama_mha", 0, 6)]
    [InlineData("gpt2_tied", 3, 4)]
    [InlineData("neox_parallel", 1, 5)]
    [InlineData("qwen2", 4, 3)]
    public void RollingCacheEqualsRecomputationOverTheCachedTokens(string caseName, int sinks, int window)
    {
        string dir = Path.Combine(TestPaths.Goldens, caseName);
        using var rolling = ModelLoader.Load(dir);
        using var reference = ModelLoader.Load(dir);
        var rng = new Random(5);
        var stream = Enumerable.Range(0, 3 * (sinks + window) + 4).Select(_ => rng.Next(rolling.Config.VocabSize)).ToArray();
        Check(rolling.Model, reference.Model, stream, sinks, window, caseName);
    }

    [Fact]
    public void RollingCacheEqualsRecomputationOnStories260K()
    {
        string dir = TestPaths.RequireStories260K();
        using var rolling = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        using var reference = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"));
        var stream = rolling.RequireTokenizer().Encode(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "examples", "texts", "stories.txt")));
        Check(rolling.Model, reference.Model, stream[..Math.Min(stream.Length, 120)], 4, 28, "stories260K");
    }

    [Fact]
    public void GenerationRunsPastTheContextInBoundedMemory()
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        int context = loaded.Config.MaxPositions;
        var produced = StreamingGenerator.Generate(loaded.Model, [1, 2, 3], new GenerationOptions { MaxNewTokens = 3 * context }, 4, 16).ToArray();
        Assert.Equal(3 * context, produced.Length);
        Assert.Equal(20, loaded.Model.PastLength);
        Assert.Equal(20 * loaded.Model.KvCacheBytesPerToken, loaded.Model.KvCacheAllocatedBytes);
    }

    [Fact]
    public void RollingCacheRefusesWhatItCannotHold()
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "llama_gqa"));
        var e = Assert.Throws<InvalidInputException>(() => loaded.Model.ResetRollingCache(4, loaded.Config.MaxPositions));
        Assert.Contains("longer than the model's context", e.Message);
        Assert.Throws<InvalidInputException>(() => loaded.Model.ResetRollingCache(4, 0));
        using var mla = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "deepseek_v3_qlora"));
        Assert.Throws<InvalidInputException>(() => mla.Model.ResetRollingCache(2, 8));
    }

    private void Check(TransformerModel rolling, TransformerModel reference, int[] stream, int sinks, int window, string label)
    {
        int L = reference.Config.NLayers, V = reference.Config.VocabSize, capacity = sinks + window;
        var cacheTokens = new List<int>();
        var keys = new List<float[]>[L];   // per layer, per slot: the token's pre-RoPE key row (NKV·HD)
        var values = new List<float[]>[L];
        for (int l = 0; l < L; l++)
        {
            keys[l] = [];
            values[l] = [];
        }
        rolling.ResetRollingCache(sinks, window);
        double worst = 0;
        foreach (int token in stream)
        {
            var got = rolling.ForwardRolling(token);
            if (cacheTokens.Count == capacity)
            {
                cacheTokens.RemoveAt(sinks);
                for (int l = 0; l < L; l++)
                {
                    keys[l].RemoveAt(sinks);
                    values[l].RemoveAt(sinks);
                }
            }
            cacheTokens.Add(token);
            int n = cacheTokens.Count;
            var hooks = new HookSet(L);
            for (int l = 0; l < L; l++)
            {
                hooks.Add($"blocks.{l}.attn.hook_k", Replay(keys[l], n));
                hooks.Add($"blocks.{l}.attn.hook_v", Replay(values[l], n));
            }
            var all = reference.Forward(ModelInput.Single([.. cacheTokens]), hooks);
            var want = all.AsSpan((n - 1) * V, V);
            for (int v = 0; v < V; v++)
            {
                worst = Math.Max(worst, Math.Abs(want[v] - got[v]));
            }
        }
        output.WriteLine($"{label} sinks {sinks} window {window}: {stream.Length} steps, max |Δlogit| = {worst:E2}");
        Assert.True(worst <= Tolerance, $"{label}: max |Δlogit| {worst} > {Tolerance}");
    }

    // rows 0 .. n − 2 of [1, n, NKV, HD] become the stored rows; row n − 1 (the new token's) is stored
    private static HookFunction Replay(List<float[]> stored, int n) => a =>
    {
        int row = a.Data.Length / n;
        var data = a.Data.Span;
        for (int j = 0; j < n - 1; j++)
        {
            stored[j].CopyTo(data.Slice(j * row, row));
        }
        stored.Add(data.Slice((n - 1) * row, row).ToArray());
    };
}
