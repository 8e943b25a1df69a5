using System.CommandLine;

namespace Headwise.Cli;

/// <summary>What an option's value is: how <see cref="CliArgs"/> reads it and how --help and completion show it.</summary>
public enum OptionKind
{
    /// <summary>No value: present or absent (<c>--json</c>).</summary>
    Flag,
    /// <summary>A string: a path, a name, a list (<c>--model M</c>).</summary>
    Text,
    /// <summary>An integer, range-checked where the command reads it (<see cref="CliArgs.GetInt"/>).</summary>
    Integer,
    /// <summary>A floating-point number, range-checked where the command reads it (<see cref="CliArgs.GetDouble"/>).</summary>
    Number,
}

/// <summary>One option of a command, declared once: its name, the placeholder its value takes in --help, the help text
/// (a first line, then lines as they should appear under it), its kind, the values completion offers, whether it may
/// repeat, and the help section it is listed under. <see cref="CliParser"/> turns it into a System.CommandLine option and
/// <see cref="CliHelp"/> into its lines of --help.</summary>
public sealed record CliOption(string Name, string? Value, string Description, OptionKind Kind, string? Section = null)
{
    /// <summary>Each occurrence adds a value (<c>compare --model A --model B</c>); otherwise the last one given counts.</summary>
    public bool Repeatable { get; init; }

    /// <summary>The values shell completion offers (the command still checks what it is given, with its own message).</summary>
    public IReadOnlyList<string> Choices { get; init; } = [];

    public static CliOption Flag(string name, string description, string? section = null) => new(name, null, description, OptionKind.Flag, section);

    public static CliOption Text(string name, string value, string description, string? section = null) => new(name, value, description, OptionKind.Text, section);

    public static CliOption Integer(string name, string value, string description, string? section = null) => new(name, value, description, OptionKind.Integer, section);

    public static CliOption Number(string name, string value, string description, string? section = null) => new(name, value, description, OptionKind.Number, section);

    public static CliOption Repeated(string name, string value, string description, string? section = null) =>
        new(name, value, description, OptionKind.Text, section) { Repeatable = true };

    /// <summary>A shared group with a command's own remark added under the group's last option.</summary>
    public static IEnumerable<CliOption> Noted(IReadOnlyList<CliOption> group, string note) =>
        group.Select((o, i) => i == group.Count - 1 ? o with { Description = o.Description + "\n" + note } : o);

    /// <summary>The System.CommandLine option that parses it: a flag takes no argument; any other option takes one
    /// argument per occurrence and may occur again (the last counts unless <see cref="Repeatable"/>), so the value is kept
    /// as the typed string and converted, with the command's own range and message, when the command reads it.</summary>
    internal Option ToSymbol()
    {
        if (Kind == OptionKind.Flag)
        {
            return new Option<bool>("--" + Name) { Description = FirstLine, Arity = ArgumentArity.Zero };
        }
        var option = new Option<string[]>("--" + Name)
        {
            Description = FirstLine,
            HelpName = Value,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        if (Choices.Count > 0)
        {
            option.CompletionSources.Add([.. Choices]);
        }
        return option;
    }

    private string FirstLine => Description.Split('\n')[0];
}

/// <summary>A positional argument (an experiment's name, a task, a Hub repository), documented under "Arguments:".</summary>
public sealed record CliArgument(string Name, string Description);
