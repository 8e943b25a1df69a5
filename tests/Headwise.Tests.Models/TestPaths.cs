namespace Headwise.Tests.Models;

/// <summary>Finds the repository root (the folder holding Headwise.slnx) and the shared data beside it.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>../shared from the repository root, or null when the project was cloned alone.</summary>
    public static string? Shared => Directory.Exists(Path.Combine(RepoRoot, "..", "shared")) ? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared")) : null;

    public static string Goldens => Path.Combine(RepoRoot, "tests", "goldens");

    public static string? Stories260K => Shared is { } s && File.Exists(Path.Combine(s, "models", "stories260K", "stories260K.bin"))
        ? Path.Combine(s, "models", "stories260K") : null;

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
        throw new InvalidOperationException("cannot find the repository root (Headwise.slnx) above " + AppContext.BaseDirectory);
    }
}
