using System.Text;
using Headwise.Generation;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Models;

/// <summary>Every kind of bad input gets a typed exception whose message names the file, tensor or argument and what was expected.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-bad-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A copy of a golden model directory to damage.</summary>
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

    private static ModelFormatException LoadFails(string path) => Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());

    [Fact]
    public void MissingPathIsNamed()
    {
        var e = LoadFails(Path.Combine(_dir, "nope"));
        Assert.Contains("nope", e.Message);
        Assert.Contains("no such file", e.Message);
    }

    [Fact]
    public void MissingWeightsFileIsNamed()
    {
        string d = CopyOf("gpt2_tied");
        File.Delete(Path.Combine(d, "model.safetensors"));
        Assert.Contains("no model.safetensors", LoadFails(d).Message);
    }

    [Fact]
    public void TruncatedSafetensorsIsRefused()
    {
        string d = CopyOf("gpt2_tied");
        string f = Path.Combine(d, "model.safetensors");
        var bytes = File.ReadAllBytes(f);
        File.WriteAllBytes(f, bytes[..(bytes.Length - 100)]);
        var e = LoadFails(d);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("outside the data section", e.Message);
        File.WriteAllBytes(f, bytes[..5]);
        Assert.Contains("truncated", LoadFails(d).Message);
    }

    private static void WriteRawSafetensors(string path, string headerJson, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(headerJson);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((long)json.Length));
        f.Write(json);
        f.Write(new byte[dataBytes]);
    }

    [Fact]
    public void HeaderWhoseOffsetsLieIsRefused()
    {
        string f = Path.Combine(_dir, "lie.safetensors");
        // offsets inside the file but shorter than the shape needs
        WriteRawSafetensors(f, """{"a":{"dtype":"F32","shape":[4,4],"data_offsets":[0,32]}}""", 64);
        var e = Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f));
        Assert.Contains("'a'", e.Message);
        Assert.Contains("need 64", e.Message);
        // offsets beyond the end of the file
        WriteRawSafetensors(f, """{"a":{"dtype":"F32","shape":[4],"data_offsets":[1000,1016]}}""", 16);
        Assert.Contains("outside the data section", Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f)).Message);
        // overlapping tensors
        WriteRawSafetensors(f, """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", 24);
        Assert.Contains("overlap", Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f)).Message);
        // a header length larger than the file
        File.WriteAllBytes(f, [.. BitConverter.GetBytes(1L << 40), .. new byte[16]]);
        Assert.Contains("header length", Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f)).Message);
        // header that is not JSON
        WriteRawSafetensors(f, "{not json", 0);
        Assert.Contains("not valid JSON", Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f)).Message);
        // negative dimension
        WriteRawSafetensors(f, """{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}""", 16);
        Assert.Contains("non-negative", Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f)).Message);
    }

    [Fact]
    public void UnsupportedDtypeIsNamed()
    {
        string f = Path.Combine(_dir, "f64.safetensors");
        WriteRawSafetensors(f, """{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}""", 16);
        var e = Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(f));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("F64", e.Message);
    }

    [Theory]
    [InlineData(4097, null)]     // a small vocabulary (Headwise's own GPT-2 exports) has no id 50256: no BOS/EOS
    [InlineData(50257, 50256)]   // GPT-2's own vocabulary: GPT2Config's default <|endoftext|>
    public void Gpt2BosAndEosDefaultOnlyToAnIdTheVocabularyHas(int vocab, int? expected)
    {
        string f = Path.Combine(_dir, $"gpt2-{vocab}.json");
        File.WriteAllText(f, $$"""{"model_type": "gpt2", "vocab_size": {{vocab}}, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 32}""");
        var c = HfConfigReader.Read(f);
        Assert.Equal(expected, c.BosTokenId);
        Assert.Equal(expected, c.EosTokenId);
    }

    [Fact]
    public void MissingTensorAndWrongShapeAreNamed()
    {
        string d = CopyOf("llama_gqa");
        var config = HfConfigReader.Read(Path.Combine(d, "config.json"));
        using (var weights = ModelLoader.OpenWeights(d))
        {
            // rewrite the checkpoint without one tensor
            var kept = weights.Names.Where(n => n != "model.layers.1.mlp.up_proj.weight").ToList();
            var data = kept.Select(n => { var w = weights.GetAnyShape(n); return (n, w.Shape, (ReadOnlyMemory<float>)w.ToArray()); }).ToList();
            SafeTensorsWriter.Write(Path.Combine(d, "model.safetensors"), data);
        }
        var e = LoadFails(d);
        Assert.Contains("'model.layers.1.mlp.up_proj.weight'", e.Message);
        Assert.Contains("missing", e.Message);

        // a config that disagrees with the tensors' shapes
        string d2 = CopyOf("llama_gqa");
        string cfg = File.ReadAllText(Path.Combine(d2, "config.json"));
        File.WriteAllText(Path.Combine(d2, "config.json"), cfg.Replace($"\"intermediate_size\": {config.DMlp}", $"\"intermediate_size\": {config.DMlp + 8}"));
        var e2 = LoadFails(d2);
        Assert.Contains("shape", e2.Message);
        Assert.Contains("config implies", e2.Message);
    }

    [Fact]
    public void UnsupportedModelTypeIsNamed()
    {
        string d = CopyOf("gpt2_tied");
        File.WriteAllText(Path.Combine(d, "config.json"), """{"model_type": "bert", "hidden_size": 32}""");
        var e = LoadFails(d);
        Assert.Contains("config.json", e.Message);
        Assert.Contains("'bert'", e.Message);
        Assert.Contains("gpt2", e.Message);
    }

    [Fact]
    public void ImpossibleConfigIsRefused()
    {
        string d = CopyOf("llama_gqa");
        string cfg = File.ReadAllText(Path.Combine(d, "config.json"));
        File.WriteAllText(Path.Combine(d, "config.json"), cfg.Replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"));
        Assert.Contains("multiple of num_key_value_heads", LoadFails(d).Message);
    }

    [Fact]
    public void PickleIsRefusedWithAPointerToSafetensors()
    {
        string d = CopyOf("gpt2_tied");
        File.Delete(Path.Combine(d, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(d, "pytorch_model.bin"), [0x80, 0x02, 0x7d, 0x71, 0x00]);
        var e = LoadFails(d);
        Assert.Contains("pytorch_model.bin", e.Message);
        Assert.Contains("safetensors", e.Message);
        Assert.Contains("execute", e.Message);
        // a torch.save zip archive passed directly, whatever its name
        string zip = Path.Combine(_dir, "weights.bin");
        File.WriteAllBytes(zip, [(byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0]);
        Assert.Contains("pickle", LoadFails(zip).Message);
    }

    [Fact]
    public void TruncatedLlama2cCheckpointIsRefused()
    {
        string dir = TestPaths.RequireStories260K();
        var bytes = File.ReadAllBytes(Path.Combine(dir, "stories260K.bin"));
        string f = Path.Combine(_dir, "cut.bin");
        File.WriteAllBytes(f, bytes[..(bytes.Length / 2)]);
        var e = LoadFails(f);
        Assert.Contains("cut.bin", e.Message);
        Assert.Contains("bytes", e.Message);
        File.WriteAllBytes(f, bytes[..10]);
        Assert.Contains("truncated", LoadFails(f).Message);
    }

    [Fact]
    public void TokenIdsOutsideTheVocabularyAreNamed()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var e = Assert.Throws<InvalidInputException>(() => m.Model.Forward(ModelInput.Single(1, 2, m.Config.VocabSize)));
        Assert.Contains($"token id {m.Config.VocabSize}", e.Message);
        Assert.Contains("position 2", e.Message);
        Assert.Throws<InvalidInputException>(() => m.Model.Forward(ModelInput.Single(-1)));
    }

    [Fact]
    public void SequenceLongerThanContextIsRefused()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, "gpt2_tied"));
        var tooLong = new int[m.Config.MaxPositions + 1];
        var e = Assert.Throws<InvalidInputException>(() => m.Model.Forward(ModelInput.Single(tooLong)));
        Assert.Contains("longer than the model's context", e.Message);
        Assert.Throws<InvalidInputException>(() => Generator.Generate(m.Model, tooLong, new GenerationOptions()).ToArray());
    }

    [Fact]
    public void ShardIndexThatEscapesTheDirectoryIsRefused()
    {
        string d = CopyOf("llama_sharded");
        string index = Path.Combine(d, "model.safetensors.index.json");
        File.WriteAllText(index, File.ReadAllText(index).Replace("model-00002-of-00002.safetensors", "../evil.safetensors"));
        Assert.Contains("not a .safetensors file name", LoadFails(d).Message);
    }
}
