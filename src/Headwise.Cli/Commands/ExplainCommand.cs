using System.Globalization;
using Headwise.Analysis.Statistics;

namespace Headwise.Cli.Commands;

public sealed class ExplainCommand : ICommand
{
    public string Name => "explain";
    public string Summary => "does attention explain the prediction? attention and rollout vs leave-one-out, rank-correlated";
    public string Usage => """
        headwise explain --model M (--text "..." | --tokens IDS) [--intervene FILE] [--json]
        """;

    public string Description => """
        Three importances of each context token for the model's predicted next token (argmax at the last position):
        attention (last layer, from the last position, head-averaged), attention rollout (Abnar and Zuidema: the product
        over layers of row-normalised 0.5·A + 0.5·I), and leave-one-out (log p(predicted) minus log p(predicted) with
        the token removed; one forward per token). Agreement: Kendall's τ-b and Spearman's ρ, ties handled.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        .. StatisticsPrompt.Options,
        .. CliOption.Noted(RecipeArgs.Options, "(patterns and every leave-one-out forward under it; an inject recipe cannot run\nleave-one-out, whose prompts are one token shorter)"),
        CliOption.Flag("json", "print {\"tokens\", \"predicted\", \"log_prob\", \"attention\", \"rollout\", \"leave_one_out\",\n\"attention_vs_loo\": {\"kendall_tau_b\", \"spearman_rho\"}, \"rollout_vs_loo\": {…}} (and\n\"recipe\": name under --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise explain --model ../shared/models/stories260K/stories260K.bin --tokens 1,403,407,261,378,432
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        var ids = StatisticsPrompt.Read(args, loaded);
        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var model = applied?.Model ?? loaded.Model;
        var hooks = RecipeArgs.Hooks(applied);
        var r = AttentionExplanation.Compute(model, ids, PatternCache.Run(model, ids, hooks), new ProgressBar(stderr, enabled: !json), CliMain.Cancellation, hooks);
        static double? N(double x) => double.IsNaN(x) ? null : x;
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                tokens = ids,
                predicted = r.PredictedToken,
                log_prob = r.LogProb,
                attention = r.Attention,
                rollout = r.Rollout,
                leave_one_out = r.LeaveOneOut,
                attention_vs_loo = new { kendall_tau_b = N(r.AttentionVsLeaveOneOut.KendallTauB), spearman_rho = N(r.AttentionVsLeaveOneOut.SpearmanRho) },
                rollout_vs_loo = new { kendall_tau_b = N(r.RolloutVsLeaveOneOut.KendallTauB), spearman_rho = N(r.RolloutVsLeaveOneOut.SpearmanRho) },
            }, applied));
            return 0;
        }
        string F(double x) => double.IsNaN(x) ? "-" : x.ToString("F3", CultureInfo.InvariantCulture);
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"predicted next token: {StatisticsPrompt.Show(loaded, r.PredictedToken)} (id {r.PredictedToken}, log p = {F(r.LogProb)})");
        var table = new CliTable(">pos", "token", ">attention", ">rollout", ">leave-1-out");
        for (int t = 0; t < ids.Length; t++)
        {
            table.Row($"{t}", StatisticsPrompt.Show(loaded, ids[t]), F(r.Attention[t]), F(r.Rollout[t]), F(r.LeaveOneOut[t]));
        }
        table.Write(stdout);
        stdout.WriteLine();
        stdout.WriteLine($"attention vs leave-one-out: Kendall τ-b {F(r.AttentionVsLeaveOneOut.KendallTauB)}, Spearman ρ {F(r.AttentionVsLeaveOneOut.SpearmanRho)}");
        stdout.WriteLine($"rollout   vs leave-one-out: Kendall τ-b {F(r.RolloutVsLeaveOneOut.KendallTauB)}, Spearman ρ {F(r.RolloutVsLeaveOneOut.SpearmanRho)}");
        return 0;
    }
}
