using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Headwise.Cli;

/// <summary>A command's view of its parsed command line: typed reads, by name, of the options it declared
/// (<see cref="Commands.ICommand.Options"/>), over System.CommandLine's <see cref="ParseResult"/>. Reading an option the
/// command did not declare is a bug in the command and throws; a value that does not fit (not an integer, out of range)
/// is bad input and throws <see cref="UsageException"/> naming the option.</summary>
public sealed class CliArgs
{
    private readonly ParseResult _result;
    private readonly IReadOnlyDictionary<string, (CliOption Spec, Option Symbol)> _declared;

    public IReadOnlyList<string> Positional { get; }

    internal CliArgs(ParseResult result, IReadOnlyDictionary<string, (CliOption Spec, Option Symbol)> declared, IReadOnlyList<string> positional)
    {
        _result = result;
        _declared = declared;
        Positional = positional;
    }

    private IReadOnlyList<string> Values(string name) =>
        _result.GetResult(_declared[name].Symbol) is OptionResult r ? [.. r.Tokens.Select(t => t.Value)] : [];

    private bool Present(string name) => _result.GetResult(_declared[name].Symbol) is OptionResult { Implicit: false };

    public bool Has(string name)
    {
        Declared(name, _declared.ContainsKey(name));
        return Present(name);
    }

    public bool Flag(string name)
    {
        Declared(name, _declared.TryGetValue(name, out var o) && o.Spec.Kind == OptionKind.Flag);
        return Present(name);
    }

    /// <summary>Every value given to an option that may repeat (<c>--model A --model B</c>), in order; empty when absent.
    /// <see cref="Get"/> returns the last.</summary>
    public IReadOnlyList<string> GetAll(string name)
    {
        Declared(name, _declared.TryGetValue(name, out var o) && o.Spec.Kind != OptionKind.Flag);
        return Values(name);
    }

    public string? Get(string name)
    {
        Declared(name, _declared.TryGetValue(name, out var o) && o.Spec.Kind != OptionKind.Flag);
        return Values(name) is [.., var last] ? last : null;
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
            throw new InvalidOperationException($"the command reads --{name} without declaring it in its Options (or reads a flag as a value)");
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
