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
    [InlineData("unknown kind", "mla")]
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
    public void Gpt2IsRefusedByName()
    {
        var r = CliRunner.Run("convert", "gqa", "--model", CliRunner.DemoModel, "--kv-heads", "2", "--out", NewDir());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("gpt2 checkpoints have no grouped-query form", r.Stderr, StringComparison.Ordinal);
    }
}
