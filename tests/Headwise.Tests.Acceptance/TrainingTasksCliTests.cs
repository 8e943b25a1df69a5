using System.Text.Json;
using Headwise.Tokenizers;

namespace Headwise.Tests.Acceptance;

public sealed class TrainingTasksCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-tasks-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void IclRegressionExperimentWritesReportJsonAndFigures()
    {
        string outDir = Path.Combine(_dir, "icl");
        var r = CliRunner.Run("experiment", "icl-regression", "--out", outDir, "--steps", "20", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(20, doc.RootElement.GetProperty("Options").GetProperty("Steps").GetInt32());
        Assert.True(doc.RootElement.GetProperty("MultiHeadParameters").GetInt32() == doc.RootElement.GetProperty("SingleHeadParameters").GetInt32());
        foreach (string f in new[] { "report.md", "result.json", "loss.png", "kq-multihead.png", "ov-multihead.png", "kq-ov-singlehead.png" })
        {
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        }
    }

    [Fact]
    public void OcrExperimentPrintsWhatItsResultJsonAndReportSay()
    {
        // 300 steps (≈ 1 s): the factored model already fills in every held-out implication, the combined one stays at
        // chance (1 / objects); 3 steps would leave both at 0 and test nothing
        string outDir = Path.Combine(_dir, "ocr");
        var r = CliRunner.Run("experiment", "ocr", "--out", outDir, "--steps", "300");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "result.json")));
        var root = doc.RootElement;
        static string F(double v, int d = 3) => v.ToString("F" + d, System.Globalization.CultureInfo.InvariantCulture);
        int heldOut = root.GetProperty("HeldOutExamples").GetInt32();
        double chance = root.GetProperty("ChanceAccuracy").GetDouble();
        Assert.Equal(30, heldOut);                  // half of 60 subjects have their implication held out
        Assert.Equal(1.0 / 6, chance, 1e-12);       // 6 objects
        string[] lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal($"held-out implications: {heldOut}, chance {F(chance)}", lines[0]);
        string report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        var final = new Dictionary<string, (double Train, double HeldOut)>();
        foreach (string variant in new[] { "Factored", "Combined" })
        {
            var run = root.GetProperty(variant);
            var f = run.GetProperty("Final");
            double train = f.GetProperty("TrainAccuracy").GetDouble(), held = f.GetProperty("HeldOutAccuracy").GetDouble();
            double nuclear = f.GetProperty("OvNuclearNorm").GetDouble();
            Assert.Equal(300, f.GetProperty("Step").GetInt32());
            Assert.True(JsonElement.DeepEquals(run.GetProperty("Curve").EnumerateArray().Last(), f), $"{variant}: Final is not the last curve point");
            string[] printed = lines.Single(l => l.StartsWith(variant.ToLowerInvariant() + " ", StringComparison.Ordinal))
                .Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal([variant.ToLowerInvariant(), F(train), F(held), F(nuclear, 2)], printed);
            Assert.Contains($"| {variant.ToLowerInvariant()} | {run.GetProperty("Parameters").GetInt32()} | {F(train)} | {F(held)} | "
                + $"{F(f.GetProperty("HeldOutLoss").GetDouble())} | {F(nuclear, 2)} |", report);
            // accuracies are counts over the 90 training prompts and the 30 held-out ones
            Assert.Equal(Math.Round(held * heldOut), held * heldOut, 9);
            Assert.Equal(Math.Round(train * root.GetProperty("TrainExamples").GetInt32()), train * root.GetProperty("TrainExamples").GetInt32(), 9);
            final[variant] = (train, held);
        }
        // both fit the training prompts; only the factored W_O·W_V generalizes, the combined W_OV stays near chance
        Assert.True(final["Factored"].Train >= 0.9 && final["Combined"].Train >= 0.9, $"train accuracy {final["Factored"]} {final["Combined"]}");
        Assert.True(final["Factored"].HeldOut >= 0.9, $"factored held-out accuracy {final["Factored"].HeldOut}");
        Assert.True(final["Combined"].HeldOut <= 2 * chance, $"combined held-out accuracy {final["Combined"].HeldOut}");
        Assert.Equal(Path.Combine(outDir, "report.md"), lines[^1]);
        Assert.True(File.Exists(Path.Combine(outDir, "ov-nuclear-norm.png")));
    }

    [Fact]
    public void ListRecallExperimentLearnsTheLeftOutItem()
    {
        // 1,000 steps (≈ 6 s): accuracy on 256 held-out lists rises far above chance (1/5); the default 1,500 reach ≈ 0.93
        string outDir = Path.Combine(_dir, "recall");
        var r = CliRunner.Run("experiment", "list-recall", "--out", outDir, "--steps", "1000", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        double accuracy = doc.RootElement.GetProperty("FinalAccuracy").GetDouble();
        double chance = doc.RootElement.GetProperty("ChanceAccuracy").GetDouble();
        Assert.Equal(0.2, chance, 1e-12);
        Assert.True(accuracy > 3 * chance, $"held-out accuracy {accuracy}");
        var curve = doc.RootElement.GetProperty("Curve").EnumerateArray().ToArray();
        Assert.True(curve[0].GetProperty("Accuracy").GetDouble() < 2 * chance); // untrained: near chance
        foreach (var h in doc.RootElement.GetProperty("Heads").EnumerateArray())
        {
            // per-position attention means: each a probability
            Assert.InRange(h.GetProperty("OnMissingItem").GetDouble(), 0, 1);
            Assert.InRange(h.GetProperty("OnSecondListItem").GetDouble(), 0, 1);
        }
        foreach (string f in new[] { "report.md", "result.json", "loss.png", "accuracy.png" })
        {
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        }
    }

    [Fact]
    public void UnknownExperimentIsAUsageError()
    {
        var r = CliRunner.Run("experiment", "grokking", "--out", _dir);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("grokking", r.Stderr);
    }

    [Fact]
    public void TrainTokenizerWritesALoadableTokenizer()
    {
        string text = Path.Combine(_dir, "t.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("the state of the union is strong; ", 50)));
        string tok = Path.Combine(_dir, "tokenizer.json");
        var r = CliRunner.Run("train-tokenizer", "--text-file", text, "--vocab-size", "280", "--out", tok);
        Assert.Equal(0, r.ExitCode);
        var t = TokenizerLoader.Load(tok);
        Assert.InRange(t.VocabSize, 258, 281);   // a repetitive text runs out of pairs seen twice before 280
        Assert.Single(t.Encode(" union", addSpecial: false));
        Assert.Equal("the union is", t.Decode(t.Encode("the union is", addSpecial: false)));
    }

    [Fact]
    public void DemoWithAMissingModelSaysWhatIsMissing()
    {
        var r = CliRunner.Run("demo", "--model-dir", _dir, "--out", Path.Combine(_dir, "x.html"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("models/demo/README.md", r.Stderr);
    }

    [Fact]
    public void DemoWritesTheReportOfTheBundledModel()
    {
        Assert.NotNull(Headwise.Cli.Commands.DemoCommand.FindDemoModel());
        string html = Path.Combine(_dir, "demo.html");
        var r = CliRunner.Run("demo", "--out", html, "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(Path.GetFullPath(html), Path.GetFullPath(doc.RootElement.GetProperty("path").GetString()!));
        string page = File.ReadAllText(html);
        Assert.Contains("<html", page, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("induction", page, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void TheDemoModelTravelsWithTheBinarySoAnInstalledToolFindsItAnywhere()
    {
        // the CLI project copies models/demo beside its binary (and into the tool package): found from any directory
        string beside = Path.Combine(AppContext.BaseDirectory, "models", "demo");
        Assert.True(File.Exists(Path.Combine(beside, "model.safetensors")), $"{beside} lacks model.safetensors");
        Assert.Equal(
            File.ReadAllBytes(Path.Combine(CliRunner.RepoRoot, "models", "demo", "model.safetensors")),
            File.ReadAllBytes(Path.Combine(beside, "model.safetensors")));
        string saved = Directory.GetCurrentDirectory();
        try
        {
            Directory.SetCurrentDirectory(Path.GetTempPath());
            Assert.NotNull(Headwise.Cli.Commands.DemoCommand.FindDemoModel());
        }
        finally
        {
            Directory.SetCurrentDirectory(saved);
        }
    }

    [Fact]
    public void TrainDemoResumesAnInterruptedRunAndExportsTheModel()
    {
        // a tiny shape on a short text with the bundled tokenizer: 4 steps, then --resume extends the run to 6
        string text = Path.Combine(_dir, "text.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("The state of the Union is strong, and the people of the United States are free. ", 60)));
        string tok = Path.Combine(CliRunner.RepoRoot, "models", "demo", "tokenizer.json");
        string model = Path.Combine(_dir, "model"), run = Path.Combine(_dir, "run");
        string[] shape = ["--d-model", "16", "--layers", "1", "--heads", "2", "--seq-len", "16", "--batch", "2", "--checkpoint-every", "2", "--threads", "1"];
        var first = CliRunner.Run(["train-demo", "--text-file", text, "--tokenizer", tok, "--out", model, "--run-dir", run, "--steps", "4", .. shape]);
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("4 steps", first.Stdout);
        var resumed = CliRunner.Run(["train-demo", "--text-file", text, "--tokenizer", tok, "--out", model, "--run-dir", run, "--steps", "6", "--resume", "--json", .. shape]);
        Assert.Equal(0, resumed.ExitCode);
        using var doc = JsonDocument.Parse(resumed.Stdout);
        Assert.Equal(6, doc.RootElement.GetProperty("Steps").GetInt32());
        var steps = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt32()).ToArray();
        Assert.Equal([1, 2, 3, 4, 5, 6], steps); // the resumed run continued the metrics, no step twice
        using var loaded = ModelLoader.Load(model);
        Assert.Equal(4097, loaded.Config.VocabSize);
    }

    [Fact]
    public void TrainDemoContinuesAModelWithTheRandomRepeatCurriculumAndConstantScheduleRunsArePrefixes()
    {
        // a tiny model first, then two continuations of it (--init) with the curriculum: with --schedule constant the
        // 100-step run (the warmup's length) is bitwise the first 100 steps of the 102-step run
        string text = Path.Combine(_dir, "text.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("The state of the Union is strong, and the people of the United States are free. ", 60)));
        string tok = Path.Combine(CliRunner.RepoRoot, "models", "demo", "tokenizer.json");
        string[] common = ["--text-file", text, "--tokenizer", tok, "--batch", "2", "--threads", "1"];
        string start = Path.Combine(_dir, "start");
        Assert.Equal(0, CliRunner.Run(["train-demo", .. common, "--out", start, "--run-dir", Path.Combine(_dir, "r0"), "--steps", "2",
            "--d-model", "16", "--layers", "1", "--heads", "2", "--seq-len", "16"]).ExitCode);
        string[] next = [.. common, "--init", start, "--schedule", "constant", "--random-repeat-fraction", "0.5", "--checkpoint-every", "1000"];
        var shortRun = CliRunner.Run(["train-demo", .. next, "--out", Path.Combine(_dir, "m100"), "--run-dir", Path.Combine(_dir, "r100"), "--steps", "100"]);
        Assert.Equal(0, shortRun.ExitCode);
        var longRun = CliRunner.Run(["train-demo", .. next, "--out", Path.Combine(_dir, "m102"), "--run-dir", Path.Combine(_dir, "r102"), "--steps", "102", "--json"]);
        Assert.Equal(0, longRun.ExitCode);
        using var m100 = ModelLoader.Load(Path.Combine(_dir, "m100"));
        Assert.Equal(16, m100.Config.MaxPositions); // the shape came from --init
        var lossesOf = (string run) => File.ReadAllLines(Path.Combine(_dir, run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("loss").GetSingle()).ToArray();
        Assert.Equal(lossesOf("r100"), lossesOf("r102")[..100]);

        var clash = CliRunner.Run(["train-demo", .. next, "--out", Path.Combine(_dir, "m6"), "--steps", "2", "--layers", "2"]);
        Assert.Equal(2, clash.ExitCode);
        Assert.Contains("--init", clash.Stderr);
        var badSchedule = CliRunner.Run(["train-demo", .. common, "--out", Path.Combine(_dir, "m7"), "--steps", "2", "--schedule", "wsd"]);
        Assert.Equal(2, badSchedule.ExitCode);
        Assert.Contains("--schedule", badSchedule.Stderr);
    }
}
