using System.Globalization;

namespace Headwise.Sparse;

/// <summary>
/// Parses an attention spec (the <c>--attention</c> value) into its <see cref="AttentionPolicy"/>:
/// <list type="bullet">
/// <item><c>dense</c> — every causal pair (the default);</item>
/// <item><c>window:W[,sinks:S]</c> — query i sees key s ≤ i iff i − s &lt; W or s &lt; S (<see cref="WindowPolicy"/>);</item>
/// <item><c>topk-blocks:B,K[,proxy:P]</c> — per query block of B tokens the K best key blocks (<see cref="TopKBlocksPolicy"/>);</item>
/// <item><c>chunks:B,K</c> — dynamic chunks of whole blocks, the K best per query block (<see cref="ChunksPolicy"/>).</item>
/// </list>
/// A malformed spec throws <see cref="InvalidInputException"/> with one line naming the spec and what was expected.
/// </summary>
public static class AttentionSpec
{
    /// <summary>The accepted forms, for help texts and error messages.</summary>
    public const string Forms = "dense | window:W,sinks:S | topk-blocks:B,K[,proxy:P] | chunks:B,K";

    public static AttentionPolicy Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string text = spec.Trim();
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        int colon = parts[0].IndexOf(':');
        string kind = colon < 0 ? parts[0] : parts[0][..colon];
        // the first part's value, then the other parts: positional numbers or name:value pairs
        var positional = new List<string>();
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        if (colon >= 0)
        {
            positional.Add(parts[0][(colon + 1)..]);
        }
        foreach (string part in parts.Skip(1))
        {
            int c = part.IndexOf(':');
            if (c < 0)
            {
                positional.Add(part);
            }
            else if (!named.TryAdd(part[..c], part[(c + 1)..]))
            {
                throw Bad(spec, $"'{part[..c]}' is given twice");
            }
        }
        switch (kind)
        {
            case "dense":
                Expect(spec, positional.Count == 0 && named.Count == 0, "dense takes no values");
                return DensePolicy.Instance;
            case "window":
                {
                    Expect(spec, positional.Count == 1 && named.Keys.All(n => n == "sinks"), "expected window:W,sinks:S");
                    int w = Number(spec, "window W", positional[0], 1);
                    int s = named.TryGetValue("sinks", out var sv) ? Number(spec, "sinks S", sv, 0) : 0;
                    return new WindowPolicy(w, s);
                }
            case "topk-blocks":
                {
                    Expect(spec, positional.Count == 2 && named.Keys.All(n => n == "proxy"), "expected topk-blocks:B,K[,proxy:P]");
                    int b = Number(spec, "block size B", positional[0], 1);
                    int k = Number(spec, "blocks kept K", positional[1], 1);
                    int p = named.TryGetValue("proxy", out var pv) ? Number(spec, "proxy heads P", pv, 1) : 0;
                    return new TopKBlocksPolicy(b, k, p);
                }
            case "chunks":
                {
                    Expect(spec, positional.Count == 2 && named.Count == 0, "expected chunks:B,K");
                    int b = Number(spec, "block size B", positional[0], 1);
                    int k = Number(spec, "chunks kept K", positional[1], 1);
                    return new ChunksPolicy(b, k);
                }
            default:
                throw Bad(spec, $"unknown kind '{kind}'; expected {Forms}");
        }
    }

    private static void Expect(string spec, bool ok, string what)
    {
        if (!ok)
        {
            throw Bad(spec, what);
        }
    }

    private static int Number(string spec, string what, string value, int min)
    {
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n))
        {
            throw Bad(spec, $"{what} must be a whole number (got '{value}')");
        }
        if (n < min)
        {
            throw Bad(spec, $"{what} must be {(min == 0 ? "0 or more" : $"at least {min}")} (got {n})");
        }
        return n;
    }

    private static InvalidInputException Bad(string spec, string why) => new($"attention spec '{spec}': {why}");
}
