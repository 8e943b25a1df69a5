using System.CommandLine;
using System.CommandLine.Parsing;
using Headwise.Cli.Commands;

namespace Headwise.Cli;

/// <summary>The command tree System.CommandLine parses: one sub-command per <see cref="ICommand"/>, its options from the
/// command's declarations. Parse errors become the one-line messages a user meets (unknown option with a suggestion,
/// missing value, stray argument), raised as <see cref="UsageException"/> before the command loads or writes anything.</summary>
public static class CliParser
{
    // '@file' is text here (a prompt may start with '@'), not a response file to expand.
    private static readonly ParserConfiguration s_configuration = new() { ResponseFileTokenReplacer = null };

    /// <summary>The root command with every sub-command: what the [suggest] directive (shell completion) walks.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("headwise — a workbench for the attention heads of transformer language models");
        foreach (var command in CommandRegistry.All)
        {
            root.Subcommands.Add(Bind(command).Symbol);
        }
        return root;
    }

    /// <summary>Parses a whole command line (directives included) against <see cref="Root"/>.</summary>
    public static ParseResult ParseRoot(IReadOnlyList<string> args) => Root().Parse(args, s_configuration);

    /// <summary>Parses the arguments after the command's name into what the command reads.</summary>
    public static CliArgs Parse(ICommand command, IReadOnlyList<string> args)
    {
        var bound = Bind(command);
        // What System.CommandLine would read differently from what the user meant: --json=yes leaves 'yes' stray, and
        // --model --json takes --json as the model. Both are named as the real mistake.
        for (int i = 0; i < args.Count; i++)
        {
            if (Declared(bound, args[i]) is not { } spec)
            {
                continue;
            }
            int eq = args[i].IndexOf('=');
            if (spec.Kind == OptionKind.Flag && eq > 0)
            {
                throw new UsageException($"option --{spec.Name} takes no value (got '{args[i][(eq + 1)..]}')");
            }
            if (spec.Kind != OptionKind.Flag && eq < 0)
            {
                if (i + 1 >= args.Count || Declared(bound, args[i + 1]) is not null)
                {
                    throw new UsageException($"option --{spec.Name} needs a value");
                }
                i++;
            }
        }
        var result = bound.Symbol.Parse(args, s_configuration);
        var positional = bound.Positional is null ? [] : result.GetResult(bound.Positional)?.Tokens.Select(t => t.Value).ToList() ?? [];
        var unmatched = result.UnmatchedTokens;
        foreach (string a in args)
        {
            // an option-looking token nobody declared: System.CommandLine leaves it unmatched or takes it as a positional argument
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2 && (unmatched.Contains(a) || positional.Contains(a)))
            {
                string name = a[2..].Split('=')[0];
                throw new UsageException($"unknown option --{name} ({CliArgs.Suggestion(name, bound.Options.Keys) ?? "see --help"})");
            }
        }
        foreach (var error in result.Errors)
        {
            var option = error.SymbolResult switch
            {
                OptionResult r => r.Option,
                ArgumentResult { Parent: OptionResult r } => r.Option,
                _ => null,
            };
            if (option is not null)
            {
                throw new UsageException($"option {option.Name} needs a value");
            }
        }
        if (unmatched.Count > 0)
        {
            throw new UsageException(command.Arguments.Count == 0
                ? $"unexpected argument '{unmatched[0]}' (options start with --; see --help)"
                : $"unexpected extra argument '{unmatched[0]}' (see --help)");
        }
        if (result.Errors.Count > 0)
        {
            throw new UsageException(result.Errors[0].Message);
        }
        return new CliArgs(result, bound.Options, positional);
    }

    // The declared option an argument names (--name or --name=value), or null.
    private static CliOption? Declared(Bound bound, string arg)
    {
        if (!arg.StartsWith("--", StringComparison.Ordinal))
        {
            return null;
        }
        string name = arg[2..].Split('=')[0];
        return bound.Options.TryGetValue(name, out var o) ? o.Spec : null;
    }

    private sealed record Bound(Command Symbol, Dictionary<string, (CliOption Spec, Option Symbol)> Options, Argument? Positional);

    private static Bound Bind(ICommand command)
    {
        var symbol = new Command(command.Name, command.Summary);
        var options = new Dictionary<string, (CliOption, Option)>(StringComparer.Ordinal);
        foreach (var spec in command.Options)
        {
            if (!options.TryAdd(spec.Name, (spec, spec.ToSymbol())))
            {
                throw new InvalidOperationException($"headwise {command.Name} declares --{spec.Name} twice");
            }
            symbol.Options.Add(options[spec.Name].Item2);
        }
        Argument? positional = null;
        if (command.Arguments.Count > 0)
        {
            string name = string.Join(" ", command.Arguments.Select(a => a.Name));
            positional = command.Arguments.Count == 1
                ? new Argument<string>(name) { Arity = ArgumentArity.ZeroOrOne }
                : new Argument<string[]>(name) { Arity = new ArgumentArity(0, command.Arguments.Count) };
            symbol.Arguments.Add(positional);
        }
        return new Bound(symbol, options, positional);
    }
}
