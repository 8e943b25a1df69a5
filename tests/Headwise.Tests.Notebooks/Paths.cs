namespace Headwise.Tests.Notebooks;

internal static class Paths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The bundled demo model (models/demo, GPT-2, 4 layers × 4 heads).</summary>
    public static string DemoModel => Path.Combine(RepoRoot, "models", "demo");

    public static string Examples => Path.Combine(RepoRoot, "docs", "examples");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Headwise.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Headwise.slnx above {AppContext.BaseDirectory}");
    }
}
