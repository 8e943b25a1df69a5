using System.Text.Json;

namespace Headwise.Tests.Acceptance;

public sealed class TrainCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hw-train-cli-" + Guid.NewGuid().ToString("N"));

    public TrainCliTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "data.txt"), string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 80)));
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private string[] Args(params string[] extra) =>
        ["train", "--data", Path.Combine(_dir, "data.txt"), "--out", Path.Combine(_dir, "run"), .. extra];

    [Fact]
    public void ModelWithoutBiasesOrPositionsTrainsAndExports()
    {
        var r = CliRunner.Run(Args("--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--steps", "2",
            "--batch", "2", "--attn-only", "--no-bias", "--no-positions", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(JsonDocument.Parse(r.Stdout).RootElement.GetProperty("hf_export").GetBoolean());
        string config = File.ReadAllText(Path.Combine(_dir, "run", "checkpoint", "headwise_model.json"));
        Assert.Contains("\"use_bias\": false", config);
        Assert.Contains("\"use_positions\": false", config);
    }

    [Fact]
    public void TrainsResumesAndTheCheckpointLoads()
    {
        var first = CliRunner.Run(Args("--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--steps", "6",
            "--batch", "2", "--lr", "1e-2", "--checkpoint-every", "3", "--json"));
        Assert.True(first.ExitCode == 0, first.Stderr);
        var j = JsonDocument.Parse(first.Stdout).RootElement;
        Assert.Equal(6, j.GetProperty("steps").GetInt32());
        Assert.True(j.GetProperty("completed").GetBoolean());
        Assert.True(j.GetProperty("hf_export").GetBoolean());
        Assert.Equal(6, File.ReadAllLines(Path.Combine(_dir, "run", "metrics.jsonl")).Length);
        Assert.True(File.Exists(Path.Combine(_dir, "run", "loss.png")));

        // the checkpoint is an ordinary model directory for every other command
        var eval = CliRunner.Run("eval", "--model", Path.Combine(_dir, "run", "checkpoint"), "--tokens", "116,104,101,32,99,97,116", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.True(JsonDocument.Parse(eval.Stdout).RootElement.GetProperty("mean_nll").GetDouble() > 0);

        // a fresh run must not overwrite it; --resume extends it
        var again = CliRunner.Run(Args("--steps", "6"));
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("already holds a checkpoint", again.Stderr);
        var resumed = CliRunner.Run(Args("--resume", Path.Combine(_dir, "run"), "--steps", "8", "--json"));
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(8, JsonDocument.Parse(resumed.Stdout).RootElement.GetProperty("steps").GetInt32());
        Assert.Equal(8, File.ReadAllLines(Path.Combine(_dir, "run", "metrics.jsonl")).Length);
    }

    [Theory]
    [InlineData("--heads", "3", "do not divide d_model")]
    [InlineData("--seq-len", "5000", "too short")]
    [InlineData("--arch", "bert", "--arch expects")]
    [InlineData("--one-hot-embeddings", null, "one-hot embeddings need d_model = vocab size")]
    public void BadInputExitsTwoWithOneLine(string option, string? value, string message)
    {
        var r = CliRunner.Run(value is null ? Args("--d-model", "16", option, "--steps", "1") : Args("--d-model", "16", option, value, "--steps", "1"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "run", "checkpoint")));
    }

    [Fact]
    public void ModelOptionsClashWithResume()
    {
        var r = CliRunner.Run(Args("--resume", _dir, "--layers", "2"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--layers cannot be combined with --resume", r.Stderr);
    }
}
