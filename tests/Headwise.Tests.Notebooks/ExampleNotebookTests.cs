using System.Text.Json;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Events;

namespace Headwise.Tests.Notebooks;

/// <summary>
/// Runs docs/examples/headwise.ipynb cell by cell in a C# kernel of .NET Interactive (the kernel Polyglot Notebooks and
/// Jupyter use), in this process. Only the package cell is replaced: instead of packages from a local feed it references
/// the assemblies this test was built with. Every cell must run without error, and each one's rendered output must be the
/// formatters' HTML for what it computed.
/// </summary>
public sealed class ExampleNotebookTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ExampleNotebookRunsAndRendersInline()
    {
        string path = Path.Combine(Paths.Examples, "headwise.ipynb");
        using var nb = JsonDocument.Parse(File.ReadAllText(path));
        var cells = nb.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .Select(c => string.Concat(c.GetProperty("source").EnumerateArray().Select(s => s.GetString())))
            .ToList();
        Assert.True(cells.Count >= 8, $"{path} has {cells.Count} code cells");
        Assert.Contains("#r \"nuget: Headwise.Interactive", cells[0], StringComparison.Ordinal);
        string dir = AppContext.BaseDirectory;
        cells[0] = $"#r \"{Path.Combine(dir, "Headwise.dll")}\"\n#r \"{Path.Combine(dir, "Headwise.Interactive.dll")}\"";

        using var kernel = new CSharpKernel().UseKernelHelpers();
        string cwd = Environment.CurrentDirectory;
        Environment.CurrentDirectory = Paths.Examples; // the notebook's paths are relative to its folder, as in an editor
        var outputs = new List<string>[cells.Count];
        try
        {
            for (int i = 0; i < cells.Count; i++)
            {
                var result = await kernel.SendAsync(new SubmitCode(cells[i]));
                var failed = result.Events.OfType<CommandFailed>().FirstOrDefault();
                Assert.True(failed is null, $"cell {i + 1} failed: {failed?.Message}\n{cells[i]}");
                outputs[i] = result.Events.OfType<DisplayEvent>()
                    .Select(e => e.FormattedValues.FirstOrDefault(f => f.MimeType == "text/html")?.Value
                        ?? e.FormattedValues.First().Value).ToList();
                output.WriteLine($"cell {i + 1}: {outputs[i].Count} output(s), {outputs[i].Sum(o => o.Length)} characters");
            }
        }
        finally
        {
            Environment.CurrentDirectory = cwd;
        }

        string Out(string codeFragment) => string.Join("\n", outputs[cells.FindIndex(c => c.Contains(codeFragment, StringComparison.Ordinal))]);
        Assert.Contains("4 layers × 4 heads, d_model 128", Out("HeadwiseFormatters.Register();"), StringComparison.Ordinal);
        string one = Out("cache.Pattern(1, 2, tokens: labels)");
        Assert.Contains("Attention pattern of head 1.2", one, StringComparison.Ordinal);
        Assert.Contains("headwiseTokenView(", one, StringComparison.Ordinal);
        Assert.Contains("Attention patterns of heads 0.1, 1.2, 3.0", Out("cache.Patterns("), StringComparison.Ordinal);
        string detected = Out("HeadDetectors.Run(");
        Assert.Contains("<h4>previous-token</h4>", detected, StringComparison.Ordinal);
        Assert.Contains("<h4>induction</h4>", detected, StringComparison.Ordinal);
        Assert.Contains("class=\"hw-grid\"", Out("ActivationPatching.Run("), StringComparison.Ordinal);
        // the intervention changes the loss, and the notebook shows both
        string intervene = Out("RecipeApplication.Apply(");
        var nll = System.Text.RegularExpressions.Regex.Match(intervene, @"mean NLL (\d+\.\d+) → (\d+\.\d+) nats");
        Assert.True(nll.Success, intervene[..Math.Min(400, intervene.Length)]);
        Assert.NotEqual(nll.Groups[1].Value, nll.Groups[2].Value);
        Assert.Contains("Attention pattern of head 1.2", intervene, StringComparison.Ordinal);
        string last = Out("TopTable(");
        Assert.Contains("Top heads: induction", last, StringComparison.Ordinal);
        Assert.Contains("Tensor [1, ", last, StringComparison.Ordinal);
    }
}
