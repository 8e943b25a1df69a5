using Headwise.Loading;

namespace Headwise.Tests.Models;

/// <summary>
/// Every config is validated on load, and the message names the field to fix as the file spells it: config.json's
/// <c>n_head</c> / <c>num_attention_heads</c>…, or the llama2.c header's <c>n_heads</c>…. One test per rule.
/// </summary>
public sealed class ConfigValidationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const string Gpt2 = """ "model_type": "gpt2", "vocab_size": 50, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 32 """;
    private const string Llama = """ "model_type": "llama", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 24, "max_position_embeddings": 32 """;
    private const string NeoX = """ "model_type": "gpt_neox", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 32 """;

    /// <summary>Writes the fields as config.json, each override replacing (or adding) one field's value, and reads it.</summary>
    private ModelConfig Read(string fields, params (string Key, string Value)[] overrides)
    {
        foreach (var (key, value) in overrides)
        {
            int at = fields.IndexOf($"\"{key}\"", StringComparison.Ordinal);
            if (at < 0)
            {
                fields += $", \"{key}\": {value}";
                continue;
            }
            int start = fields.IndexOf(':', at) + 1, end = fields.IndexOf(',', start);
            fields = fields[..start] + " " + value + (end < 0 ? " " : fields[end..]);
        }
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N")[..8] + ".json");
        File.WriteAllText(path, "{" + fields + "}");
        return HfConfigReader.Read(path);
    }

    private string Fails(string fields, params (string Key, string Value)[] overrides) =>
        Assert.Throws<ModelFormatException>(() => Read(fields, overrides)).Message;

    [Fact]
    public void TheBaseConfigsAreValid()
    {
        Assert.Equal(8, Read(Gpt2).DHead);
        Assert.Equal(4, Read(Llama).DHead);
        Assert.Equal(8, Read(NeoX).DHead);
    }

    [Fact]
    public void Gpt2HeadsMustDivideTheWidth()
    {
        // n_embd 100, n_head 3 used to pass info (d_head 33) and crash generate
        var m = Fails(Gpt2, ("n_embd", "100"), ("n_head", "3"));
        Assert.Contains("n_embd (100) must be a multiple of n_head (3)", m);
    }

    [Fact]
    public void LlamaHeadsMustDivideTheWidthUnlessHeadDimIsGiven()
    {
        Assert.Contains("hidden_size (18) must be a multiple of num_attention_heads (4)", Fails(Llama, ("hidden_size", "18")));
        var c = Read(Llama, ("hidden_size", "18"), ("head_dim", "8"));
        Assert.Equal(8, c.DHead);
    }

    [Fact]
    public void NeoXHeadsMustDivideTheWidth() =>
        Assert.Contains("hidden_size (18) must be a multiple of num_attention_heads (4)", Fails(NeoX, ("hidden_size", "18"), ("num_attention_heads", "4")));

    [Fact]
    public void KvHeadsMustDivideHeads() =>
        Assert.Contains("num_attention_heads (4) must be a multiple of num_key_value_heads (3)", Fails(Llama, ("num_key_value_heads", "3")));

    [Fact]
    public void RotaryDimsMustBeEven()
    {
        // d_head 12 × rotary_pct 0.25 = 3 rotary dims
        Assert.Contains("rotary_pct", Fails(NeoX, ("hidden_size", "24"), ("rotary_pct", "0.25")));
        Assert.Contains("head_dim", Fails(Llama, ("head_dim", "5")));
    }

    [Fact]
    public void RotaryDimsMustNotExceedTheHeadSize() =>
        Assert.Contains("rotary_pct", Fails(NeoX, ("rotary_pct", "1.5")));

    [Theory]
    [InlineData("gpt2", "n_embd")]
    [InlineData("gpt2", "n_layer")]
    [InlineData("gpt2", "n_head")]
    [InlineData("gpt2", "n_inner")]
    [InlineData("llama", "hidden_size")]
    [InlineData("llama", "num_hidden_layers")]
    [InlineData("llama", "num_attention_heads")]
    [InlineData("llama", "num_key_value_heads")]
    [InlineData("llama", "intermediate_size")]
    [InlineData("llama", "head_dim")]
    [InlineData("gpt_neox", "intermediate_size")]
    public void EverySizeMustBePositive(string type, string field)
    {
        string fields = type switch { "gpt2" => Gpt2, "llama" => Llama, _ => NeoX };
        foreach (var value in new[] { "0", "-4" })
        {
            Assert.Contains($"{field} must be positive (got {value})", Fails(fields, (field, value)));
        }
    }

    [Theory]
    [InlineData("gpt2", "vocab_size")]
    [InlineData("gpt2", "n_positions")]
    [InlineData("llama", "vocab_size")]
    [InlineData("llama", "max_position_embeddings")]
    [InlineData("gpt_neox", "max_position_embeddings")]
    public void VocabularyAndContextMustBeAtLeastOne(string type, string field)
    {
        string fields = type switch { "gpt2" => Gpt2, "llama" => Llama, _ => NeoX };
        Assert.Contains($"{field} must be positive (got 0)", Fails(fields, (field, "0")));
    }

    [Fact]
    public void SlidingWindowMustNotBeNegative()
    {
        string mistral = Llama.Replace("\"llama\"", "\"mistral\"", StringComparison.Ordinal);
        Assert.Equal(16, Read(mistral, ("sliding_window", "16")).SlidingWindow);
        Assert.Contains("sliding_window must be 0 or more (got -1)", Fails(mistral, ("sliding_window", "-1")));
    }

    [Fact]
    public void TheMessageNamesTheFile()
    {
        var m = Fails(Gpt2, ("n_head", "0"));
        Assert.Contains(_dir, m);
        Assert.Contains(".json", m);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The llama2.c header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len

    private string HeaderFails(params int[] header)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N")[..8] + ".bin");
        File.WriteAllBytes(path, header.SelectMany(BitConverter.GetBytes).ToArray());
        return Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose()).Message;
    }

    [Fact]
    public void Llama2cHeadsMustDivideDim() =>
        Assert.Contains("dim (100) must be a multiple of n_heads (3)", HeaderFails(100, 64, 2, 3, 3, 32, 16));

    [Fact]
    public void Llama2cKvHeadsMustDivideHeads() =>
        Assert.Contains("n_heads (4) must be a multiple of n_kv_heads (3)", HeaderFails(64, 64, 2, 4, 3, 32, 16));

    [Theory]
    [InlineData(1, "hidden_dim")]
    [InlineData(2, "n_layers")]
    [InlineData(3, "n_heads")]
    [InlineData(4, "n_kv_heads")]
    [InlineData(5, "vocab_size")]
    [InlineData(6, "seq_len")]
    public void Llama2cSizesMustBePositive(int index, string field)
    {
        int[] header = [64, 64, 2, 4, 4, 32, 16];
        header[index] = 0;
        var m = HeaderFails(header);
        Assert.Contains("llama2.c header", m);
        Assert.Contains($"{field} must be positive (got 0)", m);
    }

    [Fact]
    public void Llama2cRotaryHeadSizeMustBeEven() =>
        Assert.Contains("dim / n_heads gives 5 rotary dims", HeaderFails(20, 64, 2, 4, 4, 32, 16));

    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void APickleOnlyDirectoryIsNamedAsSuch()
    {
        string d = Path.Combine(_dir, "pickled");
        Directory.CreateDirectory(d);
        File.WriteAllBytes(Path.Combine(d, "pytorch_model.bin"), [0x80, 0x02, 0x7d, 0x71, 0x00]);
        var m = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(d).Dispose()).Message;
        Assert.Contains("pytorch_model.bin", m);
        Assert.Contains("pickle", m);
        Assert.Contains("safetensors", m);
    }
}
