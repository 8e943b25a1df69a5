using System.Text.RegularExpressions;
using Headwise.Cli;
using Headwise.Cli.Commands;

namespace Headwise.Tests.Acceptance;

/// <summary>The command line on System.CommandLine: options declared once, --help generated from them, suggestions for a
/// mistyped option, [suggest] completion, plain tables when redirected, and head names as L.H.</summary>
public sealed partial class CliParserTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-cli-parser-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("heads", "--modle", "did you mean --model?")]
    [InlineData("eval", "--text-fil", "did you mean --text-file?")]
    [InlineData("generate", "--max-token", "did you mean --max-tokens?")]
    [InlineData("sinks", "--jsno", "did you mean --json?")]
    public void MistypedOptionIsOneLineWithTheNearestOptionAndExit2(string command, string typed, string suggestion)
    {
        var r = CliRunner.Run(command, typed, "x");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal($"headwise {command}: unknown option {typed} ({suggestion})", r.Stderr.TrimEnd('\r', '\n'));
    }

    [Fact]
    public void HelpIsGeneratedForEveryCommandAndListsEveryDeclaredOption()
    {
        foreach (var command in CommandRegistry.All)
        {
            var r = CliRunner.Run(command.Name, "--help");
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(r.Stdout, CliRunner.Run("help", command.Name).Stdout);
            foreach (var option in command.Options)
            {
                // each option on a line of its own: its label, then its help's first line
                string line = $"  {CliHelp.Label(option)}";
                Assert.True(r.Stdout.Split('\n').Any(l => l.StartsWith(line + " ", StringComparison.Ordinal) && l.Contains(option.Description.Split('\n')[0], StringComparison.Ordinal)),
                    $"{command.Name} --help lacks {line}");
            }
            Assert.Contains("  -h, --help", r.Stdout, StringComparison.Ordinal);
            Assert.StartsWith(command.Usage, r.Stdout, StringComparison.Ordinal);
            Assert.Contains(command.Description, r.Stdout, StringComparison.Ordinal);
            Assert.Contains(command.Examples, r.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void SuggestDirectiveCompletesAPartialOptionAndACommand()
    {
        var option = CliRunner.Run("[suggest:9]", "info --mo");
        Assert.Equal(0, option.ExitCode);
        Assert.Equal(["--model"], Lines(option.Stdout));
        var value = CliRunner.Run("[suggest:25]", "info --model m --prepack ");
        Assert.Equal(["auto", "off", "on"], Lines(value.Stdout));
        var command = Lines(CliRunner.Run("[suggest:3]", "inf").Stdout);
        Assert.Contains("info", command);
        Assert.Contains("influence", command);
    }

    [Fact]
    public void RepeatedOptionCountsOnceTheLastValue()
    {
        var r = CliRunner.Run("info", "--model", "no-such-model-dir", "--model", CliRunner.DemoModel, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    [Fact]
    public void TablesAndProgressStayPlainWhenRedirected()
    {
        var r = CliRunner.Run("heads", "--model", CliRunner.DemoModel, "--top", "3", "--batch", "2", "--seq-len", "8");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.DoesNotContain('\u001b', r.Stdout);
        Assert.DoesNotContain('\u001b', r.Stderr);
        Assert.Contains("detectors: 2/2", r.Stderr, StringComparison.Ordinal);
        var rows = r.Stdout.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => HeadScoreRow().IsMatch(l)).ToList();
        Assert.True(rows.Count >= 3 * 4, r.Stdout); // 3 heads per detector, at least 4 detectors
        Assert.Contains(r.Stdout.Split('\n'), l => l.Trim().StartsWith("head", StringComparison.Ordinal) && l.Contains("score", StringComparison.Ordinal));
    }

    [Fact]
    public void ExperimentNamesHeadsLayerDotHead()
    {
        var r = CliRunner.Run("experiment", "induction", "--out", Path.Combine(_dir, "induction"), "--steps", "20");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Matches(@"(?m)^\d+\.\d+ ", r.Stdout);
        Assert.DoesNotMatch(@"L\d+H\d+", r.Stdout);
        Assert.DoesNotMatch(@"L\d+H\d+", File.ReadAllText(Path.Combine(_dir, "induction", "report.md")));
    }

    private static string[] Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [GeneratedRegex(@"^\s*\d+\.\d+\s+-?\d+\.\d{4}\s*$")]
    private static partial Regex HeadScoreRow();
}
