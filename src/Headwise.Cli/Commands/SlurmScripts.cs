using System.Diagnostics;

namespace Headwise.Cli.Commands;

/// <summary>
/// The job scripts of <c>headwise influence slurm</c>: a job array of one task per shard (<c>--shard $SLURM_ARRAY_TASK_ID/N</c>,
/// <c>--requeue</c>: a task pre-empted or failed on a node runs again and, as parts are written atomically and complete parts are
/// skipped, gives the same part) and a merge job that runs once every task succeeded (<c>--dependency=afterok</c>). Logs go to
/// <c>OUT/logs/</c>.
/// </summary>
public sealed record SlurmScripts(string Headwise, string Model, string Corpus, string Heads, string OutDir, int Shards, string? Partition,
    string? Time, string? Mem, IReadOnlyList<string> Extra, string? Top)
{
    public const string ArrayName = "influence-array.sbatch";
    public const string MergeName = "influence-merge.sbatch";
    public const string SubmitName = "submit.sh";
    public const string RequeueName = "requeue.sh";
    /// <summary>The submitted job ids (<c>array=…</c>, <c>merge=…</c>, <c>shards=…</c> lines), read by requeue.sh.</summary>
    public const string JobsName = "jobs";

    /// <summary>Writes the two job scripts, <c>submit.sh</c> (which submits both, the merge after the array, and records
    /// their ids in <c>jobs</c>) and <c>requeue.sh</c> into the output directory; returns their paths.</summary>
    public IReadOnlyList<string> Write()
    {
        Directory.CreateDirectory(Path.Combine(OutDir, "logs"));
        string logs = Path.Combine(OutDir, "logs");
        string extra = string.Concat(Extra.Select(a => " " + Quote(a)));
        string array = $"""
            #!/bin/bash
            # written by `headwise influence slurm`: one task per shard; a task killed at any point and requeued recomputes its
            # part alone (parts are written under a temporary name and renamed when complete)
            #SBATCH --job-name=headwise-influence
            #SBATCH --array=0-{Shards - 1}
            #SBATCH --requeue
            #SBATCH --open-mode=append
            #SBATCH --output={logs}/influence-%A_%a.log
            {Options()}set -euo pipefail
            exec {Headwise} influence --model {Quote(Model)} --corpus {Quote(Corpus)} --heads {Quote(Heads)} --out {Quote(OutDir)} --shard "$SLURM_ARRAY_TASK_ID/{Shards}"{extra}

            """;
        string merge = $"""
            #!/bin/bash
            # written by `headwise influence slurm`: merges the parts once every array task succeeded
            #SBATCH --job-name=headwise-influence-merge
            #SBATCH --requeue
            #SBATCH --open-mode=append
            #SBATCH --output={logs}/merge-%j.log
            {Options()}set -euo pipefail
            exec {Headwise} influence merge --out {Quote(OutDir)}{(Top is null ? "" : " --top " + Quote(Top))}

            """;
        string jobs = Path.Combine(OutDir, JobsName);
        string submit = $"""
            #!/bin/bash
            # submits the array, then the merge to run after every task of it succeeded; records both ids for requeue.sh
            set -euo pipefail
            array=$(sbatch --parsable {Quote(Path.Combine(OutDir, ArrayName))})
            array=${"{"}array%%;*{"}"}
            merge=$(sbatch --parsable --dependency=afterok:$array {Quote(Path.Combine(OutDir, MergeName))})
            merge=${"{"}merge%%;*{"}"}
            printf 'array=%s\nmerge=%s\nshards={Shards}\n' "$array" "$merge" > {Quote(jobs)}.tmp && mv {Quote(jobs)}.tmp {Quote(jobs)}
            echo "array job $array, merge job $merge"

            """;
        // Slurm keeps an afterok dependency failed once a task it names has failed or was cancelled, even after the task is
        // requeued and succeeds (checked on Slurm 22.05): so requeue.sh both requeues the tasks and points the merge at them again
        string requeue = $"""
            #!/bin/bash
            # written by `headwise influence slurm`: run it after array tasks were ended for good (scancel, a time limit, a
            # failure). It requeues every task that neither completed nor is still queued or running (or submits it again
            # when Slurm has forgotten it and its part is missing), then makes the merge job wait for exactly the tasks
            # still to finish: Slurm never starts a merge whose afterok dependency saw a task fail, even once it is requeued.
            set -euo pipefail
            jobs={Quote(jobs)}
            [ -f "$jobs" ] || {"{"} echo "requeue.sh: $jobs is missing: submit with submit.sh or --submit first" >&2; exit 2; {"}"}
            source "$jobs"
            state() {"{"} scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2 || true; {"}"}
            waiting=()
            for ((i = 0; i < shards; i++)); do
              task=${"{"}array{"}"}_$i
              part={Quote(OutDir)}/$(printf 'part-%05d-of-%05d.parquet' "$i" "$shards")
              s=$(state "$task")
              case "$s" in
                COMPLETED) ;;
                PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT)
                  waiting+=("$task") ;;
                "")
                  if [ ! -f "$part" ]; then
                    id=$(sbatch --parsable --array="$i" {Quote(Path.Combine(OutDir, ArrayName))})
                    echo "task $i is unknown to Slurm and its part is missing: submitted again as ${"{"}id%%;*{"}"}_$i"
                    waiting+=("${"{"}id%%;*{"}"}_$i")
                  fi ;;
                *)
                  scontrol requeue "$task"
                  echo "requeued $task (it was $s)"
                  waiting+=("$task") ;;
              esac
            done
            deps=$(IFS=:; echo "${"{"}waiting[*]{"}"}")
            if [ "$(state "$merge")" = PENDING ]; then
              scontrol update jobid="$merge" dependency="${"{"}deps:+afterok:$deps{"}"}"
              echo "merge job $merge now waits for: ${"{"}deps:-nothing (it can run now){"}"}"
            else
              merge=$(sbatch --parsable ${"{"}deps:+--dependency=afterok:$deps{"}"} {Quote(Path.Combine(OutDir, MergeName))})
              merge=${"{"}merge%%;*{"}"}
              printf 'array=%s\nmerge=%s\nshards=%s\n' "$array" "$merge" "$shards" > "$jobs.tmp" && mv "$jobs.tmp" "$jobs"
              echo "submitted a new merge job $merge waiting for: ${"{"}deps:-nothing{"}"}"
            fi

            """;
        var files = new[] { (ArrayName, array), (MergeName, merge), (SubmitName, submit), (RequeueName, requeue) };
        foreach (var (name, text) in files)
        {
            string path = Path.Combine(OutDir, name);
            File.WriteAllText(path, text.Replace("\r\n", "\n"));
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute);
            }
        }
        return [.. files.Select(f => Path.Combine(OutDir, f.Item1))];
    }

    /// <summary>Records the submitted job ids for requeue.sh, as submit.sh does (temp file, then rename).</summary>
    public void WriteJobs(string array, string merge)
    {
        string path = Path.Combine(OutDir, JobsName);
        File.WriteAllText(path + ".tmp", $"array={array}\nmerge={merge}\nshards={Shards}\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    private string Options() =>
        (Partition is null ? "" : $"#SBATCH --partition={Partition}\n") + (Time is null ? "" : $"#SBATCH --time={Time}\n")
        + (Mem is null ? "" : $"#SBATCH --mem={Mem}\n");

    /// <summary>A word for bash, single-quoted unless it is plain.</summary>
    public static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+=:,@%".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";

    /// <summary>Runs <c>sbatch --parsable ARGS</c> and returns the job id; a failure (no sbatch, refused job) is bad input.</summary>
    public static string Sbatch(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("sbatch") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("--parsable");
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new UsageException($"--submit: cannot run sbatch ({e.Message}); submit later with submit.sh on a Slurm login node");
        }
        using (p)
        {
            string stdout = p.StandardOutput.ReadToEnd();
            string stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                throw new UsageException($"sbatch {string.Join(" ", psi.ArgumentList.Skip(1))} failed (exit {p.ExitCode}): {stderr.Trim()}");
            }
            return stdout.Trim().Split(';')[0];
        }
    }
}
