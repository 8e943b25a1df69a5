using System.Globalization;

namespace Headwise.Cli;

/// <summary>A small, strict parser for <c>--name value</c>, <c>--flag</c> and positional arguments.
/// Each command declares its flags, its options that take a value and how many positional arguments it takes; anything
/// else is a usage error (exit 2) raised here, before the command loads or writes anything: a misspelled option is named,
/// with the nearest declared one, and never swallows the argument after it as its value.</summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _repeated = new(StringComparer.Ordinal);
    private readonly IReadOnlySet<string> _flags;
    private readonly IReadOnlySet<string> _valueOptions;

    public List<string> Positional { get; } = [];

    /// <param name="args">the arguments after the command name</param>
    /// <param name="flags">options that take no value (<c>--json</c>)</param>
    /// <param name="options">options that take a value (<c>--model M</c> or <c>--model=M</c>)</param>
    /// <param name="maxPositional">how many arguments without <c>--</c> the command takes</param>
    public CliArgs(IEnumerable<string> args, IReadOnlySet<string> flags, IReadOnlySet<string> options, int maxPositional = 0)
    {
        _flags = flags;
        _valueOptions = options;
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
            {
                if (Positional.Count >= maxPositional)
                {
                    throw new UsageException(maxPositional == 0
                        ? $"unexpected argument '{a}' (options start with --; see --help)"
                        : $"unexpected extra argument '{a}' (see --help)");
                }
                Positional.Add(a);
                continue;
            }
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            if (flags.Contains(name))
            {
                if (value is not null)
                {
                    throw new UsageException($"option --{name} takes no value (got '{value}')");
                }
            }
            else if (options.Contains(name))
            {
                if (value is null)
                {
                    // the next argument is the value, unless it is one of this command's own options: then the value is missing
                    if (i + 1 >= list.Count || IsDeclared(list[i + 1]))
                    {
                        throw new UsageException($"option --{name} needs a value");
                    }
                    value = list[++i];
                }
            }
            else
            {
                throw new UsageException($"unknown option --{name} ({Suggestion(name, flags.Concat(options)) ?? "see --help"})");
            }
            _options[name] = value;
            if (value is not null)
            {
                (_repeated.TryGetValue(name, out var all) ? all : _repeated[name] = []).Add(value);
            }
        }
    }

    private bool IsDeclared(string arg)
    {
        if (!arg.StartsWith("--", StringComparison.Ordinal))
        {
            return false;
        }
        string name = arg[2..].Split('=')[0];
        return _flags.Contains(name) || _valueOptions.Contains(name);
    }

    public bool Has(string name)
    {
        Declared(name, _flags.Contains(name) || _valueOptions.Contains(name));
        return _options.ContainsKey(name);
    }

    public bool Flag(string name)
    {
        Declared(name, _flags.Contains(name));
        return _options.ContainsKey(name);
    }

    /// <summary>Every value given to an option that may repeat (<c>--model A --model B</c>), in order; empty when absent.
    /// <see cref="Get"/> returns the last.</summary>
    public IReadOnlyList<string> GetAll(string name)
    {
        Declared(name, _valueOptions.Contains(name));
        return _repeated.TryGetValue(name, out var v) ? v : [];
    }

    public string? Get(string name)
    {
        Declared(name, _valueOptions.Contains(name));
        return _options.TryGetValue(name, out var v) ? v : null;
    }

    public string Require(string name, string what) =>
        Get(name) ?? throw new UsageException($"missing --{name} ({what})");

    public int GetInt(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        string? s = Get(name);
        if (s is null) return fallback;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
        {
            throw new UsageException($"--{name} expects an integer in [{min}, {max}], got '{s}'");
        }
        return v;
    }

    public double GetDouble(string name, double fallback, double min = double.MinValue, double max = double.MaxValue)
    {
        string? s = Get(name);
        if (s is null) return fallback;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v < min || v > max || double.IsNaN(v))
        {
            throw new UsageException($"--{name} expects a number in [{min}, {max}], got '{s}'");
        }
        return v;
    }

    // A command reading an option it did not declare is a bug in the command, not bad input: its users could never pass it.
    private static void Declared(string name, bool declared)
    {
        if (!declared)
        {
            throw new InvalidOperationException($"the command reads --{name} without declaring it in its Flags or Options");
        }
    }

    /// <summary>"did you mean --json?" for the declared option nearest to a misspelled one, or null when none is near:
    /// a unique option the name abbreviates, else the one fewest edits away (at most 1 edit for short names, 2 otherwise).</summary>
    public static string? Suggestion(string name, IEnumerable<string> declared)
    {
        var candidates = declared.Distinct().Order(StringComparer.Ordinal).ToList();
        var prefixed = candidates.Where(c => name.Length >= 2 && c.StartsWith(name, StringComparison.Ordinal)).ToList();
        if (prefixed.Count == 1)
        {
            return $"did you mean --{prefixed[0]}?";
        }
        int limit = name.Length <= 4 ? 1 : 2;
        string? best = null;
        int bestDistance = limit + 1;
        foreach (var c in candidates)
        {
            int d = EditDistance(name, c);
            if (d < bestDistance)
            {
                best = c;
                bestDistance = d;
            }
        }
        return best is null ? null : $"did you mean --{best}?";
    }

    // Levenshtein distance where swapping two neighbouring letters counts as one edit (optimal string alignment).
    private static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }
        return d[a.Length, b.Length];
    }
}

/// <summary>Bad command-line usage: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A command stopped by Ctrl-C that has something to say about what it kept (a checkpoint to resume from):
/// printed as "interrupted (message)", exit code 130.</summary>
public sealed class InterruptedException(string message) : OperationCanceledException(message);
