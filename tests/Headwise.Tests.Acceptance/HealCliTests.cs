using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>`headwise heal`: on the demo model (GPT-2) pruned by convert prune, the healed checkpoint it writes scores the
/// held-out tail as `eval --text-file` does, the pruned heads stay zero; on stories260K a mean-pooled GQA conversion gets
/// closer to its teacher; bad input is one line, exit 2.</summary>
public sealed class HealCliTests
{
    private static string NewDir() => Path.Combine(Path.GetTempPath(), "hw-heal-" + Guid.NewGuid().ToString("N"));

    private static string Text(string name) => Path.Combine(CliRunner.RepoRoot, "docs", "examples", "texts", name);

    [Fact]
    public void HealedNllIsWhatEvalReportsOnTheHeldOutTailAndPrunedHeadsStayZero()
    {
        string pruned = NewDir(), healed = NewDir(), tail = Path.Combine(Path.GetTempPath(), $"hw-heal-tail-{Guid.NewGuid():N}.txt");
        try
        {
            var r = CliRunner.Run("convert", "prune", "--model", CliRunner.DemoModel, "--heads", "1.0,2.3", "--out", pruned);
            Assert.True(r.ExitCode == 0, r.Stderr);
            string text = Text("address.txt");
            r = CliRunner.Run("heal", "--model", pruned, "--teacher", CliRunner.DemoModel, "--text-file", text, "--steps", "4", "--seq-len", "32",
                "--out", healed, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("step     4/4", r.Stderr, StringComparison.Ordinal);
            using var j = JsonDocument.Parse(r.Stdout);
            var root = j.RootElement;
            Assert.Equal(["1.0", "2.3"], root.GetProperty("zeroed_heads").EnumerateArray().Select(h => h.GetString()));
            Assert.Contains("tokenizer.json", root.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
            Assert.Equal(4, root.GetProperty("kl_per_step").GetArrayLength());

            // the held-out tail as a file of its own: eval of the healed checkpoint, the converted and the original
            File.WriteAllText(tail, File.ReadAllText(text)[root.GetProperty("held_out").GetProperty("first_char").GetInt32()..]);
            double Eval(string model)
            {
                var e = CliRunner.Run("eval", "--model", model, "--text-file", tail, "--json");
                Assert.True(e.ExitCode == 0, e.Stderr);
                using var ej = JsonDocument.Parse(e.Stdout);
                return ej.RootElement.GetProperty("mean_nll").GetDouble();
            }
            var nll = root.GetProperty("nll");
            Assert.Equal(Eval(healed), nll.GetProperty("healed").GetDouble(), 1e-6);
            Assert.Equal(Eval(pruned), nll.GetProperty("converted").GetDouble(), 1e-6);
            Assert.Equal(Eval(CliRunner.DemoModel), nll.GetProperty("original").GetDouble(), 1e-6);

            // the pruned heads are still zero in the healed checkpoint: `convert prune` of them again changes nothing
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", healed, "--json").Stdout);
            Assert.Equal(4, info.RootElement.GetProperty("heads").GetInt32());
            r = CliRunner.Run("heal", "--model", healed, "--teacher", CliRunner.DemoModel, "--text-file", text, "--steps", "1", "--seq-len", "32", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var again = JsonDocument.Parse(r.Stdout);
            Assert.Equal(["1.0", "2.3"], again.RootElement.GetProperty("zeroed_heads").EnumerateArray().Select(h => h.GetString()));
        }
        finally
        {
            foreach (var d in new[] { pruned, healed }.Where(Directory.Exists)) Directory.Delete(d, recursive: true);
            File.Delete(tail);
        }
    }

    [Fact]
    public void Stories260KMeanPooledGqaGetsCloserToItsTeacher()
    {
        string s = CliRunner.RequireStories260K();
        string gqa = NewDir();
        try
        {
            string[] stories = ["--tokenizer", Path.Combine(s, "tok512.bin")];
            var r = CliRunner.Run(["convert", "gqa", "--model", Path.Combine(s, "stories260K.bin"), .. stories, "--kv-heads", "2", "--method", "mean", "--out", gqa]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run(["heal", "--model", gqa, "--teacher", Path.Combine(s, "stories260K.bin"), .. stories, "--text-file", Text("story.txt"), "--steps", "15", "--lr", "1e-3", "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var j = JsonDocument.Parse(r.Stdout);
            var kl = j.RootElement.GetProperty("kl");
            Assert.True(kl.GetProperty("converted").GetDouble() > 0.5, r.Stdout);
            Assert.True(kl.GetProperty("healed").GetDouble() < kl.GetProperty("converted").GetDouble(), r.Stdout);
        }
        finally
        {
            if (Directory.Exists(gqa)) Directory.Delete(gqa, recursive: true);
        }
    }

    [Fact]
    public void Stories260KMlaConversionHealsAndIsWrittenBackAsTheSameLatentLayout()
    {
        string s = CliRunner.RequireStories260K();
        string mla = NewDir(), healed = NewDir();
        try
        {
            string[] stories = ["--tokenizer", Path.Combine(s, "tok512.bin")];
            var r = CliRunner.Run(["convert", "mla", "--model", Path.Combine(s, "stories260K.bin"), .. stories, "--kv-fraction", "0.25", "--out", mla]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run(["heal", "--model", mla, "--teacher", Path.Combine(s, "stories260K.bin"), .. stories, "--text-file", Text("stories.txt"),
                "--steps", "6", "--lr", "1e-3", "--out", healed, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("latent rank", r.Stderr, StringComparison.Ordinal);
            using var j = JsonDocument.Parse(r.Stdout);
            var kl = j.RootElement.GetProperty("kl");
            Assert.True(kl.GetProperty("healed").GetDouble() < kl.GetProperty("converted").GetDouble(), r.Stdout);
            // the healed checkpoint is the same deepseek_v3 layout, with the same cache per token
            double Info(string model, string field)
            {
                var i = CliRunner.Run(["info", "--model", model, .. stories, "--json"]);
                Assert.True(i.ExitCode == 0, i.Stderr);
                using var ij = JsonDocument.Parse(i.Stdout);
                return ij.RootElement.GetProperty(field).GetDouble();
            }
            Assert.Equal(Info(mla, "kv_cache_bytes_per_token"), Info(healed, "kv_cache_bytes_per_token"));
            Assert.Contains("headwise_mla", File.ReadAllText(Path.Combine(healed, "config.json")), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var d in new[] { mla, healed }.Where(Directory.Exists)) Directory.Delete(d, recursive: true);
        }
    }

    [Fact]
    public void DemoModelsMlaConversionHealsAsAGpt2BlockAndTheHealedCheckpointLoads()
    {
        string mla = NewDir(), healed = NewDir();
        try
        {
            // GPT-2 → MLA at an eighth of the cache: no rotary key, the latent (32 dims) holds keys and values
            var r = CliRunner.Run("convert", "mla", "--model", CliRunner.DemoModel, "--kv-fraction", "0.125", "--out", mla);
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run("heal", "--model", mla, "--teacher", CliRunner.DemoModel, "--text-file", Text("stories.txt"), "--steps", "8", "--seq-len", "32",
                "--lr", "1e-4", "--out", healed, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("latent rank 32 + rotary 0", r.Stderr, StringComparison.Ordinal);
            using var j = JsonDocument.Parse(r.Stdout);
            var (kl, nll) = (j.RootElement.GetProperty("kl"), j.RootElement.GetProperty("nll"));
            Assert.True(kl.GetProperty("healed").GetDouble() < kl.GetProperty("converted").GetDouble(), r.Stdout);
            Assert.True(nll.GetProperty("healed").GetDouble() < nll.GetProperty("converted").GetDouble(), r.Stdout);

            // the healed checkpoint is the converted one's layout (GPT-2's block in headwise_mla) and the engine runs it
            using var info = JsonDocument.Parse(CliRunner.Run("info", "--model", healed, "--json").Stdout);
            using var before = JsonDocument.Parse(CliRunner.Run("info", "--model", mla, "--json").Stdout);
            Assert.Equal(before.RootElement.GetProperty("kv_cache_bytes_per_token").GetInt64(), info.RootElement.GetProperty("kv_cache_bytes_per_token").GetInt64());
            Assert.Equal(before.RootElement.GetProperty("parameters").GetInt64(), info.RootElement.GetProperty("parameters").GetInt64());
            var e = CliRunner.Run("eval", "--model", healed, "--text-file", Text("story.txt"), "--json");
            Assert.True(e.ExitCode == 0, e.Stderr);
            using var ej = JsonDocument.Parse(e.Stdout);
            Assert.True(double.IsFinite(ej.RootElement.GetProperty("mean_nll").GetDouble()), e.Stdout);
        }
        finally
        {
            foreach (var d in new[] { mla, healed }.Where(Directory.Exists)) Directory.Delete(d, recursive: true);
        }
    }

    [Theory]
    [InlineData("no-teacher", "missing --teacher")]
    [InlineData("bad-teacher", "--teacher")]
    [InlineData("vocab", "vocabulary (96 tokens) differs")]
    [InlineData("steps", "--steps expects an integer in [1,")]
    [InlineData("no-steps", "missing --steps")]
    [InlineData("family", "cannot be trained: the trainer builds GPT-2 and Llama models")]
    public void BadInputIsOneLineExitTwo(string what, string message)
    {
        string text = Text("address.txt");
        string[] args = what switch
        {
            "no-teacher" => ["heal", "--model", CliRunner.DemoModel, "--text-file", text, "--steps", "1"],
            "bad-teacher" => ["heal", "--model", CliRunner.DemoModel, "--teacher", "/nonexistent/teacher", "--text-file", text, "--steps", "1"],
            "vocab" => ["heal", "--model", CliRunner.DemoModel, "--teacher", CliRunner.Golden("gpt2_tied"), "--text-file", text, "--steps", "1"],
            "steps" => ["heal", "--model", CliRunner.DemoModel, "--teacher", CliRunner.DemoModel, "--text-file", text, "--steps", "0"],
            "no-steps" => ["heal", "--model", CliRunner.DemoModel, "--teacher", CliRunner.DemoModel, "--text-file", text],
            "family" => ["heal", "--model", CliRunner.Golden("neox_parallel"), "--teacher", CliRunner.Golden("neox_parallel"), "--text-file", text, "--steps", "1"],
            _ => throw new ArgumentException(what),
        };
        var r = CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
