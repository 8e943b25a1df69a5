using System.Text.RegularExpressions;
using Headwise.Cli;
using Headwise.Cli.Commands;

namespace Headwise.Tests.Acceptance;

/// <summary>Mistyped options and stray arguments, as a new user types them: one line naming the argument, exit code 2,
/// nothing loaded or printed first.</summary>
public class CliArgumentTests
{
    private static string Model => CliRunner.Golden("gpt2_tied");

    private static void AssertUsageError(CliRunner.Result r, string expectedLine)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal(expectedLine, r.Stderr.TrimEnd('\r', '\n'));
    }

    [Fact]
    public void UnknownOptionAtTheEndIsNamedNotTakenToNeedAValue()
    {
        AssertUsageError(CliRunner.Run("info", "--model", Model, "--jsn"), "headwise info: unknown option --jsn (did you mean --json?)");
    }

    [Fact]
    public void UnknownOptionBeforeModelDoesNotSwallowIt()
    {
        AssertUsageError(CliRunner.Run("info", "--jsn", "--model", Model), "headwise info: unknown option --jsn (did you mean --json?)");
    }

    [Fact]
    public void StrayPositionalArgumentIsNamed()
    {
        AssertUsageError(CliRunner.Run("info", "--model", Model, "extra"),
            "headwise info: unexpected argument 'extra' (options start with --; see --help)");
        AssertUsageError(CliRunner.Run("pull", "org/name", "extra"), "headwise pull: unexpected extra argument 'extra' (see --help)");
    }

    [Fact]
    public void UnknownOptionWithNothingNearPointsToHelp()
    {
        AssertUsageError(CliRunner.Run("info", "--model", Model, "--frobnicate"), "headwise info: unknown option --frobnicate (see --help)");
    }

    [Fact]
    public void ValueOptionFollowedByAnotherOptionNeedsAValue()
    {
        AssertUsageError(CliRunner.Run("info", "--model", "--json"), "headwise info: option --model needs a value");
        AssertUsageError(CliRunner.Run("info", "--json=yes", "--model", Model), "headwise info: option --json takes no value (got 'yes')");
    }

    [Theory]
    [InlineData("jsn", "did you mean --json?")]         // a letter missing
    [InlineData("modle", "did you mean --model?")]      // two letters swapped
    [InlineData("tokeniser", "did you mean --tokenizer?")]
    [InlineData("tok", "did you mean --tokenizer?")]    // the only option it abbreviates
    [InlineData("xyz", null)]
    public void SuggestionIsTheNearestDeclaredOption(string typed, string? expected)
    {
        Assert.Equal(expected, CliArgs.Suggestion(typed, ["json", "model", "tokenizer", "threads"]));
    }

    [Fact]
    public void FlagAtTheEndAndEqualsFormStillWork()
    {
        Assert.Equal(0, CliRunner.Run("info", "--model", Model, "--json").ExitCode);
        Assert.Equal(0, CliRunner.Run("info", "--json", $"--model={Model}").ExitCode);
    }

    /// <summary>What a command declares is what its --help documents: a declared option missing from the help could never
    /// be discovered, and a documented one missing from the declaration would be refused as unknown.</summary>
    [Fact]
    public void EveryCommandDeclaresExactlyTheOptionsItsHelpDocuments()
    {
        var mismatches = new List<string>();
        foreach (var command in CommandRegistry.All)
        {
            var names = command.Options.Select(o => o.Name).ToList();
            var declared = names.ToHashSet();
            Assert.Equal(names.Count, declared.Count); // each option declared once
            // examples that start with `dotnet run --project …` name dotnet's options, not ours
            string help = string.Join('\n', command.Help.Split('\n').Where(l => !l.Contains("dotnet run", StringComparison.Ordinal)));
            var documented = Regex.Matches(help, @"(?<![\w-])--([a-z][a-z0-9-]*)").Select(m => m.Groups[1].Value).ToHashSet();
            documented.Remove("help");
            documented.ExceptWith(MentionedButNotOwn(command.Name));
            if (!declared.SetEquals(documented))
            {
                mismatches.Add($"{command.Name}: declared but not in --help: [{string.Join(", ", declared.Except(documented))}]; " +
                    $"in --help but not declared: [{string.Join(", ", documented.Except(declared))}]");
            }
        }
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
    }

    // options of other commands that a help text names in passing
    private static string[] MentionedButNotOwn(string command) => command switch
    {
        "pull" => ["model"], // "afterwards any command takes --model ORG/NAME"
        "train" => ["model"], // "a checkpoint that `headwise --model DIR/checkpoint` loads"
        _ => [],
    };
}
