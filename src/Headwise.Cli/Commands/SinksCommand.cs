using System.Globalization;
using Headwise.Analysis.Statistics;

namespace Headwise.Cli.Commands;

public sealed class SinksCommand : ICommand
{
    public string Name => "sinks";
    public string Summary => "attention sinks per layer: the tokens that draw outsized attention, and their residual norm";
    public string Usage => """
        headwise sinks --model M (--text "..." | --tokens IDS) [--ratio R] [--mass X] [--intervene FILE] [--json]
        """;

    public string Description => """
        Position k is a sink in a layer when, averaged over heads and later queries q > k, the attention A[q, k] it
        receives is at least R times the uniform share 1/(q+1) (i.e. mean of (q+1)·A[q, k] ≥ R) and at least X. Only
        positions with at least max(2, ⌈T/4⌉) later queries are judged (fewer cannot tell a sink from local attention). Position 0 is the primary sink; others are secondary. For each sink: the layers it is one
        in, and the L2 norm of blocks.L.hook_resid_pre at it against the median over positions.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        .. StatisticsPrompt.Options,
        .. CliOption.Noted(RecipeArgs.Options, "(the patterns and residuals of the intervened run)"),
        CliOption.Number("ratio", "R", "times the uniform expectation (default 3)"),
        CliOption.Number("mass", "X", "least mean attention received (default 0.1)"),
        CliOption.Flag("json", "print {\"tokens\", \"layers\": [{\"layer\", \"median_resid_norm\", \"sinks\": [{\"position\", \"token\",\n\"received\", \"ratio\", \"resid_norm\"}]}], \"sinks\": [{\"position\", \"token\", \"primary\", \"layers\",\n\"mean_received\"}], \"recipe\": name under --intervene}"),
    ];

    public string Examples => """
        Example:
          headwise sinks --model ../shared/models/stories260K/stories260K.bin --tokens 1,403,407,261,378,432,417,372
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        var ids = StatisticsPrompt.Read(args, loaded);
        double ratio = args.GetDouble("ratio", 3, 0);
        double mass = args.GetDouble("mass", 0.1, 0, 1);
        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var model = applied?.Model ?? loaded.Model;
        var r = AttentionSinks.Compute(model, ids, PatternCache.Run(model, ids, RecipeArgs.Hooks(applied)), ratio, mass, CliMain.Cancellation);
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                tokens = ids,
                layers = r.Layers.Select(l => new
                {
                    layer = l.Layer,
                    median_resid_norm = l.MedianResidNorm,
                    sinks = l.Sinks.Select(s => new { position = s.Position, token = s.TokenId, received = s.Received, ratio = s.Ratio, resid_norm = s.ResidNorm }),
                }),
                sinks = r.Sinks.Select(s => new { position = s.Position, token = s.TokenId, primary = s.Primary, layers = s.Layers, mean_received = s.MeanReceived }),
            }, applied));
            return 0;
        }
        string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"{ids.Length} tokens; a sink draws ≥ {ratio.ToString(CultureInfo.InvariantCulture)}× uniform and ≥ {F(mass)} of later queries' attention");
        var table = new CliTable(">layer", ">pos", "token", ">received", ">× unif", ">‖resid‖", ">median");
        foreach (var l in r.Layers)
        {
            if (l.Sinks.Length == 0)
            {
                table.Row($"{l.Layer}", "(none)", "", "", "", "", F(l.MedianResidNorm));
            }
            foreach (var s in l.Sinks)
            {
                table.Row($"{l.Layer}", $"{s.Position}", StatisticsPrompt.Show(loaded, s.TokenId), F(s.Received), s.Ratio.ToString("F1", CultureInfo.InvariantCulture), F(s.ResidNorm), F(l.MedianResidNorm));
            }
        }
        table.Write(stdout);
        stdout.WriteLine();
        foreach (var s in r.Sinks)
        {
            stdout.WriteLine($"{(s.Primary ? "primary" : "secondary")} sink at {s.Position} ({StatisticsPrompt.Show(loaded, s.TokenId)}): layers {string.Join(",", s.Layers)}, mean received {F(s.MeanReceived)}");
        }
        return 0;
    }
}
