using System.Text.Json;
using Headwise.Loading;

namespace Headwise.Tests.Acceptance;

/// <summary>The CLI on a deepseek_v3 (multi-head latent attention) checkpoint: info's exact cache size and parameter count, the
/// activation-based commands run, the weight-only ones refuse with one line and exit code 2.</summary>
public class DeepseekV3CliTests
{
    private static string Model(string name = "deepseek_v3_qlora") => CliRunner.Golden(name);

    private const string Tokens = "3,17,5,9,22,1,8,4,30,2";

    [Theory]
    [InlineData("deepseek_v3_qlora")]
    [InlineData("deepseek_v3_noqlora")]
    [InlineData("deepseek_v3_bias")]
    [InlineData("deepseek_v3_sharded")]
    public void InfoJsonCountsTheLatentCacheAndEveryParameter(string name)
    {
        var r = CliRunner.Run("info", "--model", Model(name), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        var config = HfConfigReader.Read(Path.Combine(Model(name), "config.json"));
        Assert.Equal("DeepseekV3", root.GetProperty("family").GetString());
        // layers × (kv_lora_rank + qk_rope_head_dim) × 4 bytes: the latent and the shared rotary key, nothing per head
        Assert.Equal((long)config.NLayers * (config.Mla!.KvLoraRank + config.Mla.QkRopeHeadDim) * 4, root.GetProperty("kv_cache_bytes_per_token").GetInt64());
        Assert.Equal(config.Mla.KvLoraRank, root.GetProperty("mla").GetProperty("kv_lora_rank").GetInt32());
        using var weights = ModelLoader.OpenWeights(Model(name));
        Assert.Equal(weights.Names.Sum(n => (long)weights.GetAnyShape(n).Length), root.GetProperty("parameters").GetInt64());
        var hooks = root.GetProperty("hook_points").EnumerateArray().Select(h => h.GetString()).ToList();
        Assert.Contains("blocks.1.attn.hook_kv_latent", hooks);
        Assert.Equal(config.Mla.QLoraRank > 0, hooks.Contains("blocks.1.attn.hook_q_latent"));
    }

    [Theory]
    [InlineData("eval", "--tokens", Tokens)]
    [InlineData("patterns", "--tokens", Tokens)]
    [InlineData("ablate", "--tokens", Tokens, "--heads", "1.2,0.1")]
    [InlineData("importance", "--tokens", Tokens)]
    [InlineData("heads", "--seq-len", "20")]
    [InlineData("generate", "--tokens", "3,17,5", "--max-tokens", "6")]
    public void ActivationBasedCommandsRun(params string[] args)
    {
        var r = CliRunner.Run([args[0], "--model", Model(), .. args[1..]]);
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    [Fact]
    public void WeightOnlyAnalysesRefuseInOneLine()
    {
        var r = CliRunner.Run("circuits", "--model", Model());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("kv_a_layernorm", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
