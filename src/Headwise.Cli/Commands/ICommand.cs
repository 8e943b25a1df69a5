namespace Headwise.Cli.Commands;

/// <summary>One sub-command of <c>headwise</c>. Add a command by writing one class and listing it in <see cref="CommandRegistry"/>:
/// its options are declared once in <see cref="Options"/>; <see cref="CliParser"/> parses them with System.CommandLine and
/// <see cref="CliHelp"/> writes --help from them and from the teaching text around them.</summary>
public interface ICommand
{
    /// <summary>The word after <c>headwise</c>.</summary>
    string Name { get; }

    /// <summary>One line for the command list.</summary>
    string Summary { get; }

    /// <summary>The synopsis: which options go together (first lines of --help).</summary>
    string Usage { get; }

    /// <summary>What the command computes and how to read it (the paragraph after the synopsis).</summary>
    string Description { get; }

    /// <summary>Every option the command takes; anything else is refused, with a suggestion, before <see cref="Run"/>.</summary>
    IReadOnlyList<CliOption> Options { get; }

    /// <summary>The arguments without <c>--</c> it takes (a model name, an experiment, a task), at most this many.</summary>
    IReadOnlyList<CliArgument> Arguments => [];

    /// <summary>Examples and notes after the options (last lines of --help).</summary>
    string Examples { get; }

    /// <summary>The full <c>--help</c> text, generated.</summary>
    string Help => CliHelp.Render(this);

    /// <summary>Runs the command; returns the exit code (0 done). Throw UsageException or HeadwiseException for bad input.</summary>
    int Run(CliArgs args, TextWriter stdout, TextWriter stderr);
}
