using Headwise.Generation;
using Headwise.Models;

namespace Headwise.Tests.Models;

/// <summary>A decode step that is handed the last step's logits back allocates nothing: no logits row (on GPT-2 small a
/// 200 KB large-object allocation per token), no per-step arrays in the run state, the KV cache or the kernels.</summary>
public class DecodeAllocationTests
{
    [Theory]
    [InlineData("gpt2_tied")]
    [InlineData("llama_gqa")]
    [InlineData("neox_parallel")]
    public void DecodeStepsIntoAReusedBufferDoNotAllocate(string caseName)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, caseName));
        var model = loaded.Model;
        const int promptTokens = 6, warmUp = 4, steps = 16;
        model.ResetCache(1, promptTokens + warmUp + steps);
        var logits = model.ForwardChunk([5, 9, 13, 2, 7, 3], null, promptTokens, null, lastOnly: true, logitsBuffer: null);
        var step = new int[1];
        void Decode(int n)
        {
            for (int i = 0; i < n; i++)
            {
                step[0] = Sampler.ArgMax(logits);
                var next = model.ForwardChunk(step, null, 1, null, lastOnly: true, logits);
                Assert.Same(logits, next);
            }
        }
        Decode(warmUp); // JIT, per-thread scratch
        long before = GC.GetAllocatedBytesForCurrentThread();
        Decode(steps);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{caseName}: {steps} decode steps allocated {allocated} bytes");
    }

    [Fact]
    public void ReusedBufferGivesTheSameTokensAsFreshArrays()
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var model = loaded.Model;
        int[] prompt = [5, 9, 13, 2];
        const int newTokens = 10;
        model.ResetCache(1, prompt.Length + newTokens);
        var fresh = new List<float[]> { model.ForwardChunk(prompt, null, prompt.Length, lastOnly: true) };
        for (int i = 0; i < newTokens; i++)
        {
            fresh.Add(model.ForwardChunk([Sampler.ArgMax(fresh[^1])], null, 1, lastOnly: true));
        }
        model.ResetCache(1, prompt.Length + newTokens);
        var reused = model.ForwardChunk(prompt, null, prompt.Length, null, lastOnly: true, logitsBuffer: null);
        for (int i = 0; ; i++)
        {
            Assert.Equal(fresh[i], reused); // bitwise: the same sums, only the destination differs
            if (i == newTokens)
            {
                break;
            }
            reused = model.ForwardChunk([Sampler.ArgMax(reused)], null, 1, null, lastOnly: true, reused);
        }
    }
}
