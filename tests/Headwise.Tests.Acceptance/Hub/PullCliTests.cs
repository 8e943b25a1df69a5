using System.Text.Json;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Tests.Unit.Hub;

namespace Headwise.Tests.Acceptance.Hub;

/// <summary>`headwise pull` end to end against the loopback fake Hub: JSON schema, a loadable snapshot, and a second pull that downloads nothing.</summary>
public sealed class PullCliTests : IDisposable
{
    private readonly FakeHub _hub = new();
    private readonly string _cache = Directory.CreateTempSubdirectory("headwise-pull-cli-").FullName;

    public void Dispose()
    {
        _hub.Dispose();
        Directory.Delete(_cache, recursive: true);
    }

    [Fact]
    public void PullJsonThenLoadTheSnapshot()
    {
        string golden = CliRunner.Golden("gpt2_tied");
        _hub.AddRepo("tiny-org/tiny-gpt2", new()
        {
            ["config.json"] = File.ReadAllBytes(Path.Combine(golden, "config.json")),
            ["model.safetensors"] = File.ReadAllBytes(Path.Combine(golden, "model.safetensors")),
        });
        string[] args = ["pull", "tiny-org/tiny-gpt2", "--endpoint", _hub.HubUrl, "--cache-dir", _cache, "--json"];
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("tiny-org/tiny-gpt2", root.GetProperty("repo").GetString());
        string path = root.GetProperty("path").GetString()!;
        Assert.StartsWith(Path.Combine(_cache, "models--tiny-org--tiny-gpt2", "snapshots"), path);
        var files = root.GetProperty("files").EnumerateArray().ToList();
        Assert.Contains(files, f => f.GetProperty("name").GetString() == "model.safetensors" && f.GetProperty("downloaded").GetBoolean());

        // the snapshot loads and computes exactly what the original directory computes
        using var pulled = ModelLoader.Load(path);
        using var original = ModelLoader.Load(golden);
        var input = ModelInput.Single(1, 2, 3, 4);
        Assert.Equal(original.Model.Forward(input), pulled.Model.Forward(input));

        // a second pull downloads nothing
        var again = CliRunner.Run(args);
        Assert.Equal(0, again.ExitCode);
        using var doc2 = JsonDocument.Parse(again.Stdout);
        Assert.All(doc2.RootElement.GetProperty("files").EnumerateArray(), f => Assert.False(f.GetProperty("downloaded").GetBoolean()));
    }

    [Fact]
    public void RedirectedStderr_GetsOneLinePerFile()
    {
        string golden = CliRunner.Golden("gpt2_tied");
        byte[] weights = File.ReadAllBytes(Path.Combine(golden, "model.safetensors"));
        _hub.AddRepo("tiny-org/tiny-gpt2", new()
        {
            ["config.json"] = File.ReadAllBytes(Path.Combine(golden, "config.json")),
            ["model.safetensors"] = weights,
        });
        _hub.Fail500Left = 1;
        string[] args = ["pull", "tiny-org/tiny-gpt2", "--endpoint", _hub.HubUrl, "--cache-dir", _cache];
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        // the CLI draws what the library reports: a retry, then one line per finished file (no escape codes: not a terminal)
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("hub: the file list of tiny-org/tiny-gpt2: HTTP 500; retrying in ", lines[0]);
        Assert.Contains(lines, l => l.StartsWith($"  model.safetensors  {Headwise.Hub.HubProgress.FormatBytes(weights.Length)}  in 0:0", StringComparison.Ordinal) && l.EndsWith("/s)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  config.json  ", StringComparison.Ordinal));
        Assert.Equal(3, lines.Length);
        Assert.DoesNotContain('\x1b', r.Stderr);

        var again = CliRunner.Run(args);
        Assert.Equal(0, again.ExitCode);
        Assert.Contains($"  model.safetensors  {Headwise.Hub.HubProgress.FormatBytes(weights.Length)}  (already in the cache)", again.Stderr);
    }

    [Fact]
    public void MissingModelIsOneLineExit2()
    {
        var r = CliRunner.Run("pull", "nobody/nothing", "--endpoint", _hub.HubUrl, "--cache-dir", _cache);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
