using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>heads, patterns and dla on the real model stories260K.</summary>
public class AnalysisCliTests
{
    private static (string Model, string Tok) Stories()
    {
        string dir = CliRunner.RequireStories260K();
        return (Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
    }

    [Fact]
    public void HeadsJsonHasExactlyTheSixScoresOfShapeLayersByHeads()
    {
        var (model, _) = Stories();
        var r = CliRunner.Run("heads", "--model", model, "--seq-len", "20", "--batch", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        int L = root.GetProperty("layers").GetInt32(), H = root.GetProperty("heads").GetInt32();
        Assert.Equal(5, L);
        Assert.Equal(8, H);
        var scores = root.GetProperty("scores");
        Assert.Equal(["prev_token", "induction", "duplicate", "sink", "entropy", "distance"],
            scores.EnumerateObject().Select(p => p.Name).ToArray());
        foreach (var p in scores.EnumerateObject())
        {
            var rows = p.Value.EnumerateArray().ToArray();
            Assert.Equal(L, rows.Length);
            foreach (var row in rows)
            {
                var values = row.EnumerateArray().Select(v => v.GetDouble()).ToArray();
                Assert.Equal(H, values.Length);
                Assert.All(values, v => Assert.True(double.IsFinite(v) && v >= 0, $"{p.Name}: {v}"));
                if (p.Name is "prev_token" or "induction" or "duplicate" or "sink")
                {
                    Assert.All(values, v => Assert.True(v <= 1 + 1e-5, $"{p.Name}: {v} is not a probability"));
                }
            }
        }
    }

    [Fact]
    public void HeadsTextAndTokens()
    {
        var (model, _) = Stories();
        var r = CliRunner.Run("heads", "--model", model, "--tokens", "1,403,407,261,378,432", "--seq-len", "10", "--batch", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("induction:", r.Stdout);
        Assert.Contains("entropy:", r.Stdout);
        var bad = CliRunner.Run("heads", "--model", model, "--seq-len", "1000");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--seq-len", bad.Stderr);
    }

    [Fact]
    public void PatternsJsonRowsAreDistributions()
    {
        var (model, tok) = Stories();
        var r = CliRunner.Run("patterns", "--model", model, "--tokenizer", tok, "--text", "Once upon a time", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        int T = root.GetProperty("token_ids").GetArrayLength();
        Assert.Equal(T, root.GetProperty("tokens").GetArrayLength());
        var patterns = root.GetProperty("patterns");
        Assert.Equal(5, patterns.GetArrayLength());
        var p = patterns[2][3].EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(T * T, p.Length);
        for (int q = 0; q < T; q++)
        {
            Assert.Equal(1, p.Skip(q * T).Take(T).Sum(), 4);
            Assert.Equal(0, p.Skip(q * T + q + 1).Take(T - q - 1).Sum());
        }

        var one = CliRunner.Run("patterns", "--model", model, "--tokens", "1,403,407,261", "--head", "1.3", "--json");
        Assert.True(one.ExitCode == 0, one.Stderr);
        using var d1 = JsonDocument.Parse(one.Stdout);
        Assert.Equal("1.3", d1.RootElement.GetProperty("head").GetString());
        Assert.Equal(16, d1.RootElement.GetProperty("pattern").GetArrayLength());

        var text = CliRunner.Run("patterns", "--model", model, "--tokenizer", tok, "--text", "Once upon a time", "--head", "4.7");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("head 4.7", text.Stdout);
        Assert.Equal(2, CliRunner.Run("patterns", "--model", model, "--tokens", "1,2", "--head", "9.0").ExitCode);
    }

    [Fact]
    public void DlaJsonSumsToTheLogitDifference()
    {
        var (model, tok) = Stories();
        var r = CliRunner.Run("dla", "--model", model, "--tokens", "1,403,407,261,378", "--answer", "432", "--wrong", "300", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        double logit = root.GetProperty("logit").GetDouble();
        double sum = root.GetProperty("contributions").EnumerateArray().Sum(c => c.GetProperty("value").GetDouble());
        Assert.Equal(logit, sum, 3);
        Assert.Equal(5, root.GetProperty("heads").GetArrayLength());

        var text = CliRunner.Run("dla", "--model", model, "--tokenizer", tok, "--text", "Once upon a", "--answer", "432", "--position", "2");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("contribution", text.Stdout);
        var bad = CliRunner.Run("dla", "--model", model, "--tokens", "1,403", "--answer", "9999");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--answer", bad.Stderr);
    }

    [Fact]
    public void DlaReadsATextAnswerAsPatchDoes()
    {
        // " time" alone is two SentencePiece tokens ("▁", "time"); after "Once upon a" it is the one token 378 (" time"),
        // exactly what patch and the tasks take as the answer — so both commands accept the same --answer
        var (model, tok) = Stories();
        var byText = CliRunner.Run("dla", "--model", model, "--tokenizer", tok, "--text", "Once upon a", "--answer", " time", "--wrong", " day", "--json");
        var byId = CliRunner.Run("dla", "--model", model, "--tokenizer", tok, "--text", "Once upon a", "--answer", "378",
            "--wrong", TaskLibraryContinuation(model, tok, "Once upon a", " day"), "--json");
        Assert.True(byText.ExitCode == 0, byText.Stderr);
        Assert.Equal(byId.Stdout, byText.Stdout);
        using var doc = JsonDocument.Parse(byText.Stdout);
        Assert.Equal(378, doc.RootElement.GetProperty("answer").GetInt32());
        Assert.DoesNotContain("note:", byText.Stderr);

        // an answer that adds two tokens: the first is used, and a note says so
        var two = CliRunner.Run("dla", "--model", model, "--tokenizer", tok, "--text", "Once upon a", "--answer", " time there", "--json");
        Assert.True(two.ExitCode == 0, two.Stderr);
        Assert.Contains("adds 2 tokens after the prompt", two.Stderr);
        using var twoDoc = JsonDocument.Parse(two.Stdout);
        Assert.Equal(378, twoDoc.RootElement.GetProperty("answer").GetInt32());
    }

    [Fact]
    public void PatchShowsARecoveryScoreOnlyWhenTheCleanRunClearlyWins()
    {
        var (model, tok) = Stories();
        string[] clean = ["--clean", "Tom had a big red ball. Tom liked the ball. He played with the"];
        string[] corrupted = ["--corrupted", "Tom had a big red dog. Tom liked the ball. He played with the"];
        string[] answers = ["--answer", " ball", "--wrong", " dog"];
        // clean 5.30 vs corrupted −0.71 logits: a clear win, so 0–1 scores
        var good = CliRunner.Run(["patch", "--model", model, "--tokenizer", tok, .. clean, .. corrupted, .. answers, "--json"]);
        Assert.True(good.ExitCode == 0, good.Stderr);
        using var g = JsonDocument.Parse(good.Stdout);
        Assert.True(g.RootElement.GetProperty("normalized").GetBoolean());
        Assert.Equal(JsonValueKind.Null, g.RootElement.GetProperty("warning").ValueKind);
        double cl = g.RootElement.GetProperty("clean").GetDouble(), co = g.RootElement.GetProperty("corrupted").GetDouble();
        Assert.Equal(cl - co, g.RootElement.GetProperty("gap").GetDouble(), 9);

        // the same prompts swapped: the clean run now loses, so raw differences and a warning, never a 0–1 score
        var swapped = CliRunner.Run(["patch", "--model", model, "--tokenizer", tok, "--clean", corrupted[1], "--corrupted", clean[1], .. answers, "--json"]);
        Assert.True(swapped.ExitCode == 0, swapped.Stderr);
        using var s = JsonDocument.Parse(swapped.Stdout);
        Assert.False(s.RootElement.GetProperty("normalized").GetBoolean());
        Assert.Contains("the clean run is worse than the corrupted one", s.RootElement.GetProperty("warning").GetString());
        Assert.Contains("warning: the clean run is worse", swapped.Stderr);
        Assert.Equal(co - cl, s.RootElement.GetProperty("gap").GetDouble(), 9);
        // raw: patching head h of the swapped pair moves the metric by values[l][h] logits from the corrupted run's
        var gv = g.RootElement.GetProperty("values");
        var sv = s.RootElement.GetProperty("values");
        Assert.Contains("raw", s.RootElement.GetProperty("definition").GetString());
        Assert.NotEqual(gv[4][4].GetDouble(), sv[4][4].GetDouble());

        var text = CliRunner.Run(["patch", "--model", model, "--tokenizer", tok, "--clean", corrupted[1], "--corrupted", clean[1], .. answers]);
        Assert.Contains("WARNING: the clean run is worse than the corrupted one", text.Stdout);
        Assert.Contains("patched − corrupted (raw)", text.Stdout);
        Assert.DoesNotContain("recovered", text.Stdout);
    }

    private static string TaskLibraryContinuation(string model, string tok, string prompt, string answer)
    {
        using var m = ModelLoader.Load(model, tok);
        var t = m.RequireTokenizer();
        return Headwise.Analysis.Tasks.TaskLibrary.Continuation(t, prompt, t.Encode(prompt), answer)[0].ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
