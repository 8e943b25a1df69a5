using System.Globalization;
using Headwise.Analysis.Statistics;

namespace Headwise.Cli.Commands;

public sealed class StatsCommand : ICommand
{
    public string Name => "stats";
    public string Summary => "attention pattern statistics: effective rank, row kurtosis, layer and head similarity, head clusters";
    public string Usage => """
        headwise stats --model M (--text "..." | --tokens IDS) [--threshold S] [--intervene FILE] [--json]
        """;

    public string Description => """
        Per head on one prompt: the effective rank of its T × T pattern (exp of the entropy of the normalised singular
        values: 1 … T) and the mean excess kurtosis of its rows. Between layers (head-averaged patterns) and between
        heads: similarity = 1 − Jensen–Shannon divergence (bits) of the query rows, averaged over rows 1..T−1. Heads are
        grouped by average-link clustering, merging while two clusters' mean similarity is ≥ the threshold.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        .. StatisticsPrompt.Options,
        .. CliOption.Noted(RecipeArgs.Options, "(the patterns of the intervened run)"),
        CliOption.Number("threshold", "S", "similarity needed to merge clusters (default 0.8)"),
        CliOption.Flag("json", "print {\"tokens\", \"effective_rank\" [layer][head], \"kurtosis\" [layer][head], \"layer_similarity\" [L][L],\n\"heads\", \"head_similarity\" [LH][LH], \"clusters\" [[heads]], \"threshold\"} (and \"recipe\":\nname under --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise stats --model ../shared/models/stories260K/stories260K.bin --tokens 1,403,407,261,378,432
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        var ids = StatisticsPrompt.Read(args, loaded);
        double threshold = args.GetDouble("threshold", 0.8, 0, 1);
        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var model = applied?.Model ?? loaded.Model;
        var cache = PatternCache.Run(model, ids, RecipeArgs.Hooks(applied));
        var r = AttentionStatistics.Compute(model, ids, cache, threshold, new ProgressBar(stderr, enabled: !json), CliMain.Cancellation);
        static double? N(double x) => double.IsNaN(x) ? null : x;
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                tokens = ids,
                effective_rank = r.EffectiveRank.Values,
                kurtosis = r.Kurtosis.Values.Select(l => l.Select(x => N(x))),
                layer_similarity = r.LayerSimilarity,
                heads = r.Heads.Select(h => h.ToString()),
                head_similarity = r.HeadSimilarity,
                clusters = r.Clusters.Select(c => c.Select(h => h.ToString())),
                threshold,
            }, applied));
            return 0;
        }
        int L = r.EffectiveRank.Layers, H = r.EffectiveRank.Heads;
        string F(double x, string f = "F2") => double.IsNaN(x) ? "-" : x.ToString(f, CultureInfo.InvariantCulture);
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"{ids.Length} tokens. Effective rank of each head's pattern (1 … {ids.Length}); columns are heads");
        // one row per layer, one column per head (or per layer, for the similarity matrix)
        void Matrix(int columns, Func<int, int, double> value, string format)
        {
            var table = new CliTable([">layer", .. Enumerable.Range(0, columns).Select(c => $">{c}")]);
            for (int l = 0; l < L; l++)
            {
                table.Row([$"{l}", .. Enumerable.Range(0, columns).Select(c => F(value(l, c), format))]);
            }
            table.Write(stdout);
        }
        Matrix(H, (l, h) => r.EffectiveRank.Values[l][h], "F2");
        stdout.WriteLine();
        stdout.WriteLine("Mean row excess kurtosis");
        Matrix(H, (l, h) => r.Kurtosis.Values[l][h], "F2");
        stdout.WriteLine();
        stdout.WriteLine("Layer similarity (1 − JSD of head-averaged patterns)");
        Matrix(L, (l, m) => r.LayerSimilarity[l][m], "F3");
        stdout.WriteLine();
        stdout.WriteLine($"Head clusters (average link, mean similarity ≥ {F(threshold)}): {r.Clusters.Length}");
        foreach (var c in r.Clusters.Where(c => c.Length > 1))
        {
            stdout.WriteLine($"  {c.Length,3} heads: {string.Join(" ", c)}");
        }
        int singles = r.Clusters.Count(c => c.Length == 1);
        if (singles > 0)
        {
            stdout.WriteLine($"  {singles} heads alone");
        }
        return 0;
    }
}
