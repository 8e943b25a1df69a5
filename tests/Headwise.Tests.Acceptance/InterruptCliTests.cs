using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Headwise.Tests.Acceptance;

/// <summary>Ctrl-C on a long command, delivered as the terminal delivers it (SIGINT to the real process): it stops within
/// seconds with exit code 130, its last line on stderr says "interrupted", and it leaves no temporary file behind.</summary>
public partial class InterruptCliTests(ITestOutputHelper output)
{
    private const int Sigint = 2;

    // kill(2) from the C library, not /usr/bin/kill, which a slim image may lack
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    // one unit of work (a timed GEMM, a training step) plus the process's exit, on a loaded two-core machine
    private static readonly TimeSpan StopsWithin = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan StartsWithin = TimeSpan.FromSeconds(120);

    [Fact]
    public void BenchStopsOnCtrlC()
    {
        RequireSigint();
        using var cli = new CliProcess(Path.GetTempPath(), "bench", "--skip-load", "--threads", "1");
        cli.WaitForStderr("[bench] GEMM", StartsWithin);
        var (code, stderr) = cli.Interrupt(StopsWithin);
        output.WriteLine(stderr);
        Assert.Equal(130, code);
        Assert.Equal("headwise bench: interrupted", LastLine(stderr));
    }

    [Fact]
    public void TrainStopsOnCtrlCSavesItsCheckpointAndLeavesNoTemporaryFile()
    {
        RequireSigint();
        string dir = Directory.CreateTempSubdirectory("headwise-interrupt-").FullName;
        try
        {
            string data = Path.Combine(dir, "data.txt");
            File.WriteAllText(data, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 400)));
            string run = Path.Combine(dir, "run");
            using var cli = new CliProcess(dir, "train", "--data", data, "--out", run, "--steps", "1000000", "--eval-every", "0",
                "--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch", "2", "--threads", "1");
            cli.WaitForStderr("step 1/", StartsWithin);
            var (code, stderr) = cli.Interrupt(StopsWithin);
            output.WriteLine(stderr);
            Assert.Equal(130, code);
            Assert.StartsWith("headwise train: interrupted (step ", LastLine(stderr));
            Assert.Contains("--resume", LastLine(stderr));
            Assert.True(File.Exists(Path.Combine(run, "checkpoint", "model.safetensors")), "the checkpoint to resume from");
            var leftovers = Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories)
                .Where(p => Path.GetFileName(p).Contains(".tmp", StringComparison.Ordinal) || p.EndsWith(".partial", StringComparison.Ordinal));
            Assert.Empty(leftovers);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string LastLine(string text) => text.TrimEnd('\r', '\n').Split('\n')[^1].TrimEnd('\r');

    // A child inherits an ignored SIGINT (a shell ignores it for background jobs), and .NET then leaves it ignored.
    // A process started in the background (a CI job, `cmd &`) inherits SIGINT as ignored, and .NET then never sees it. On Linux
    // the child is started through `env --default-signal=INT` (coreutils ≥ 8.31), which restores the default first, so the
    // test runs wherever it is started; elsewhere it needs a test process whose SIGINT is not ignored.
    private const string ResetSigint = "/usr/bin/env";

    private static void RequireSigint()
    {
        if (OperatingSystem.IsLinux())
        {
            Assert.SkipUnless(File.Exists(ResetSigint), $"{ResetSigint} is needed to start the CLI with SIGINT restored");
            return;
        }
        Assert.SkipUnless(OperatingSystem.IsMacOS(), "sending SIGINT needs a Unix system");
    }

    /// <summary>The built CLI (Headwise.Cli.dll beside the tests) as its own process, stdout and stderr collected.</summary>
    private sealed class CliProcess : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _stderr = new();

        public CliProcess(string workingDirectory, params string[] args)
        {
            string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
            var start = new ProcessStartInfo(OperatingSystem.IsLinux() ? ResetSigint : dotnet)
            {
                WorkingDirectory = workingDirectory,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (OperatingSystem.IsLinux())
            {
                start.ArgumentList.Add("--default-signal=INT");
                start.ArgumentList.Add(dotnet);
            }
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Headwise.Cli.dll"));
            foreach (var a in args)
            {
                start.ArgumentList.Add(a);
            }
            _process = new Process { StartInfo = start };
            _process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (_stderr)
                    {
                        _stderr.AppendLine(e.Data);
                    }
                }
            };
            _process.OutputDataReceived += (_, _) => { };
            _process.Start();
            _process.BeginErrorReadLine();
            _process.BeginOutputReadLine();
        }

        private string Stderr
        {
            get
            {
                lock (_stderr)
                {
                    return _stderr.ToString();
                }
            }
        }

        /// <summary>Waits until stderr shows <paramref name="text"/>: the command is past its start and into its long work.</summary>
        public void WaitForStderr(string text, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (!Stderr.Contains(text, StringComparison.Ordinal))
            {
                Assert.False(_process.HasExited, $"the command ended before printing '{text}': exit {(_process.HasExited ? _process.ExitCode : 0)}, stderr: {Stderr}");
                Assert.True(clock.Elapsed < timeout, $"no '{text}' on stderr after {timeout.TotalSeconds} s: {Stderr}");
                Thread.Sleep(50);
            }
        }

        /// <summary>Sends SIGINT (what Ctrl-C sends) and waits for the exit; returns the exit code and all of stderr.</summary>
        public (int ExitCode, string Stderr) Interrupt(TimeSpan timeout)
        {
            Assert.True(SendSignal(_process.Id, Sigint) == 0, $"kill(2) failed: errno {Marshal.GetLastPInvokeError()}");
            Assert.True(_process.WaitForExit(timeout), $"still running {timeout.TotalSeconds} s after SIGINT; stderr: {Stderr}");
            _process.WaitForExit(); // drains the redirected streams
            return (_process.ExitCode, Stderr);
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }
            _process.Dispose();
        }
    }
}
