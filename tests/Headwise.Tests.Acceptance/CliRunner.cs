using Headwise.Cli;

namespace Headwise.Tests.Acceptance;

/// <summary>Runs the headwise CLI in-process, as a user would type it, capturing stdout, stderr and the exit code.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Bad input: exit 2, nothing on stdout, one line on stderr that contains <paramref name="mustContain"/>.</summary>
    public static void AssertOneLineError(Result r, string mustContain)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        var lines = r.Stderr.TrimEnd('\r', '\n').Split('\n');
        Assert.Single(lines);
        Assert.Contains(mustContain, lines[0]);
    }

    public static Result Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliMain.Run(args, stdout, stderr);
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    public static string RepoRoot { get; } = FindRoot();

    public static string Golden(string name) => Path.Combine(RepoRoot, "tests", "goldens", name);

    /// <summary>The bundled demo model (models/demo, GPT-2, 4 layers × 4 heads, context 128).</summary>
    public static string DemoModel => Path.Combine(RepoRoot, "models", "demo");

    /// <summary>An example recipe of docs/examples/recipes by name (e.g. "soften").</summary>
    public static string ExampleRecipe(string name) => Path.Combine(RepoRoot, "docs", "examples", "recipes", name + ".json");

    /// <summary>Writes a recipe to a new temporary file and returns its path.</summary>
    public static string TempRecipe(string json)
    {
        string path = Path.Combine(Path.GetTempPath(), $"headwise-recipe-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    public static string? Stories260K => Directory.Exists(Path.Combine(RepoRoot, "..", "shared", "models", "stories260K"))
        ? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "models", "stories260K")) : null;

    /// <summary>The stories260K folder, or the calling test is skipped (a clone without ../shared).</summary>
    public static string RequireStories260K()
    {
        string? dir = Stories260K;
        if (dir is null)
        {
            Assert.Skip("../shared/models/stories260K is absent (project cloned without the shared data)");
        }
        return dir;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Headwise.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("cannot find Headwise.slnx above " + AppContext.BaseDirectory);
    }
}
