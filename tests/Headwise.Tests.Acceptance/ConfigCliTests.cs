using System.Text.Json.Nodes;

namespace Headwise.Tests.Acceptance;

/// <summary>An impossible config.json stops every command at load, before any forward: one line naming the field, exit code 2.</summary>
public sealed class ConfigCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-cli-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("info")]
    [InlineData("generate", "--tokens", "1,2,3", "--max-tokens", "2")]
    public void HeadsThatDoNotDivideTheWidthAreNamed(string command, params string[] rest)
    {
        // n_embd 100 with n_head 3 used to pass `info` (showing d_head 33) and then crash `generate`
        foreach (var f in Directory.GetFiles(CliRunner.Golden("gpt2_tied")))
        {
            File.Copy(f, Path.Combine(_dir, Path.GetFileName(f)), overwrite: true);
        }
        string path = Path.Combine(_dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["n_embd"] = 100;
        config["n_head"] = 3;
        File.WriteAllText(path, config.ToJsonString());
        var r = CliRunner.Run([command, "--model", _dir, .. rest]);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains("n_embd (100) must be a multiple of n_head (3)", r.Stderr);
    }
}
