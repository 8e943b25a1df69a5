using System.Text.Json;
using Headwise.Evaluation;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Acceptance;

/// <summary>The command line as a new user runs it: outputs checked against the library, errors as one line with exit code 2.</summary>
public class CliTests(ITestOutputHelper output)
{
    [Fact]
    public void InfoJsonDescribesTheModel()
    {
        var r = CliRunner.Run("info", "--model", CliRunner.Golden("llama_gqa"), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        var config = HfConfigReader.Read(Path.Combine(CliRunner.Golden("llama_gqa"), "config.json"));
        Assert.Equal("llama", root.GetProperty("model_type").GetString());
        Assert.Equal(config.NLayers, root.GetProperty("layers").GetInt32());
        Assert.Equal(config.NHeads, root.GetProperty("heads").GetInt32());
        Assert.Equal(config.NKvHeads, root.GetProperty("kv_heads").GetInt32());
        // parameter count equals the number of values in the checkpoint
        using var weights = ModelLoader.OpenWeights(CliRunner.Golden("llama_gqa"));
        long values = weights.Names.Sum(n => (long)weights.GetAnyShape(n).Length);
        Assert.Equal(values, root.GetProperty("parameters").GetInt64());
        var hooks = root.GetProperty("hook_points").EnumerateArray().Select(h => h.GetString()).ToList();
        Assert.Contains("blocks.1.attn.hook_pattern", hooks);
        Assert.Contains("hook_embed", hooks);
        // 2 layers × (keys + values) × 2 kv heads × head_dim 8 × 4 bytes, from the golden's config.json
        Assert.Equal(2 * 2 * 2 * 8 * 4, root.GetProperty("kv_cache_bytes_per_token").GetInt64());
    }

    [Fact]
    public void InfoTextListsHookPoints()
    {
        var r = CliRunner.Run("info", "--model", CliRunner.Golden("gpt2_tied"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("blocks.0.attn.hook_pattern", r.Stdout);
        Assert.Contains("parameters", r.Stdout);
    }

    [Fact]
    public void EvalTokensJsonMatchesTheModelsOwnLogits()
    {
        int[] ids = [5, 9, 13, 2, 7, 30, 44, 1];
        var r = CliRunner.Run("eval", "--model", CliRunner.Golden("qwen2"), "--tokens", string.Join(",", ids), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var nll = doc.RootElement.GetProperty("nll").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(ids, doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(ids.Length - 1, nll.Length);

        using var m = ModelLoader.Load(CliRunner.Golden("qwen2"));
        var logits = m.Model.Forward(ModelInput.Single(ids));
        int V = m.Config.VocabSize;
        for (int i = 0; i < nll.Length; i++)
        {
            // −log softmax, computed here independently in double
            var row = logits.AsSpan(i * V, V).ToArray().Select(x => (double)x).ToArray();
            double max = row.Max();
            double logZ = max + Math.Log(row.Sum(x => Math.Exp(x - max)));
            Assert.Equal(logZ - row[ids[i + 1]], nll[i], 1e-4);
        }
        double mean = nll.Average();
        Assert.Equal(mean, doc.RootElement.GetProperty("mean_nll").GetDouble(), 1e-5);
        Assert.Equal(Math.Exp(mean), doc.RootElement.GetProperty("perplexity").GetDouble(), 1e-4);
    }

    [Fact]
    public void SlidingWindowScoresEveryTokenOnceWithTheContextItPromises()
    {
        using var m = ModelLoader.Load(CliRunner.Golden("gpt2_tied"));
        var rng = new Random(3);
        var ids = Enumerable.Range(0, 40).Select(_ => rng.Next(m.Config.VocabSize)).ToArray();
        var windowed = Perplexity.Evaluate(m.Model, ids, window: 16, stride: 8);
        Assert.Equal(39, windowed.Nll.Length);
        // the first window is an ordinary forward over ids[0..16)
        var first = Perplexity.Evaluate(m.Model, ids[..16], window: 16, stride: 16);
        Assert.Equal(first.Nll, windowed.Nll[..15]);
        // a later target is scored inside the window [8, 24): compare with that window alone
        var second = Perplexity.Evaluate(m.Model, ids[8..24], window: 16, stride: 16);
        Assert.Equal(second.Nll[^8..], windowed.Nll[15..23]);
        Assert.Equal(4, windowed.Windows);
    }

    [Fact]
    public void GenerateGreedyJsonMatchesTheReference()
    {
        string dir = CliRunner.Golden("llama_mha");
        using var golden = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "golden.json")));
        var prompt = golden.RootElement.GetProperty("greedy").GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var want = golden.RootElement.GetProperty("greedy").GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).Take(10).ToArray();
        var r = CliRunner.Run("generate", "--model", dir, "--tokens", string.Join(",", prompt), "--max-tokens", "10", "--no-eos", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(want, doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    [Fact]
    public void GenerateSaysWhenItStopsAtTheContext()
    {
        // the demo model's context is 128: a 100-token prompt leaves room for 28 of the 40 tokens asked for
        string demo = CliRunner.DemoModel;
        string prompt = string.Join(",", Enumerable.Range(0, 100).Select(i => 300 + i));
        var full = CliRunner.Run("generate", "--model", demo, "--tokens", prompt, "--max-tokens", "40", "--no-eos", "--json");
        Assert.Equal(0, full.ExitCode);
        using var doc = JsonDocument.Parse(full.Stdout);
        Assert.Equal(28, doc.RootElement.GetProperty("ids").GetArrayLength());
        Assert.Equal("context", doc.RootElement.GetProperty("stopped").GetString());
        Assert.Contains("stopped at the model's context of 128 positions after 28 of 40 new tokens", full.Stderr);

        var text = CliRunner.Run("generate", "--model", demo, "--tokens", prompt, "--max-tokens", "40", "--no-eos");
        Assert.Contains("stopped at the model's context of 128 positions", text.Stderr);

        var room = CliRunner.Run("generate", "--model", demo, "--tokens", prompt, "--max-tokens", "5", "--no-eos", "--json");
        using var roomDoc = JsonDocument.Parse(room.Stdout);
        Assert.Equal(5, roomDoc.RootElement.GetProperty("ids").GetArrayLength());
        Assert.Equal("max_tokens", roomDoc.RootElement.GetProperty("stopped").GetString());
        Assert.DoesNotContain("stopped at the model's context", room.Stderr);
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndDiffersFromGreedy()
    {
        string dir = CliRunner.Golden("gpt2_untied");
        string[] common = ["generate", "--model", dir, "--tokens", "1,2,3", "--max-tokens", "30", "--no-eos", "--json"];
        var a = CliRunner.Run([.. common, "--temperature", "1.5", "--top-k", "20", "--top-p", "0.95", "--seed", "7"]);
        var b = CliRunner.Run([.. common, "--temperature", "1.5", "--top-k", "20", "--top-p", "0.95", "--seed", "7"]);
        var greedy = CliRunner.Run(common);
        Assert.Equal(0, a.ExitCode);
        Assert.Equal(a.Stdout, b.Stdout);
        Assert.NotEqual(a.Stdout, greedy.Stdout);
    }

    [Theory]
    [InlineData("info")]
    [InlineData("info", "--model")]
    [InlineData("info", "--model", "/nonexistent/model")]
    [InlineData("info", "--model", "GOLDEN", "--colour")]
    [InlineData("eval", "--model", "GOLDEN", "--tokens", "1")]
    [InlineData("eval", "--model", "GOLDEN", "--tokens", "1,99999")]
    [InlineData("eval", "--model", "GOLDEN", "--tokens", "1,x")]
    [InlineData("eval", "--model", "GOLDEN", "--text-file", "/nonexistent.txt")]
    [InlineData("generate", "--model", "GOLDEN", "--tokens", "1", "--temperature", "-1")]
    [InlineData("generate", "--model", "GOLDEN", "--tokens", "1", "--top-p", "2")]
    [InlineData("tokenize", "--model", "GOLDEN", "--text", "hi")]
    [InlineData("frobnicate")]
    public void BadInputIsOneLineAndExitCode2(params string[] args)
    {
        var r = CliRunner.Run(args.Select(a => a == "GOLDEN" ? CliRunner.Golden("gpt2_tied") : a).ToArray());
        output.WriteLine(r.Stderr);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", r.Stderr); // never a stack trace
    }

    [Fact]
    public void EmptyTextFileIsRefused()
    {
        string f = Path.GetTempFileName();
        try
        {
            var r = CliRunner.Run("eval", "--model", CliRunner.Golden("gpt2_tied"), "--text-file", f);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("empty", r.Stderr);
        }
        finally
        {
            File.Delete(f);
        }
    }

    [Fact]
    public void HelpTeachesEveryCommand()
    {
        var overview = CliRunner.Run("--help");
        Assert.Equal(0, overview.ExitCode);
        foreach (var command in Headwise.Cli.Commands.CommandRegistry.All)
        {
            Assert.Contains(command.Name, overview.Stdout);
            var help = CliRunner.Run(command.Name, "--help");
            Assert.Equal(0, help.ExitCode);
            Assert.Contains("headwise " + command.Name, help.Stdout);
            Assert.Contains("Example", help.Stdout);
        }
    }
}

/// <summary>The CLI on the real pretrained model in ../shared (skipped with a message when absent).</summary>
public class RealModelCliTests
{
    [Fact]
    public void GenerateReproducesThePublishedStoryAndTokenizeItsIds()
    {
        string dir = CliRunner.RequireStories260K();
        string model = Path.Combine(dir, "stories260K.bin"), tok = Path.Combine(dir, "tok512.bin");
        var gen = CliRunner.Run("generate", "--model", model, "--tokenizer", tok, "--max-tokens", "60");
        Assert.Equal(0, gen.ExitCode);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.", gen.Stdout);

        var t = CliRunner.Run("tokenize", "--model", model, "--tokenizer", tok, "--text", "Once upon a time, there was a little girl named Lily.", "--json");
        Assert.Equal(0, t.ExitCode);
        using var doc = JsonDocument.Parse(t.Stdout);
        int[] published = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];
        Assert.Equal(published, doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());

        // the model's own greedy text is very likely under the model: a perplexity far below the vocabulary size
        var e = CliRunner.Run("eval", "--model", model, "--tokenizer", tok, "--text", "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", "--json");
        Assert.Equal(0, e.ExitCode);
        using var ev = JsonDocument.Parse(e.Stdout);
        Assert.InRange(ev.RootElement.GetProperty("perplexity").GetDouble(), 1.0, 3.0);
    }
}
