using System.Globalization;

namespace Headwise.Cli;

/// <summary>A small, strict parser for <c>--name value</c>, <c>--flag</c> and positional arguments.
/// Every option a command reads is declared, so an unknown or misspelled option is a clear error (exit 2).</summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public List<string> Positional { get; } = [];

    public CliArgs(IEnumerable<string> args, IReadOnlySet<string> flags)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                string name = a[2..];
                string? value = null;
                int eq = name.IndexOf('=');
                if (eq >= 0)
                {
                    value = name[(eq + 1)..];
                    name = name[..eq];
                }
                else if (!flags.Contains(name))
                {
                    if (i + 1 >= list.Count)
                    {
                        throw new UsageException($"option --{name} needs a value");
                    }
                    value = list[++i];
                }
                _options[name] = value;
            }
            else
            {
                Positional.Add(a);
            }
        }
    }

    public bool Has(string name)
    {
        _read.Add(name);
        return _options.ContainsKey(name);
    }

    public bool Flag(string name) => Has(name);

    public string? Get(string name)
    {
        _read.Add(name);
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

    /// <summary>Call after a command has read its options: anything not read is a typo or an option of another command.</summary>
    public void RejectUnknown()
    {
        foreach (var name in _options.Keys)
        {
            if (!_read.Contains(name))
            {
                throw new UsageException($"unknown option --{name} (see --help)");
            }
        }
    }
}

/// <summary>Bad command-line usage: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
