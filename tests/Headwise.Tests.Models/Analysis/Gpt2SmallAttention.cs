using System.Text.Json;
using Headwise.Loading;

namespace Headwise.Tests.Models.Analysis;

/// <summary>
/// ../shared/models/gpt2-small-attention holds GPT-2 small's real attention weights, LayerNorms and position embeddings, but no
/// token embedding and no MLP weight matrices. This completes it into a loadable checkpoint in a temp directory — the original
/// file untouched (linked in as one shard), plus a second shard with a random token embedding (vocabulary cut to
/// <see cref="Vocab"/>) and a zero MLP of width 1 — so results from it concern the attention weights only.
/// </summary>
public sealed class Gpt2SmallAttention : IDisposable
{
    public const int Vocab = 2048;

    public string Dir { get; }

    private Gpt2SmallAttention(string dir) => Dir = dir;

    public static string? Source => TestPaths.Shared is { } s && File.Exists(Path.Combine(s, "models", "gpt2-small-attention", "gpt2-small-attention.f16.safetensors"))
        ? Path.Combine(s, "models", "gpt2-small-attention", "gpt2-small-attention.f16.safetensors") : null;

    /// <summary>The completed checkpoint, or the calling test is skipped (a clone without ../shared).</summary>
    public static Gpt2SmallAttention Create()
    {
        string? src = Source;
        if (src is null)
        {
            Assert.Skip("../shared/models/gpt2-small-attention is absent (project cloned without the shared data)");
        }
        string dir = Path.Combine(Path.GetTempPath(), "headwise-gpt2-attn-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        // a copy, not a symbolic link: the loader sizes the mapping from the link itself (engine issue, reported)
        File.Copy(src, Path.Combine(dir, "attention.safetensors"));
        const int C = 768, L = 12;
        var rng = new Random(1);
        var wte = new float[Vocab * C];
        for (int i = 0; i < wte.Length; i++)
        {
            wte[i] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        }
        var extra = new List<(string, int[], ReadOnlyMemory<float>)> { ("transformer.wte.weight", [Vocab, C], wte) };
        var map = new Dictionary<string, string>();
        using (var f = SafeTensorsFile.Open(src))
        {
            foreach (var name in f.Tensors.Keys.Where(n => !n.EndsWith("mlp.c_fc.bias", StringComparison.Ordinal)))
            {
                map[name] = "attention.safetensors";
            }
        }
        for (int l = 0; l < L; l++)
        {
            string p = $"transformer.h.{l}.mlp.";
            extra.Add((p + "c_fc.weight", [C, 1], new float[C]));
            extra.Add((p + "c_fc.bias", [1], new float[1]));
            extra.Add((p + "c_proj.weight", [1, C], new float[C]));
        }
        SafeTensorsWriter.Write(Path.Combine(dir, "completion.safetensors"), extra);
        foreach (var (name, _, _) in extra)
        {
            map[name] = "completion.safetensors";
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), JsonSerializer.Serialize(new { weight_map = map }));
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new
        {
            model_type = "gpt2",
            architectures = new[] { "GPT2LMHeadModel" },
            n_embd = C,
            n_head = 12,
            n_layer = L,
            n_inner = 1,
            n_positions = 1024,
            vocab_size = Vocab,
            layer_norm_epsilon = 1e-5,
            activation_function = "gelu_new",
            tie_word_embeddings = true,
        }));
        return new Gpt2SmallAttention(dir);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
