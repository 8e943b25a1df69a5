using Headwise.Loading;
using Headwise.Reports;

namespace Headwise.Cli.Commands;

public sealed class DemoCommand : ICommand
{
    public const string DefaultText =
        "Fellow-citizens of the Senate and House of Representatives: The state of the Union is strong. " +
        "The Congress of the United States and the people of the United States ask that the state of the Union be strong.";

    public string Name => "demo";
    public string Summary => "head report of the bundled demo model (offline) into headwise-demo.html";
    public string Usage => """
        headwise demo [--out FILE] [--model-dir DIR] [--json]
        """;

    public string Description => """
        Loads the bundled demo model (models/demo: a 4-layer GPT-2 trained by headwise on the State of the Union
        addresses, see models/demo/README.md) without any network access, runs the head report on a short prompt with
        a repeated phrase, writes the HTML page and prints its path.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("out", "FILE", "the HTML file (default headwise-demo.html in the current directory)"),
        CliOption.Text("model-dir", "DIR", "use this model directory instead of the bundled one"),
        CliOption.Flag("json", "print {\"path\": ..., \"model\": ...}"),
    ];

    public string Examples => """
        The bundled model is found at models/demo under the current directory or any directory above it, else beside
        the headwise binary (the build output and the installed dotnet tool carry a copy).

        Example:
          headwise demo
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string outPath = args.Get("out") ?? "headwise-demo.html";
        string? dir = args.Get("model-dir");
        bool json = args.Flag("json");
        dir ??= FindDemoModel() ?? throw new InvalidInputException(
            "the demo model was not found: expected models/demo (config.json, model.safetensors, tokenizer.json) under the current directory or above the headwise install; see models/demo/README.md to rebuild it.");
        if (!File.Exists(Path.Combine(dir, "model.safetensors")) || !File.Exists(Path.Combine(dir, "tokenizer.json")))
        {
            throw new InvalidInputException($"--model-dir: {dir} lacks model.safetensors or tokenizer.json; see models/demo/README.md to rebuild the demo model.");
        }

        if (Directory.Exists(outPath))
        {
            throw new UsageException($"--out {outPath} is a directory; give a file name such as {Path.Combine(outPath, "headwise-demo.html")}");
        }

        using var loaded = ModelLoader.Load(dir);
        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        var options = new ReportOptions { Text = DefaultText, MaxTokens = 64, TopK = 5, ModelName = "headwise demo (State of the Union GPT-2)" };
        var data = ReportBuilder.Build(loaded.Model, loaded.Tokenizer, options, progress, CliMain.Cancellation);
        string written = HtmlReport.Write(outPath, data);
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new { path = written, model = Path.GetFullPath(dir) }));
            return 0;
        }

        stdout.WriteLine(written);
        return 0;
    }

    /// <summary>models/demo with a config.json, searched upward from the current directory, then from the tool's directory.</summary>
    public static string? FindDemoModel()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string candidate = Path.Combine(d.FullName, "models", "demo");
                if (File.Exists(Path.Combine(candidate, "config.json")))
                {
                    return candidate;
                }
            }
        }

        return null;
    }
}
