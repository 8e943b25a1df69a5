namespace Headwise.Cli.Commands;

/// <summary>One sub-command of <c>headwise</c>. Add a command by writing one class and listing it in <see cref="CommandRegistry"/>.</summary>
public interface ICommand
{
    /// <summary>The word after <c>headwise</c>.</summary>
    string Name { get; }

    /// <summary>One line for the command list.</summary>
    string Summary { get; }

    /// <summary>The full <c>--help</c> text: usage, options, an example.</summary>
    string Help { get; }

    /// <summary>Options that take no value.</summary>
    IReadOnlySet<string> Flags { get; }

    /// <summary>Options that take a value. Anything not in <see cref="Flags"/> or here is refused before <see cref="Run"/>.</summary>
    IReadOnlySet<string> Options { get; }

    /// <summary>How many arguments without <c>--</c> the command takes (a model name, an experiment, a task).</summary>
    int MaxPositional => 0;

    /// <summary>Runs the command; returns the exit code (0 done). Throw UsageException or HeadwiseException for bad input.</summary>
    int Run(CliArgs args, TextWriter stdout, TextWriter stderr);
}
