using Headwise.Loading;

namespace Headwise.Tests.Models;

/// <summary><see cref="ModelConfig.ParameterCount"/> (what `info` and `compare` report) equals the number of values the
/// checkpoint stores, on every golden of every family (none of them stores buffers or a duplicate tied head) — except
/// vit_model, a bare ViTModel: its config.json carries Hugging Face's default two labels although the checkpoint has no
/// classifier, and the checkpoint has a pooler the engine does not use; the count comes from config.json alone, which cannot
/// tell (a known gap: `info` is off by 2·(C + 1) − (C² + C) there).</summary>
public sealed class ParameterCountTests
{
    public static TheoryData<string> Goldens()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(TestPaths.Goldens).Order(StringComparer.Ordinal))
        {
            if (File.Exists(Path.Combine(dir, "config.json")) && Directory.GetFiles(dir, "model*.safetensors").Length > 0
                && Path.GetFileName(dir) != "vit_model")
            {
                data.Add(Path.GetFileName(dir));
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void EqualsTheValuesTheCheckpointStores(string golden)
    {
        string dir = Path.Combine(TestPaths.Goldens, golden);
        long stored = 0;
        foreach (var file in Directory.GetFiles(dir, "model*.safetensors"))
        {
            using var st = SafeTensorsFile.Open(file);
            stored += st.Tensors.Values.Sum(t => t.ElementCount);
        }
        Assert.Equal(stored, HfConfigReader.Read(Path.Combine(dir, "config.json")).ParameterCount);
    }
}
