using System.Text;
using Headwise.Hub;

namespace Headwise.Tests.Unit.Hub;

/// <summary>Tests that swap the process-wide <see cref="Console.Out"/> and <see cref="Console.Error"/> run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "Console";
}

/// <summary>The library reports progress through <see cref="IProgress{T}"/> only and never draws: a pull with retries, a
/// broken connection and a second (cached) pull writes nothing to the console, with or without a progress receiver.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class HubSilenceTests : IDisposable
{
    private readonly FakeHub _hub = new();
    private readonly string _cacheDir = Directory.CreateTempSubdirectory("headwise-hub-silence-").FullName;

    public void Dispose()
    {
        _hub.Dispose();
        Directory.Delete(_cacheDir, recursive: true);
    }

    [Fact]
    public void Pull_WritesNothingToTheConsole()
    {
        _hub.AddRepo("test-org/quiet", new()
        {
            ["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\":\"llama\"}"),
            ["model.safetensors"] = new byte[10_000],
        });
        _hub.Fail500Left = 1;
        _hub.DropsLeft = 1;
        var options = new HubOptions { Endpoint = _hub.HubUrl, CacheDir = _cacheDir, RetryDelay = TimeSpan.FromMilliseconds(10) };
        var recorder = new ProgressRecorder();
        var (savedOut, savedError) = (Console.Out, Console.Error);
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            using (var client = new HubClient(options, recorder))
            {
                client.Pull("test-org/quiet");
            }
            using (var silent = new HubClient(options))
            {
                silent.Pull("test-org/quiet");
            }
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedError);
        }
        Assert.Equal("", stdout.ToString());
        Assert.Equal("", stderr.ToString());
        Assert.Contains(recorder.Events, e => e.Kind == HubProgressKind.Retrying);
        Assert.Contains(recorder.Events, e => e.Kind == HubProgressKind.Resumed);
        Assert.Contains(recorder.Events, e => e is { Kind: HubProgressKind.Completed, File: "model.safetensors", Done: 10_000 });
    }

    [Fact]
    public void TheLibrary_DoesNotReferenceSystemConsole() =>
        Assert.DoesNotContain(typeof(HubClient).Assembly.GetReferencedAssemblies(), a => a.Name == "System.Console");
}
