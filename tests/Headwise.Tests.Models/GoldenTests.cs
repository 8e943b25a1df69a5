using System.Text.Json;
using Headwise.Generation;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Models;

/// <summary>
/// Every family and quirk against logits computed by an independent PyTorch implementation
/// (dev/reference/make_goldens.py, following the Hugging Face modeling code). fp32 throughout: max |Δlogit| ≤ 1e-4.
/// </summary>
public class GoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        // model goldens are the folders with a golden.json (train/ holds the trainer's goldens)
        foreach (var dir in Directory.GetDirectories(TestPaths.Goldens).Where(d => File.Exists(Path.Combine(d, "golden.json"))).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(dir));
        }
        return data;
    }

    private sealed record Scenario(string Name, int[][] InputIds, int[][] AttentionMask, string LogitsTensor);

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsMatchReference(string caseName)
    {
        string dir = Path.Combine(TestPaths.Goldens, caseName);
        using var golden = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "golden.json")));
        double tolerance = golden.RootElement.GetProperty("tolerance").GetDouble();
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        using var loaded = ModelLoader.Load(dir);
        int V = loaded.Config.VocabSize;

        foreach (var s in golden.RootElement.GetProperty("scenarios").EnumerateArray())
        {
            var ids = s.GetProperty("input_ids").Deserialize<int[][]>()!;
            var mask = s.GetProperty("attention_mask").Deserialize<int[][]>()!;
            int B = ids.Length, T = ids[0].Length;
            var input = new ModelInput(ids.SelectMany(r => r).ToArray(), B, T, mask.SelectMany(r => r).Select(m => (byte)m).ToArray());
            var logits = loaded.Model.Forward(input);
            var want = ReadF32(expected, s.GetProperty("logits_tensor").GetString()!);
            Assert.Equal(want.Length, logits.Length);

            double maxDiff = 0;
            for (int i = 0; i < B * T; i++)
            {
                if (input.AttentionMask![i] == 0)
                {
                    continue; // logits at padding are undefined in the reference too
                }
                for (int v = 0; v < V; v++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(logits[i * V + v] - want[i * V + v]));
                }
            }
            output.WriteLine($"{caseName}/{s.GetProperty("name").GetString()}: max |Δlogit| = {maxDiff:E2} (tolerance {tolerance:E0}) {(maxDiff <= tolerance ? "OK" : "NOT OK")}");
            Assert.True(maxDiff <= tolerance, $"{caseName}/{s.GetProperty("name").GetString()}: max |Δlogit| {maxDiff} > {tolerance}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardIntoABufferWritesTheSameLogitsWithoutAllocating(string caseName)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, caseName));
        var input = ModelInput.Single([1, 5, 9, 2, 7, 3]);
        var fresh = loaded.Model.Forward(input);
        var buffer = new float[fresh.Length];
        Assert.Same(buffer, loaded.Model.Forward(input, null, buffer));
        Assert.Equal(fresh, buffer);
        // a buffer of another length is not used: a new array of the right length comes back
        var other = new float[fresh.Length + 1];
        var result = loaded.Model.Forward(input, null, other);
        Assert.NotSame(other, result);
        Assert.Equal(fresh, result);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void KvCacheBytesPerTokenIsWhatTheCacheAllocates(string caseName)
    {
        string dir = Path.Combine(TestPaths.Goldens, caseName);
        using var loaded = ModelLoader.Load(dir);
        var c = loaded.Config;
        // from the checkpoint's numbers: layers × (keys + values) × kv heads × head width × float32 — or, for multi-head latent
        // attention, layers × (kv_lora_rank + qk_rope_head_dim) × float32: the latent and the shared rotary key, nothing per head
        long perToken = c.Mla is { } mla ? (long)c.NLayers * (mla.KvLoraRank + mla.QkRopeHeadDim) * 4 : (long)c.NLayers * 2 * c.NKvHeads * c.DHead * 4;
        Assert.Equal(perToken, loaded.Model.KvCacheBytesPerToken);
        // measured: a fresh cache for 3 sequences of 10 positions holds exactly 30 tokens' worth
        loaded.Model.ResetCache(3, 10);
        Assert.Equal(30 * loaded.Model.KvCacheBytesPerToken, loaded.Model.KvCacheAllocatedBytes);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GreedyContinuationMatchesReference(string caseName)
    {
        string dir = Path.Combine(TestPaths.Goldens, caseName);
        using var golden = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "golden.json")));
        var greedy = golden.RootElement.GetProperty("greedy");
        var prompt = greedy.GetProperty("prompt").Deserialize<int[]>()!;
        var want = greedy.GetProperty("tokens").Deserialize<int[]>()!;
        using var loaded = ModelLoader.Load(dir);
        // The engine decodes with its KV cache; the reference recomputed the whole sequence at every step.
        var got = Generator.Generate(loaded.Model, prompt, new GenerationOptions { MaxNewTokens = want.Length }).ToArray();
        Assert.Equal(want, got);
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("gpt2_tied")]
    [InlineData("neox_parallel")]
    public void BatchedLeftPaddedGenerationEqualsOneByOne(string caseName)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, caseName));
        int[][] prompts = [[5, 9, 13, 2, 7, 30], [11, 4], [3, 8, 8, 1]];
        var options = new GenerationOptions { MaxNewTokens = 8 };
        var batched = Generator.GenerateBatch(loaded.Model, prompts, options);
        for (int b = 0; b < prompts.Length; b++)
        {
            var alone = Generator.Generate(loaded.Model, prompts[b], options).ToArray();
            Assert.Equal(alone, batched[b]);
        }
    }

    internal static float[] ReadF32(SafeTensorsFile file, string name)
    {
        var entry = file.Tensors[name];
        Assert.Equal(TensorDType.F32, entry.DType);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.Bytes(entry)).ToArray();
    }
}
