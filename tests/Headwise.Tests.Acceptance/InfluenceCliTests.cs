using System.Text.Json;
using Headwise.Influence;

namespace Headwise.Tests.Acceptance;

/// <summary>headwise influence on the bundled demo model: scores against eval and eval --intervene, sharded runs with a killed
/// shard against an unsharded one, the merge's refusals and bad input.</summary>
public sealed class InfluenceCliTests : IDisposable
{
    internal static readonly string Demo = Path.Combine(CliRunner.RepoRoot, "models", "demo");
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-influence-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A corpus of <paramref name="n"/> documents of varied length (a few exceed the demo's 128-token context).</summary>
    internal static string WriteCorpus(string dir, int n, string name = "corpus.jsonl")
    {
        string[] words = ["the", "river", "old", "mill", "girl", "forest", "bright", "cold", "day", "clock", "bridge", "stone", "sang", "quietly"];
        var rng = new Random(1);
        string path = Path.Combine(dir, name);
        using var w = new StreamWriter(path);
        for (int i = 0; i < n; i++)
        {
            int len = i % 7 == 0 ? 160 : 3 + rng.Next(40);
            string text = string.Join(" ", Enumerable.Range(0, len).Select(_ => words[rng.Next(words.Length)])) + ".";
            w.Write(JsonSerializer.Serialize(new { id = $"doc-{i:D3}", text }) + "\n");
        }
        return path;
    }

    [Fact]
    public void BenchInfluenceReportsTheScorersRateAgainstPrefill()
    {
        var r = CliRunner.Run("bench", "--quick", "--skip-load", "--influence", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var inf = doc.RootElement.GetProperty("influence");
        Assert.Equal(40, inf.GetProperty("documents").GetInt32());
        double tps = inf.GetProperty("tokens_per_s").GetDouble(), prefill = inf.GetProperty("prefill_tokens_per_s").GetDouble();
        Assert.Equal(inf.GetProperty("tokens").GetInt32() / inf.GetProperty("seconds").GetDouble(), tps, 1e-6 * tps);
        Assert.Equal(tps / prefill, inf.GetProperty("ratio").GetDouble(), 1e-9);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("recipes").ValueKind); // only what was asked for
    }

    [Fact]
    public void ScoresEqualEvalAndEvalInterveneWithAnAblateZeroRecipe()
    {
        string corpus = Path.Combine(_dir, "few.jsonl");
        string[] texts = ["The cat sat on the mat.", "Once upon a time there was a little girl who lived near the forest.",
            string.Join(" ", Enumerable.Range(0, 60).Select(i => $"Line {i} of the long story."))];
        File.WriteAllLines(corpus, texts.Select((t, i) => JsonSerializer.Serialize(new { id = $"t{i}", text = t })));
        string outDir = Path.Combine(_dir, "out");
        var r = CliRunner.Run("influence", "--model", Demo, "--corpus", corpus, "--heads", "1.2,3.0", "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var (rows, meta) = InfluenceParts.Read(Path.Combine(outDir, "part-00000-of-00001.parquet"));
        Assert.Equal("1.2,3.0", meta["headwise.heads"]);
        Assert.Equal("0/1", meta["headwise.shard"]);

        string recipe = Path.Combine(_dir, "zero.json");
        File.WriteAllText(recipe, """{"name": "zero", "interventions": [{"kind": "ablate", "heads": ["1.2", "3.0"], "method": "zero"}]}""");
        for (int i = 0; i < texts.Length; i++)
        {
            string file = Path.Combine(_dir, $"t{i}.txt");
            File.WriteAllText(file, texts[i]);
            using var plain = JsonDocument.Parse(CliRunner.Run("eval", "--model", Demo, "--text-file", file, "--json").Stdout);
            using var masked = JsonDocument.Parse(CliRunner.Run("eval", "--model", Demo, "--text-file", file, "--intervene", recipe, "--json").Stdout);
            var row = rows.Single(x => x.Id == $"t{i}");
            double lossRef = plain.RootElement.GetProperty("mean_nll").GetDouble();
            double lossMasked = masked.RootElement.GetProperty("mean_nll").GetDouble();
            Assert.Equal(plain.RootElement.GetProperty("tokens").GetArrayLength(), row.NTokens);
            Assert.Equal(lossRef, row.LossRef, 1e-4);
            Assert.Equal(lossMasked, row.LossMasked, 1e-4);
            Assert.Equal((lossMasked - lossRef) / lossRef, row.Score, 1e-4);
        }
        Assert.True(rows.Single(x => x.Id == "t2").NTokens > 128, "one text is scored with the sliding window");
    }

    [Fact]
    public void ShardedWithAKilledShardEqualsUnshardedAndEveryIdOnce()
    {
        string corpus = WriteCorpus(_dir, 30);
        string whole = Path.Combine(_dir, "whole"), sharded = Path.Combine(_dir, "sharded");
        string[] common = ["--model", Demo, "--corpus", corpus, "--heads", "auto", "--batch-tokens", "512"];
        Assert.Equal(0, CliRunner.Run(["influence", .. common, "--out", whole]).ExitCode);
        Assert.Equal(0, CliRunner.Run("influence", "merge", "--out", whole, "--top", "10%").ExitCode);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(0, CliRunner.Run(["influence", .. common, "--out", sharded, "--shard", $"{i}/3"]).ExitCode);
        }
        // shard 1 killed mid-write: what it left is a half-written temporary file; shard 2's part is cut in half
        string part1 = Path.Combine(sharded, "part-00001-of-00003.parquet"), part2 = Path.Combine(sharded, "part-00002-of-00003.parquet");
        var bytes = File.ReadAllBytes(part1);
        File.Delete(part1);
        File.WriteAllBytes(InfluenceParts.TempPath(part1), bytes[..(bytes.Length / 2)]);
        File.WriteAllBytes(part2, File.ReadAllBytes(part2)[..100]);
        var refused = CliRunner.Run("influence", "merge", "--out", sharded);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("part-00001-of-00003.parquet", refused.Stderr);

        DateTime part0Written = File.GetLastWriteTimeUtc(Path.Combine(sharded, "part-00000-of-00003.parquet"));
        for (int i = 0; i < 3; i++)
        {
            var rerun = CliRunner.Run(["influence", .. common, "--out", sharded, "--shard", $"{i}/3"]);
            Assert.Equal(0, rerun.ExitCode);
            Assert.Equal(i == 0, rerun.Stdout.Contains("skipped"));
        }
        Assert.Equal(part0Written, File.GetLastWriteTimeUtc(Path.Combine(sharded, "part-00000-of-00003.parquet")));
        Assert.Equal(0, CliRunner.Run("influence", "merge", "--out", sharded, "--top", "10%").ExitCode);

        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "influence.parquet")), File.ReadAllBytes(Path.Combine(sharded, "influence.parquet")));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "influence-top.jsonl")), File.ReadAllText(Path.Combine(sharded, "influence-top.jsonl")));
        var (rows, _) = InfluenceParts.Read(Path.Combine(sharded, "influence.parquet"));
        Assert.Equal(Enumerable.Range(0, 30).Select(i => $"doc-{i:D3}"), rows.Select(r => r.Id).Order(StringComparer.Ordinal));
        Assert.True(rows.Zip(rows.Skip(1)).All(p => p.First.Score >= p.Second.Score), "sorted by score, descending");
        Assert.Empty(Directory.GetFiles(sharded, "*.tmp"));
        var top = File.ReadAllLines(Path.Combine(sharded, "influence-top.jsonl"));
        Assert.Equal(3, top.Length);
        using var first = JsonDocument.Parse(top[0]);
        Assert.Equal(rows[0].Id, first.RootElement.GetProperty("id").GetString());
        Assert.False(string.IsNullOrEmpty(first.RootElement.GetProperty("text").GetString()));
    }

    [Fact]
    public void MergeRefusesMissingAndMismatchedParts()
    {
        string corpus = WriteCorpus(_dir, 6);
        string outDir = Path.Combine(_dir, "out");
        Assert.Equal(0, CliRunner.Run("influence", "--model", Demo, "--corpus", corpus, "--heads", "0.1", "--out", outDir, "--shard", "0/3").ExitCode);
        var missing = CliRunner.Run("influence", "merge", "--out", outDir);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("part-00001-of-00003.parquet, part-00002-of-00003.parquet", missing.Stderr);

        Assert.Equal(0, CliRunner.Run("influence", "--model", Demo, "--corpus", corpus, "--heads", "0.1", "--out", outDir, "--shard", "1/3").ExitCode);
        Assert.Equal(0, CliRunner.Run("influence", "--model", Demo, "--corpus", corpus, "--heads", "2.3", "--out", outDir, "--shard", "2/3").ExitCode);
        var mismatched = CliRunner.Run("influence", "merge", "--out", outDir);
        Assert.Equal(2, mismatched.ExitCode);
        Assert.Contains("part-00002-of-00003.parquet", mismatched.Stderr);
        Assert.Contains("heads 2.3 vs 0.1", mismatched.Stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "influence.parquet")));

        // a part of another run is not overwritten silently either
        var clash = CliRunner.Run("influence", "--model", Demo, "--corpus", corpus, "--heads", "3.3", "--out", outDir, "--shard", "0/3");
        Assert.Equal(2, clash.ExitCode);
        Assert.Contains("part-00000-of-00003.parquet", clash.Stderr);
    }

    [Fact]
    public void BadInputExitsTwoNamingTheProblem()
    {
        string good = WriteCorpus(_dir, 4);
        string empty = Path.Combine(_dir, "empty.jsonl");
        File.WriteAllText(empty, "");
        string noText = Path.Combine(_dir, "notext.jsonl");
        File.WriteAllText(noText, "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"body\": \"no text\"}\n");
        string dup = Path.Combine(_dir, "dup.jsonl");
        File.WriteAllText(dup, "{\"id\": \"a\", \"text\": \"one\"}\n{\"id\": \"a\", \"text\": \"two\"}\n");
        string outDir = Path.Combine(_dir, "out");
        (string[] Args, string Expected)[] cases =
        [
            (["--corpus", empty], "empty"),
            (["--corpus", noText], "document 'b' has no \"text\""),
            (["--corpus", dup], "duplicate document ids"),
            (["--corpus", good, "--shard", "4/4"], "--shard 4/4"),
            (["--corpus", good, "--shard", "a/b"], "--shard expects I/N"),
            (["--corpus", good, "--heads", "9.9"], "head 9.9 does not exist"),
        ];
        foreach (var (args, expected) in cases)
        {
            string[] heads = args.Contains("--heads") ? [] : ["--heads", "0.0"];
            var r = CliRunner.Run(["influence", "--model", Demo, "--out", outDir, .. heads, .. args]);
            Assert.True(r.ExitCode == 2, $"{string.Join(" ", args)}: exit {r.ExitCode}, {r.Stderr}");
            Assert.Contains(expected, r.Stderr);
        }
        Assert.Equal(2, CliRunner.Run("influence", "merge", "--out", Path.Combine(_dir, "nothing")).ExitCode);
        Assert.Equal(2, CliRunner.Run("influence", "sideways", "--out", outDir).ExitCode);
    }

    [Fact]
    public void SlurmWritesAnArrayAndADependentMergeJob()
    {
        string outDir = Path.Combine(_dir, "slurm");
        var r = CliRunner.Run("influence", "slurm", "--array", "8", "--partition", "gpu", "--time", "02:00:00", "--mem", "16G",
            "--model", Demo, "--corpus", "/data/corpus", "--heads", "auto", "--out", outDir, "--top", "0.1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string array = File.ReadAllText(Path.Combine(outDir, "influence-array.sbatch"));
        Assert.Contains("#SBATCH --array=0-7", array);
        Assert.Contains("#SBATCH --requeue", array);
        Assert.Contains("#SBATCH --partition=gpu", array);
        Assert.Contains("#SBATCH --time=02:00:00", array);
        Assert.Contains("#SBATCH --mem=16G", array);
        Assert.Contains($"#SBATCH --output={outDir}/logs/influence-%A_%a.log", array);
        Assert.Contains("--shard \"$SLURM_ARRAY_TASK_ID/8\"", array);
        Assert.Contains("influence merge --out", File.ReadAllText(Path.Combine(outDir, "influence-merge.sbatch")));
        Assert.Contains("--dependency=afterok:$array", File.ReadAllText(Path.Combine(outDir, "submit.sh")));
        Assert.True(Directory.Exists(Path.Combine(outDir, "logs")));
        Assert.True(File.Exists(Path.Combine(outDir, "requeue.sh")));
        Assert.Equal(2, CliRunner.Run("influence", "slurm", "--out", outDir, "--model", Demo, "--corpus", "c", "--heads", "auto").ExitCode);
    }

    /// <summary>requeue.sh against fake scontrol/sbatch that log their calls: a completed task is left alone, a cancelled one
    /// requeued, a running one waited for, one Slurm forgot without its part submitted again, one forgotten with its part
    /// complete left alone; then the pending merge is pointed at exactly the tasks still to finish. (The real Slurm run is
    /// SlurmInfluenceTests.)</summary>
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void RequeueScriptRequeuesWhatDidNotCompleteAndRepointsTheMerge()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "requeue.sh is a bash script for a Slurm cluster");
        string outDir = Path.Combine(_dir, "requeue");
        var r = CliRunner.Run("influence", "slurm", "--array", "5", "--model", Demo, "--corpus", "/data/corpus", "--heads", "1.2",
            "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        File.WriteAllText(Path.Combine(outDir, "part-00004-of-00005.parquet"), "complete part of a task Slurm forgot");
        File.WriteAllText(Path.Combine(outDir, "jobs"), "array=100\nmerge=101\nshards=5\n");
        string bin = Path.Combine(_dir, "fakebin");
        Directory.CreateDirectory(bin);
        string calls = Path.Combine(_dir, "calls.log");
        // job states as `scontrol show job -o` prints them; 100_3 and 100_4 are unknown (Slurm forgot them)
        WriteScript(Path.Combine(bin, "scontrol"), $$"""
            #!/bin/bash
            echo "scontrol $*" >> {{calls}}
            if [ "$1 $2" = "show job" ]; then
              case "$3" in
                100_0) echo "JobId=100 ArrayTaskId=0 JobState=COMPLETED Reason=None" ;;
                100_1) echo "JobId=102 ArrayTaskId=1 JobState=CANCELLED Reason=None" ;;
                100_2) echo "JobId=103 ArrayTaskId=2 JobState=RUNNING Reason=None" ;;
                101) echo "JobId=101 JobState=PENDING Reason=DependencyNeverSatisfied" ;;
                *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1 ;;
              esac
            fi
            """);
        WriteScript(Path.Combine(bin, "sbatch"), $$"""
            #!/bin/bash
            echo "sbatch $*" >> {{calls}}
            echo "777;cluster"
            """);
        var (code, stdout, stderr) = Bash(Path.Combine(outDir, "requeue.sh"), bin);
        Assert.True(code == 0, stderr);
        string[] log = File.ReadAllLines(calls);
        Assert.Contains("scontrol requeue 100_1", log);
        Assert.DoesNotContain(log, l => l.Contains("requeue 100_0") || l.Contains("requeue 100_2"));
        Assert.Contains(log, l => l.StartsWith("sbatch --parsable --array=3 ", StringComparison.Ordinal) && l.EndsWith("influence-array.sbatch"));
        Assert.DoesNotContain(log, l => l.Contains("--array=4"));
        Assert.Contains("scontrol update jobid=101 dependency=afterok:100_1:100_2:777_3", log);
        Assert.Contains("requeued 100_1 (it was CANCELLED)", stdout);
        Assert.Contains("merge job 101 now waits for: 100_1:100_2:777_3", stdout);

        // with no jobs file, it says what to do first
        File.Delete(Path.Combine(outDir, "jobs"));
        var again = Bash(Path.Combine(outDir, "requeue.sh"), bin);
        Assert.Equal(2, again.Code);
        Assert.Contains("submit with submit.sh or --submit first", again.Stderr);
    }

    private static (int Code, string Stdout, string Stderr) Bash(string script, string pathFirst)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.Environment["PATH"] = pathFirst + ":" + Environment.GetEnvironmentVariable("PATH");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void WriteScript(string path, string text)
    {
        File.WriteAllText(path, text.Replace("\r\n", "\n"));
        File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute);
    }
}
