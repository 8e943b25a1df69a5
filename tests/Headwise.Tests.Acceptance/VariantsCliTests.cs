using System.Text.Json;

namespace Headwise.Tests.Acceptance;

// `train --attention-variant` and `experiment variants` from the command line (docs/variants.md).
public sealed class VariantsCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hw-variants-cli-" + Guid.NewGuid().ToString("N"));

    public VariantsCliTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "data.txt"), string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 80)));
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private string[] Train(string run, params string[] extra) =>
        ["train", "--data", Path.Combine(_dir, "data.txt"), "--out", Path.Combine(_dir, run), "--layers", "1", "--d-model", "16",
            "--heads", "4", "--seq-len", "16", "--steps", "2", "--batch", "2", .. extra];

    [Fact]
    public void SymmetricQkExportsAndMohIsTrainingOnlyAndRefusedByTheAnalyses()
    {
        var sym = CliRunner.Run(Train("sym", "--attention-variant", "symmetric_qk", "--json"));
        Assert.True(sym.ExitCode == 0, sym.Stderr);
        Assert.True(JsonDocument.Parse(sym.Stdout).RootElement.GetProperty("hf_export").GetBoolean());
        var eval = CliRunner.Run("eval", "--model", Path.Combine(_dir, "sym", "checkpoint"), "--tokens", "116,104,101,32,99,97,116", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);

        var moh = CliRunner.Run(Train("moh", "--attention-variant", "moh", "--moh-shared", "1", "--moh-active", "2"));
        Assert.True(moh.ExitCode == 0, moh.Stderr);
        Assert.Contains("training-only: the moh attention", moh.Stdout);
        Assert.Contains("\"attention_variant\": \"moh\"", File.ReadAllText(Path.Combine(_dir, "moh", "checkpoint", "headwise_model.json")));
        var refused = CliRunner.Run("eval", "--model", Path.Combine(_dir, "moh", "checkpoint"), "--tokens", "116,104,101", "--json");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("a training-only checkpoint (the moh attention variant)", refused.Stderr);
        Assert.Single(refused.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void LowRankExportsAndTheOtherNewVariantsAreTrainingOnly()
    {
        var lowRank = CliRunner.Run(Train("lr", "--attention-variant", "low_rank", "--low-rank", "4", "--json"));
        Assert.True(lowRank.ExitCode == 0, lowRank.Stderr);
        Assert.True(JsonDocument.Parse(lowRank.Stdout).RootElement.GetProperty("hf_export").GetBoolean());
        Assert.Contains("\"low_rank\": 4", File.ReadAllText(Path.Combine(_dir, "lr", "checkpoint", "headwise_model.json")));
        var eval = CliRunner.Run("eval", "--model", Path.Combine(_dir, "lr", "checkpoint"), "--tokens", "116,104,101,32,99,97,116", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        foreach (var (variant, extra) in new[] { ("affine_scaled", ""), ("gaussian", ""), ("relative_conv", "--conv-kernel 5") })
        {
            var r = CliRunner.Run(Train(variant, ["--attention-variant", variant, .. extra.Split(' ', StringSplitOptions.RemoveEmptyEntries)]));
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains($"training-only: the {variant} attention", r.Stdout);
        }
        Assert.Contains("\"conv_kernel\": 5", File.ReadAllText(Path.Combine(_dir, "relative_conv", "checkpoint", "headwise_model.json")));
    }

    [Theory]
    [InlineData("--attention-variant flash", "unknown variant 'flash' (known: softmax, symmetric_qk, collapsed_qk, moh, linear, sinkhorn, affine_scaled, gaussian, low_rank, relative_conv, random_features, dynamic_mask, tensor)")]
    [InlineData("--attention-variant moh --moh-active 4 --moh-shared 1", "moh active heads (--moh-active) 4 must be between 1 and the 3 routed heads")]
    [InlineData("--attention-variant softmax --moh-active 2", "--moh-active applies to --attention-variant moh only")]
    [InlineData("--attention-variant linear --sinkhorn-iters 2", "--sinkhorn-iters applies to --attention-variant sinkhorn only")]
    [InlineData("--attention-variant gaussian --low-rank 2", "--low-rank applies to --attention-variant low_rank only")]
    [InlineData("--attention-variant low_rank --conv-kernel 2", "--conv-kernel applies to --attention-variant relative_conv only")]
    [InlineData("--attention-variant low_rank --low-rank 17", "low_rank rank (--low-rank) 17 must be between 1 and d_model 16")]
    [InlineData("--attention-variant relative_conv --conv-kernel 17", "relative_conv kernel (--conv-kernel) 17 must be between 1 and the sequence length 16")]
    [InlineData("--attention-variant relative_conv --conv-kernel 0", "--conv-kernel expects an integer in [1, 65536], got '0'")]
    [InlineData("--attention-variant softmax --mask-window 4", "--mask-window applies to --attention-variant dynamic_mask only")]
    [InlineData("--attention-variant dynamic_mask --mask-window 0", "--mask-window")]
    [InlineData("--attention-variant tensor --seq-len 65", "the tensor attention is O(T³): sequence length 65 is above its limit 64")]
    public void BadVariantOptionsExitTwoNamingThem(string options, string message)
    {
        var r = CliRunner.Run(Train("bad", options.Split(' ')));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void ExperimentVariantsJsonHasEveryVariant()
    {
        var r = CliRunner.Run("experiment", "variants", "--task", "list-recall", "--steps", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal("list-recall", j.GetProperty("task").GetString());
        Assert.Equal(Math.Log(5), j.GetProperty("chance_loss").GetDouble(), 9);
        var names = j.GetProperty("variants").EnumerateArray().Select(v => v.GetProperty("variant").GetString()).ToArray();
        Assert.Equal(["softmax", "symmetric_qk", "collapsed_qk", "moh", "linear", "sinkhorn", "affine_scaled", "gaussian", "low_rank", "relative_conv", "random_features", "dynamic_mask", "tensor"], names);
        foreach (var v in j.GetProperty("variants").EnumerateArray())
        {
            Assert.True(v.GetProperty("heldout_loss").GetDouble() > 0);
            double acc = v.GetProperty("heldout_accuracy").GetDouble();
            Assert.InRange(acc, 0, 1);
            Assert.True(v.GetProperty("parameters").GetInt32() > 0);
            Assert.True(v.GetProperty("seconds").GetDouble() > 0);
        }
    }

    [Fact]
    public void RandomFeaturesExportsAndDynamicMaskTrains()
    {
        var rf = CliRunner.Run(Train("rf", "--attention-variant", "random_features", "--seed", "3", "--json"));
        Assert.True(rf.ExitCode == 0, rf.Stderr);
        Assert.True(JsonDocument.Parse(rf.Stdout).RootElement.GetProperty("hf_export").GetBoolean());
        Assert.Contains("\"feature_seed\": 3", File.ReadAllText(Path.Combine(_dir, "rf", "checkpoint", "headwise_model.json")));
        var eval = CliRunner.Run("eval", "--model", Path.Combine(_dir, "rf", "checkpoint"), "--tokens", "116,104,101,32,99,97,116", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        var dyn = CliRunner.Run(Train("dyn", "--attention-variant", "dynamic_mask", "--mask-window", "4"));
        Assert.True(dyn.ExitCode == 0, dyn.Stderr);
        Assert.Contains("training-only: the dynamic_mask attention", dyn.Stdout);
    }

    [Fact]
    public void ExperimentVariantsRunsIclRegression()
    {
        var r = CliRunner.Run("experiment", "variants", "--task", "icl-regression", "--steps", "3", "--only", "softmax,dynamic_mask", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal("icl-regression", j.GetProperty("task").GetString());
        Assert.True(j.GetProperty("chance_loss").GetDouble() > j.GetProperty("baseline_loss").GetDouble());
        Assert.Equal(JsonValueKind.Null, j.GetProperty("chance_accuracy").ValueKind);
        foreach (var v in j.GetProperty("variants").EnumerateArray())
        {
            Assert.True(v.GetProperty("heldout_loss").GetDouble() > 0);
            Assert.Equal(JsonValueKind.Null, v.GetProperty("heldout_accuracy").ValueKind);
        }
    }

    [Fact]
    public void ExperimentVariantsSweepsTheLearningRate()
    {
        var r = CliRunner.Run("experiment", "variants", "--task", "list-recall", "--steps", "2", "--only", "softmax,tensor", "--lr", "1e-3,1e-2", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var runs = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("variants").EnumerateArray()
            .Select(v => (v.GetProperty("variant").GetString(), v.GetProperty("learning_rate").GetDouble())).ToArray();
        Assert.Equal([("softmax", 1e-3), ("softmax", 1e-2), ("tensor", 1e-3), ("tensor", 1e-2)], runs);
    }

    [Theory]
    [InlineData("--lr 1e-2,x", "--lr: expected positive learning rates separated by commas")]
    [InlineData("--only softmax,flash", "--only: unknown variant 'flash'")]
    [InlineData("--task copy", "--task: unknown task 'copy' (known: induction, list-recall, icl-regression)")]
    [InlineData("--out x", "--out does not apply to `experiment variants`")]
    public void ExperimentVariantsRefusesWhatDoesNotApply(string options, string message)
    {
        var r = CliRunner.Run(["experiment", "variants", .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }
}

// `bench --variants` (docs/performance.md): every variant's training speed as a ratio to softmax's.
public sealed class BenchVariantsCliTests
{
    [Fact]
    public void BenchVariantsReportsEveryVariantAgainstSoftmax()
    {
        var r = CliRunner.Run("bench", "--quick", "--skip-load", "--variants", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var rows = doc.RootElement.GetProperty("variants").EnumerateArray().ToArray();
        Assert.Equal(Headwise.Training.AttentionVariants.All, rows.Select(v => v.GetProperty("variant").GetString()).ToArray());
        Assert.Equal(1.0, rows[0].GetProperty("ratio").GetDouble(), 9);
        foreach (var v in rows)
        {
            // --quick runs at sequence 32, where every variant (tensor included) trains
            Assert.Equal(JsonValueKind.Null, v.GetProperty("skipped").ValueKind);
            double tps = v.GetProperty("tokens_per_s").GetDouble();
            Assert.Equal(2 * 32 / v.GetProperty("step_s").GetDouble(), tps, 1e-6 * tps);
        }
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("influence").ValueKind);
    }
}
