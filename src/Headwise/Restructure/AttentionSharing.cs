using Headwise.Analysis.Statistics;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Restructure;

/// <summary>A group <see cref="AttentionSharing.Suggest"/> proposes: its layers and, per later layer, the similarity of its
/// patterns to the first layer's (<see cref="AttentionStatisticsResult.Similarity"/>, averaged over heads, head h with head h).</summary>
public sealed record SuggestedGroup(int[] Layers, double[] Similarity);

/// <summary>
/// Cross-layer attention sharing [EchoAtt]: in each group of layers, the later layers reuse the first layer's attention pattern,
/// computed once. A later layer keeps its values and output projection (z_h = pattern_h(first layer)·v_h) and loses its query and
/// key projections, so it neither computes q·kᵀ nor caches keys. Headwise's format (docs/restructure.md): the source family's
/// checkpoint with those q/k tensors removed (GPT-2's and GPT-NeoX's fused q|k|v projections keep their value part alone) and a
/// <c>headwise_shared_attention</c> block in config.json. A group of one layer changes nothing (lossless).
/// </summary>
public static class AttentionSharing
{
    /// <summary>Parses <c>--groups</c>: comma-separated groups, each a layer range "a-b" (a ≤ b: layers a … b) or one layer "a".
    /// Throws one line per problem: not a number, a descending range, a layer out of range, a layer in two groups.</summary>
    public static int[][] ParseGroups(string spec, int layers)
    {
        var groups = new List<int[]>();
        foreach (string part in spec.Split(',', StringSplitOptions.TrimEntries))
        {
            string[] ends = part.Split('-', StringSplitOptions.TrimEntries);
            if (ends.Length is < 1 or > 2 || ends.Any(e => !int.TryParse(e, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)))
            {
                throw new InvalidInputException($"--groups {spec}: '{part}' is not a layer range like 4-5 or one layer like 4");
            }
            int first = int.Parse(ends[0], System.Globalization.CultureInfo.InvariantCulture), last = int.Parse(ends[^1], System.Globalization.CultureInfo.InvariantCulture);
            if (last < first)
            {
                throw new InvalidInputException($"--groups {spec}: group {part} does not ascend (the first layer's pattern is reused by the later ones)");
            }
            groups.Add([.. Enumerable.Range(first, last - first + 1)]);
        }
        Check(groups, layers, "--groups " + spec);
        return [.. groups];
    }

    /// <summary>Throws <see cref="InvalidInputException"/> unless <paramref name="groups"/> can be a model of
    /// <paramref name="layers"/> layers' groups (<see cref="SharedAttention.Problem"/>).</summary>
    public static void Check(IReadOnlyList<int[]> groups, int layers, string what)
    {
        if (SharedAttention.Problem(groups, layers) is { } problem)
        {
            throw new InvalidInputException($"{what}: {problem}");
        }
    }

    /// <summary>Refuses the models the conversion cannot handle, in one line each.</summary>
    public static void CheckSource(ModelConfig c)
    {
        if (c.Family is not (ArchitectureFamily.Gpt2 or ArchitectureFamily.Llama or ArchitectureFamily.GptNeoX))
        {
            throw new InvalidInputException($"convert share-attention: {c.ModelType} checkpoints are not supported (GPT-2, the Llama family and GPT-NeoX are)");
        }
        if (c.SharedAttention is not null)
        {
            throw new InvalidInputException("convert share-attention: the model shares attention already (its config.json has headwise_shared_attention); convert the original");
        }
    }

    /// <summary>The model's weights with <paramref name="groups"/> sharing attention: the same tensors, the config's
    /// <see cref="ModelConfig.SharedAttention"/> set (writing them drops the shared layers' q/k tensors). Groups of one layer
    /// are left out of the config (they share nothing).</summary>
    public static CanonicalWeights Apply(TransformerModel model, IReadOnlyList<int[]> groups)
    {
        var c = model.Config;
        CheckSource(c);
        Check(groups, c.NLayers, "groups");
        var w = model.ToCanonical();
        int[][] sharing = [.. groups.Where(g => g.Length > 1)];
        return w with { Config = c with { SharedAttention = sharing.Length == 0 ? null : new SharedAttention(sharing) } };
    }

    /// <summary>Groups of consecutive layers whose patterns are alike on <paramref name="calibration"/> (the first context's
    /// worth): a group starts at the lowest layer not yet grouped and takes each next layer while that layer's patterns are at
    /// least <paramref name="minSimilarity"/> similar to the first layer's (1 − Jensen–Shannon divergence, head h with head h,
    /// averaged over heads). Only groups of two or more layers are returned.</summary>
    public static SuggestedGroup[] Suggest(TransformerModel model, int[] calibration, double minSimilarity, CancellationToken cancel = default)
    {
        var c = model.Config;
        CheckSource(c);
        if (!(minSimilarity is >= 0 and <= 1))
        {
            throw new InvalidInputException($"--min-similarity {minSimilarity}: must be 0 to 1");
        }
        if (calibration.Length < 2)
        {
            throw new InvalidInputException($"the calibration text has {calibration.Length} token(s); it needs at least 2");
        }
        int T = Math.Min(calibration.Length, c.MaxPositions), L = c.NLayers, H = c.NHeads;
        var (_, cache) = model.RunWithCache(ModelInput.Single(calibration[..T]), n => n.EndsWith("attn.hook_pattern", StringComparison.Ordinal));
        var patterns = new double[L][][,];
        for (int l = 0; l < L; l++)
        {
            patterns[l] = [.. Enumerable.Range(0, H).Select(h => PatternCache.Pattern(cache, l, h))];
        }
        double Similar(int a, int b) => Enumerable.Range(0, H).Average(h => AttentionStatistics.PatternSimilarity(patterns[a][h], patterns[b][h]));
        var groups = new List<SuggestedGroup>();
        for (int first = 0; first < L;)
        {
            cancel.ThrowIfCancellationRequested();
            var members = new List<int> { first };
            var similarity = new List<double>();
            for (int next = first + 1; next < L; next++)
            {
                double s = Similar(first, next);
                if (s < minSimilarity)
                {
                    break;
                }
                members.Add(next);
                similarity.Add(s);
            }
            if (members.Count > 1)
            {
                groups.Add(new SuggestedGroup([.. members], [.. similarity]));
            }
            first += members.Count;
        }
        return [.. groups];
    }

    /// <summary>"4-5,6-7": groups as <c>--groups</c> reads them (every group is a range of consecutive layers).</summary>
    public static string Format(IEnumerable<int[]> groups) =>
        string.Join(",", groups.Select(g => g.Length == 1 ? $"{g[0]}" : $"{g[0]}-{g[^1]}"));
}
