using Headwise.Loading;

namespace Headwise.Tests.Models.Restructure;

/// <summary>What the restructuring tests share: every family's golden, one token sequence, one loader and one comparison.</summary>
internal static class RestructureGoldens
{
    /// <summary>Every family's golden a restructuring must be lossless on.</summary>
    public static TheoryData<string> Families() => new()
    {
        "gpt2_tied", "gpt2_untied", "gpt2_bf16", "llama_mha", "llama_gqa", "mistral", "qwen2", "llama_f16", "llama_sharded",
        "neox_parallel", "neox_sequential",
    };

    public static readonly int[] Tokens = Enumerable.Range(0, 12).Select(i => (i * 37 + 11) % 90 + 3).ToArray();

    public static float MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    public static LoadedModel Load(string name) => ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));
}
