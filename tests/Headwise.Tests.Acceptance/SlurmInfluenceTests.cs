using System.Diagnostics;
using System.Text.RegularExpressions;
using Headwise.Influence;

namespace Headwise.Tests.Acceptance;

/// <summary>
/// headwise influence on a real one-node Slurm (dev/slurm/start-one-node.sh: Debian's slurm-wlm and munge, as root): an array of
/// 4 tasks over a small corpus with the demo model, one task killed mid-run with scancel and requeued by the written requeue.sh,
/// the dependent merge job awaited, and its merged file compared byte for byte with a single-process run. Skipped, saying why, where Slurm cannot run.
/// </summary>
public sealed partial class SlurmInfluenceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-slurm-test-").FullName;
    private readonly string _state = Path.Combine(Path.GetTempPath(), $"headwise-slurm-{Guid.NewGuid():N}");
    private string? _conf;

    public void Dispose()
    {
        if (_conf is not null)
        {
            Run(Path.Combine(CliRunner.RepoRoot, "dev", "slurm", "stop-one-node.sh"), _state);
        }
        Directory.Delete(_dir, recursive: true);
        try
        {
            Directory.Delete(_state, recursive: true);
        }
        catch (IOException)
        {
            // the daemons may still be writing their last state as they stop: a folder under /tmp left behind
        }
    }

    [GeneratedRegex(@"array job (\d+) \(4 tasks\) and merge job (\d+)")]
    private static partial Regex Submitted();

    [Fact]
    public void ArrayWithAKilledRequeuedTaskMergesToTheSingleProcessResult()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            Assert.Skip($"a one-node Slurm needs Linux and root (running as {Environment.UserName} on {Environment.OSVersion.Platform})");
        }
        var start = Run(Path.Combine(CliRunner.RepoRoot, "dev", "slurm", "start-one-node.sh"), _state);
        if (start.Code == 3)
        {
            Assert.Skip($"Slurm cannot run here: {start.Stderr.Trim()}");
        }
        Assert.True(start.Code == 0, $"start-one-node.sh failed ({start.Code}): {start.Stderr}");
        _conf = Path.Combine(_state, "slurm.conf");
        Environment.SetEnvironmentVariable("SLURM_CONF", _conf); // sbatch, run by --submit, reads it

        string corpus = InfluenceCliTests.WriteCorpus(_dir, 1200);
        string outDir = Path.Combine(_dir, "slurm");
        // small batches and one thread keep each task running for seconds, long enough to be killed mid-run
        var submit = CliRunner.Run("influence", "slurm", "--array", "4", "--model", InfluenceCliTests.Demo, "--corpus", corpus,
            "--heads", "1.2,3.0", "--out", outDir, "--threads", "1", "--batch-tokens", "64", "--submit");
        Assert.True(submit.ExitCode == 0, submit.Stderr);
        var m = Submitted().Match(submit.Stdout);
        Assert.True(m.Success, submit.Stdout);
        string array = m.Groups[1].Value, merge = m.Groups[2].Value;
        string task = $"{array}_1";
        string part1 = Path.Combine(outDir, "part-00001-of-00004.parquet");

        // wait until task 1 is scoring (its first progress line), then kill it: it must not have finished its part
        string log = Path.Combine(outDir, "logs", $"influence-{array}_1.log");
        Wait(() => File.Exists(log) && File.ReadAllText(log).Contains("[shard 1/4]"), 120, "task 1 to start scoring");
        Assert.False(File.Exists(part1), "task 1 is killed before it finished its part");
        // ended for good, as a user's scancel or a time limit does: Slurm then marks the merge's afterok dependency failed, and
        // keeps it failed even after the task is requeued and succeeds; requeue.sh requeues the task and re-points the merge
        Assert.Equal(0, Run("scancel", task).Code);
        string shown = "";
        Wait(() => (shown = Run("scontrol", "show", "job", task).Stdout).Contains("JobState=CANCELLED"), 30, () => $"task 1 to be cancelled: {shown}");
        // Slurm may judge an array dependency only once the array's other tasks have ended: on a loaded machine that is minutes
        Wait(() => (shown = Run("scontrol", "show", "job", merge).Stdout).Contains("DependencyNeverSatisfied"), 300,
            () => $"the merge job to see its dependency failed: {shown}");
        var requeue = Run(Path.Combine(outDir, "requeue.sh"));
        Assert.True(requeue.Code == 0, requeue.Stderr);
        Assert.Contains($"requeued {task} (it was CANCELLED)", requeue.Stdout);
        // the merge now waits for task 1 (and any other task still queued or running), no longer for a failed dependency
        string waits = requeue.Stdout.Split('\n').Single(l => l.StartsWith($"merge job {merge} now waits for: ", StringComparison.Ordinal));
        Assert.Contains(task, waits.Split(": ")[1].Split(':'));
        Wait(() => (shown = Run("scontrol", "show", "job", task).Stdout).Contains("Restarts=1"), 30,
            () => $"task 1 to be requeued: {shown}\nlog: {File.ReadAllText(log)}");
        Assert.Contains("CANCELLED", File.ReadAllText(log)); // its first run was killed
        // it starts again after cred_expire (10 s in start-one-node.sh's slurm.conf)

        Wait(() => Squeue(array).Length == 0 && Squeue(merge).Length == 0, 600, "the array and the merge job to finish");
        string merged = Path.Combine(outDir, "influence.parquet");
        Assert.True(File.Exists(merged), $"the merge job wrote no file; its log: {ReadLogs(outDir)}");
        Assert.Contains("Restarts=1 ", Run("scontrol", "show", "job", task).Stdout); // requeued once, not more
        Assert.Contains("part-00001-of-00004.parquet: 300 documents", File.ReadAllText(log)); // and its second run finished
        Assert.Empty(Directory.GetFiles(outDir, "*.tmp"));

        // the single-process run: the same headwise binary the tasks ran, over the whole corpus, then merged
        string single = Path.Combine(_dir, "single");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        string cli = Path.Combine(AppContext.BaseDirectory, "Headwise.Cli.dll");
        var whole = Run(dotnet, cli, "influence", "--model", InfluenceCliTests.Demo, "--corpus", corpus, "--heads", "1.2,3.0", "--out", single);
        Assert.True(whole.Code == 0, whole.Stderr);
        Assert.Equal(0, Run(dotnet, cli, "influence", "merge", "--out", single).Code);
        Assert.Equal(File.ReadAllBytes(Path.Combine(single, "influence.parquet")), File.ReadAllBytes(merged));
        var (rows, _) = InfluenceParts.Read(merged);
        Assert.Equal(1200, rows.Select(r => r.Id).Distinct().Count());
    }

    private string Squeue(string job) => Run("squeue", "-h", "-j", job, "-o", "%t").Stdout.Trim();

    private static string ReadLogs(string outDir) =>
        string.Join("\n", Directory.GetFiles(Path.Combine(outDir, "logs")).Select(f => $"{Path.GetFileName(f)}: {File.ReadAllText(f)}"));

    private static void Wait(Func<bool> done, int seconds, string what) => Wait(done, seconds, () => what);

    private static void Wait(Func<bool> done, int seconds, Func<string> what)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            Assert.True(clock.Elapsed.TotalSeconds < seconds, $"timed out after {seconds} s waiting for {what()}");
            Thread.Sleep(250);
        }
    }

    private (int Code, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        if (_conf is not null)
        {
            psi.Environment["SLURM_CONF"] = _conf;
        }
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }
}
