using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>`headwise convert gqa`: the checkpoint it writes loads and, at G = the model's kv heads, scores the text as the
/// original does (through `compare`); at fewer heads `info` reports the smaller KV cache; bad input is one line, exit 2, and
/// writes nothing.</summary>
public sealed class ConvertCliTests
{
    private static string NewDir() => Path.Combine(Path.GetTempPath(), "hw-convert-" + Guid.NewGuid().ToString("N"));

    private static string[] Stories()
    {
        string s = CliRunner.Stories260K ?? throw new InvalidOperationException();
        return ["--model", Path.Combine(s, "stories260K.bin"), "--tokenizer", Path.Combine(s, "tok512.bin")];
    }

    [Fact]
    public void LosslessAtEveryKvHeadAndSmallerCacheBelow()
    {
        Assert.SkipWhen(CliRunner.Stories260K is null, "../shared/models/stories260K is absent");
        string same = NewDir(), half = NewDir();
        try
        {
            var r = CliRunner.Run(["convert", "gqa", .. Stories(), "--kv-heads", "4", "--out", same, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var j = JsonDocument.Parse(r.Stdout);
            Assert.Equal("gqa", j.RootElement.GetProperty("kind").GetString());
            Assert.Equal("fuse", j.RootElement.GetProperty("method").GetString());
            Assert.Equal(5, j.RootElement.GetProperty("layers").GetArrayLength());
            Assert.Contains("model.safetensors", j.RootElement.GetProperty("files").EnumerateArray().Select(f => f.GetString()));

            string text = Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "story.txt");
            var c = CliRunner.Run(["compare", .. Stories(), "--model", same, "--text-file", text, "--no-speed", "--json"]);
            Assert.True(c.ExitCode == 0, c.Stderr);
            using var cj = JsonDocument.Parse(c.Stdout);
            Assert.True(Math.Abs(cj.RootElement.GetProperty("models")[1].GetProperty("delta_nll").GetDouble()) <= 1e-4);

            r = CliRunner.Run(["convert", "gqa", .. Stories(), "--kv-heads", "2", "--method", "mean", "--out", half]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("4 → 2 key/value heads per layer (mean)", r.Stdout, StringComparison.Ordinal);
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", half, "--json").Stdout);
            Assert.Equal(2, info.RootElement.GetProperty("kv_heads").GetInt32());
            Assert.Equal(640, info.RootElement.GetProperty("kv_cache_bytes_per_token").GetInt64()); // 5 layers × 2 × 2 heads × 8 dims × 4 bytes
        }
        finally
        {
            foreach (var d in new[] { same, half }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData("unknown kind", "fold")]
    [InlineData("--kv-fraction 0: must be more than 0 and at most 1", "mla", "--kv-fraction", "0")]
    [InlineData("--kv-fraction 1.5: must be more than 0 and at most 1", "mla", "--kv-fraction", "1.5")]
    [InlineData("--kv-rank 99: must be 1 to", "mla", "--kv-rank", "99", "--rope-dim", "8")]
    [InlineData("--rope-dim 7: must be even", "mla", "--kv-rank", "8", "--rope-dim", "7")]
    [InlineData("give the cache size", "mla")]
    [InlineData("--kv-rank R and --rope-dim D go together", "mla", "--kv-rank", "8")]
    [InlineData("--format hf: expected headwise or deepseek_v3", "mla", "--kv-fraction", "0.5", "--format", "hf")]
    [InlineData("give the layer groups: --groups 4-5,6-7, or --suggest", "share-attention")]
    [InlineData("--groups 0-9: group 0-9: layers must be 0 to 4", "share-attention", "--groups", "0-9")]
    [InlineData("--groups 2-1: group 2-1 does not ascend", "share-attention", "--groups", "2-1")]
    [InlineData("--groups 0-2,2-3: group 2-3: layer 2 is already in another group", "share-attention", "--groups", "0-2,2-3")]
    [InlineData("--min-similarity 2: must be 0 to 1", "share-attention", "--suggest", "--min-similarity", "2")]
    [InlineData("--groups belongs to convert share-attention", "gqa", "--kv-heads", "2", "--groups", "0-1")]
    [InlineData("missing --kv-heads", "gqa")]
    [InlineData("--kv-heads 3 must divide the model's 4 key/value heads", "gqa", "--kv-heads", "3")]
    [InlineData("--method median: expected mean or fuse", "gqa", "--kv-heads", "2", "--method", "median")]
    [InlineData("--calibration nope.txt: file not found", "gqa", "--kv-heads", "2", "--calibration", "nope.txt")]
    public void BadInputIsOneLineExit2AndWritesNothing(string expected, params string[] args)
    {
        Assert.SkipWhen(CliRunner.Stories260K is null, "../shared/models/stories260K is absent");
        string dir = NewDir();
        var r = CliRunner.Run(["convert", .. args, .. Stories(), "--out", dir]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void ShareAttentionIsLosslessForGroupsOfOneAndCachesTheSharedKeysOnce()
    {
        Assert.SkipWhen(CliRunner.Stories260K is null, "../shared/models/stories260K is absent");
        string same = NewDir(), shared = NewDir();
        try
        {
            var r = CliRunner.Run(["convert", "share-attention", .. Stories(), "--groups", "0,1,2,3,4", "--out", same, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using (var j = JsonDocument.Parse(r.Stdout))
            {
                Assert.Equal("share-attention", j.RootElement.GetProperty("kind").GetString());
                Assert.True(Math.Abs(j.RootElement.GetProperty("nll_converted").GetDouble() - j.RootElement.GetProperty("nll_original").GetDouble()) <= 1e-4);
            }

            r = CliRunner.Run(["convert", "share-attention", .. Stories(), "--groups", "3-4", "--out", shared]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("layer 4 reuses layer 3's pattern", r.Stdout, StringComparison.Ordinal);
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", shared, "--json").Stdout);
            // 5 layers × 4 kv heads × 8 dims of values, 4 layers' keys, × 4 bytes
            Assert.Equal(1152, info.RootElement.GetProperty("kv_cache_bytes_per_token").GetInt64());

            r = CliRunner.Run(["convert", "share-attention", .. Stories(), "--suggest", "--min-similarity", "0"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("suggested    --groups 0-4", r.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var d in new[] { same, shared }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    [Fact]
    public void MlaIsLosslessAtFractionOneAndExportsDeepseekV3()
    {
        Assert.SkipWhen(CliRunner.Stories260K is null, "../shared/models/stories260K is absent");
        string same = NewDir(), stock = NewDir();
        try
        {
            var r = CliRunner.Run(["convert", "mla", .. Stories(), "--kv-fraction", "1", "--out", same, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var j = JsonDocument.Parse(r.Stdout);
            Assert.Equal("mla", j.RootElement.GetProperty("kind").GetString());
            Assert.Equal(64, j.RootElement.GetProperty("cache_floats_per_layer").GetInt32()); // 2 × 4 kv heads × 8 dims
            Assert.True(Math.Abs(j.RootElement.GetProperty("nll_converted").GetDouble() - j.RootElement.GetProperty("nll_original").GetDouble()) <= 1e-4);

            string text = Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "story.txt");
            var c = CliRunner.Run(["compare", .. Stories(), "--model", same, "--text-file", text, "--no-speed", "--json"]);
            Assert.True(c.ExitCode == 0, c.Stderr);
            using var cj = JsonDocument.Parse(c.Stdout);
            Assert.True(Math.Abs(cj.RootElement.GetProperty("models")[1].GetProperty("delta_nll").GetDouble()) <= 1e-4);

            r = CliRunner.Run(["convert", "mla", .. Stories(), "--kv-fraction", "0.5", "--format", "deepseek_v3", "--out", stock]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("kv_a_layernorm cannot be expressed exactly", r.Stdout, StringComparison.Ordinal);
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", stock, "--json").Stdout);
            Assert.Equal(640, info.RootElement.GetProperty("kv_cache_bytes_per_token").GetInt64()); // 5 layers × (24 + 8) floats × 4 bytes
            Assert.DoesNotContain("headwise_mla", File.ReadAllText(Path.Combine(stock, "config.json")), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var d in new[] { same, stock }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    [Fact]
    public void MlaFromGpt2IsLosslessInTheHeadwiseLayoutAndRefusedAsStockDeepseekV3()
    {
        string same = NewDir(), stock = NewDir();
        try
        {
            // the demo model is GPT-2: learned positions, so no rotary key (D = 0), everything in the latent
            var r = CliRunner.Run("convert", "mla", "--model", CliRunner.DemoModel, "--kv-fraction", "1", "--out", same, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var j = JsonDocument.Parse(r.Stdout);
            Assert.Equal(0, j.RootElement.GetProperty("rope_dim").GetInt32());
            Assert.True(Math.Abs(j.RootElement.GetProperty("nll_converted").GetDouble() - j.RootElement.GetProperty("nll_original").GetDouble()) <= 1e-4);
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", same, "--json").Stdout);
            Assert.Equal("deepseek_v3", info.RootElement.GetProperty("model_type").GetString());

            r = CliRunner.Run("convert", "mla", "--model", CliRunner.DemoModel, "--kv-fraction", "0.5", "--format", "deepseek_v3", "--out", stock);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("stock DeepSeek-V3 cannot hold a gpt2 model's LayerNorm", r.Stderr, StringComparison.Ordinal);
            Assert.Contains("learned position embedding", r.Stderr, StringComparison.Ordinal);
            Assert.False(Directory.Exists(stock) && Directory.EnumerateFileSystemEntries(stock).Any());
        }
        finally
        {
            foreach (var d in new[] { same, stock }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    [Fact]
    public void PruneZeroesTheHeadsAsZeroAblationDoes()
    {
        string dir = NewDir(), ranked = NewDir();
        try
        {
            var r = CliRunner.Run("convert", "prune", "--model", CliRunner.DemoModel, "--heads", "1.0,2.3", "--format", "hf", "--out", dir);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("zeroed (W_O = 0), not removed", r.Stdout, StringComparison.Ordinal);
            string text = Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "story.txt");
            string recipe = CliRunner.TempRecipe("""{"name": "zero", "interventions": [{"kind": "ablate", "heads": ["1.0", "2.3"], "method": "zero"}]}""");
            using var pruned = JsonDocument.Parse(CliRunner.Run("eval", "--model", dir, "--text-file", text, "--json").Stdout);
            using var ablated = JsonDocument.Parse(CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text-file", text, "--intervene", recipe, "--json").Stdout);
            Assert.Equal(ablated.RootElement.GetProperty("mean_nll").GetDouble(), pruned.RootElement.GetProperty("mean_nll").GetDouble(), 1e-5);

            r = CliRunner.Run("convert", "prune", "--model", CliRunner.DemoModel, "--by-importance", "3", "--calibration", text, "--format", "hf", "--out", ranked, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var j = JsonDocument.Parse(r.Stdout);
            Assert.Equal(3, j.RootElement.GetProperty("heads").GetArrayLength());
            Assert.True(j.RootElement.GetProperty("zeroed").GetBoolean());
        }
        finally
        {
            foreach (var d in new[] { dir, ranked }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    [Fact]
    public void PruneRemovesTheHeadsByDefaultAndComputesWhatZeroingDoes()
    {
        string removed = NewDir(), zeroed = NewDir();
        try
        {
            // layer 2 loses every head: it keeps one, zeroed
            var r = CliRunner.Run("convert", "prune", "--model", CliRunner.DemoModel, "--heads", "1.0,2.0,2.1,2.2,2.3", "--out", removed, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var j = JsonDocument.Parse(r.Stdout);
            var root = j.RootElement;
            Assert.Equal("headwise", root.GetProperty("format").GetString());
            Assert.False(root.GetProperty("zeroed").GetBoolean());
            Assert.Equal([4, 3, 1, 4], root.GetProperty("query_heads").EnumerateArray().Select(x => x.GetInt32()));
            Assert.Equal(["2.0"], root.GetProperty("kept_zeroed").EnumerateArray().Select(x => x.GetString()));
            r = CliRunner.Run("convert", "prune", "--model", CliRunner.DemoModel, "--heads", "1.0,2.0,2.1,2.2,2.3", "--format", "hf", "--out", zeroed);
            Assert.True(r.ExitCode == 0, r.Stderr);

            // compare: the same NLL, fewer parameters, and the KV bytes info reports
            string text = Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", "story.txt");
            r = CliRunner.Run("compare", "--model", zeroed, "--model", removed, "--text-file", text, "--no-speed", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var cmp = JsonDocument.Parse(r.Stdout);
            var models = cmp.RootElement.GetProperty("models").EnumerateArray().ToArray();
            Assert.Equal(models[0].GetProperty("mean_nll").GetDouble(), models[1].GetProperty("mean_nll").GetDouble(), 1e-4);
            Assert.Equal(root.GetProperty("parameters").GetProperty("after").GetInt64(), models[1].GetProperty("parameters").GetInt64());
            Assert.True(models[1].GetProperty("parameters").GetInt64() < models[0].GetProperty("parameters").GetInt64());
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", removed, "--json").Stdout);
            long kv = info.RootElement.GetProperty("kv_cache_bytes_per_token").GetInt64();
            Assert.Equal(root.GetProperty("kv_cache_bytes_per_token").GetProperty("after").GetInt64(), kv);
            Assert.Equal(kv, models[1].GetProperty("kv_cache_bytes_per_token").GetInt64());
            Assert.Equal((4 + 3 + 1 + 4) * 2 * 32 * 4, kv); // the demo's heads are 32 wide

            // an analysis that indexes every layer's heads alike refuses in one line
            r = CliRunner.Run("heads", "--model", removed);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("pruned per layer", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var d in new[] { removed, zeroed }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData("head 1.2 is named twice", "prune", "--heads", "1.2,0.0,1.2")]
    [InlineData("--format gguf: expected headwise (heads removed) or hf (heads zeroed)", "prune", "--heads", "1.0", "--format", "gguf")]
    [InlineData("give the heads to prune", "prune")]
    [InlineData("give the heads to prune", "prune", "--heads", "1.0", "--by-importance", "2")]
    [InlineData("head 9.9 does not exist", "prune", "--heads", "9.9")]
    [InlineData("--by-importance expects an integer in [1, 15]", "prune", "--by-importance", "16")]
    [InlineData("--kv-heads and --method belong to convert gqa", "prune", "--heads", "1.0", "--kv-heads", "2")]
    [InlineData("--heads and --by-importance belong to convert prune", "gqa", "--kv-heads", "2", "--heads", "1.0")]
    public void PruneBadInputIsOneLineExit2(string expected, params string[] args)
    {
        string dir = NewDir();
        var r = CliRunner.Run(["convert", .. args, "--model", CliRunner.DemoModel, "--out", dir]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void Gpt2IsRefusedByName()
    {
        var r = CliRunner.Run("convert", "gqa", "--model", CliRunner.DemoModel, "--kv-heads", "2", "--out", NewDir());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("gpt2 checkpoints have no grouped-query form", r.Stderr, StringComparison.Ordinal);
    }
}
