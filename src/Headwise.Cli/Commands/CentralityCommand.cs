using System.Globalization;
using Headwise.Analysis.Statistics;

namespace Headwise.Cli.Commands;

public sealed class CentralityCommand : ICommand
{
    public string Name => "centrality";
    public string Summary => "per layer, each token's discounted multi-hop attention centrality 1ᵀ Σ αᵏ Aᵏ";
    public string Usage => """
        headwise centrality --model M (--text "..." | --tokens IDS) [--alpha A] [--intervene FILE] [--json]
        """;

    public string Description => $"""
        With A a layer's head-averaged attention pattern (row-stochastic), a token's centrality is its entry of
        1ᵀ Σ_{"{"}k≥1{"}"} αᵏ Aᵏ = 1ᵀ((I − αA)⁻¹ − I): the attention flowing into it along walks of every length, discounted by α
        per hop (Katz centrality; Infinite Self-Attention). Computed by vector–matrix products until the term is below
        1e-10, which takes ⌈log(1e-10 / T) / log α⌉ products; no inverse is formed.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        .. StatisticsPrompt.Options,
        .. CliOption.Noted(RecipeArgs.Options, "(the patterns of the intervened run)"),
        CliOption.Number("alpha", "A", "discount per hop, 0 ≤ A < 1 (default 0.85)"),
        CliOption.Flag("json", "print {\"tokens\", \"alpha\", \"centrality\" [layer][position], \"iterations\" [layer]} (and \"recipe\": name\nunder --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise centrality --model ../shared/models/stories260K/stories260K.bin --tokens 1,403,407,261,378,432 --alpha 0.5
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        var ids = StatisticsPrompt.Read(args, loaded);
        double alpha = args.GetDouble("alpha", 0.85, 0, 0.999999);
        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var model = applied?.Model ?? loaded.Model;
        var r = TokenCentrality.Compute(model, ids, PatternCache.Run(model, ids, RecipeArgs.Hooks(applied)), alpha, cancel: CliMain.Cancellation);
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new { tokens = ids, alpha, centrality = r.Centrality, iterations = r.Iterations }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"centrality 1ᵀ Σ αᵏ Aᵏ, α = {alpha.ToString(CultureInfo.InvariantCulture)}; rows are positions, columns layers");
        var table = new CliTable([">pos", "token", .. Enumerable.Range(0, r.Centrality.Length).Select(l => $">{l}")]);
        for (int t = 0; t < ids.Length; t++)
        {
            table.Row([$"{t}", StatisticsPrompt.Show(loaded, ids[t]), .. r.Centrality.Select(c => c[t].ToString("F3", CultureInfo.InvariantCulture))]);
        }
        table.Write(stdout);
        return 0;
    }
}
