using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Circuits;

namespace Headwise.Cli.Commands;

public sealed class CircuitsCommand : ICommand
{
    public string Name => "circuits";
    public string Summary => "QK and OV circuits from the weights: singular values, copying scores, Q/K/V composition between heads";
    public string Usage => """
        headwise circuits --model M [--head L.H[,L.H…]] [--top K] [--intervene FILE] [--json]
        """;

    public string Description => """
        Reads the weights only (no text). Per head: W_QK = W_Q W_Kᵀ and W_OV = W_V W_O (d_model × d_model, kept as
        their factors; the attention norm's γ folded in), their singular values, and the OV copying score
        Σλ/Σ|λ| over the eigenvalues of W_E W_OV W_U (1: the head copies the tokens it attends to). Between every
        head in an earlier layer and one in a later layer: Elhage et al.'s Q-, K- and V-composition scores
        ‖W_OV¹·W‖_F / (‖W_OV¹‖_F ‖W‖_F) with W = W_QK² (Q), W_QK²ᵀ (K), W_OV² (V). See docs/analyses.md.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("head", "L.H", "show these heads only (all singular values; composition to and from them)"),
        CliOption.Integer("top", "K", "composing pairs listed per kind (default 10)"),
        .. CliOption.Noted(RecipeArgs.Options, "(weights only: the analysis reads the recipe's edited weights, so edit_ov and edit_qk\nchange it; the activation kinds, which act during a forward, leave it as it is)"),
        CliOption.Flag("json", "print {\"heads\": [{\"head\", \"qk_singular_values\", \"ov_singular_values\", \"copying_score\"}],\n\"composition\": {\"Q\"|\"K\"|\"V\": {\"definition\", \"heads\", \"scores\" (rows write, columns read;\nnull unless the row's layer is earlier), \"top\": [{\"from\", \"to\", \"score\"}]}}}\n(and \"recipe\": name under --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise circuits --model ../shared/models/stories260K/stories260K.bin --top 5
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string? headArg = args.Get("head");
        using var loaded = ModelArgs.Load(args);
        int top = args.GetInt("top", 10, 1, 100000);
        var c = loaded.Config;
        var heads = headArg is null ? null : HeadId.ParseList(headArg, c.NLayers, c.NHeads);

        using var applied = RecipeArgs.Apply(args, loaded);
        var result = CircuitAnalysis.Compute(applied?.Model ?? loaded.Model, new CircuitOptions(heads), new ProgressBar(stderr, enabled: !json), CliMain.Cancellation);
        var kinds = new[] { result.Q!, result.K!, result.V! };
        IReadOnlyList<(HeadId From, HeadId To, double Score)> Pairs(CompositionScores s) => heads is null ? s.Top(top)
            : s.Top(int.MaxValue).Where(p => heads.Contains(p.From) || heads.Contains(p.To)).Take(top).ToList();

        if (json)
        {
            static double? N(double x) => double.IsNaN(x) ? null : x;
            stdout.WriteLine(RecipeArgs.Json(new
            {
                heads = result.Heads.Select(h => new
                {
                    head = h.Head.ToString(),
                    qk_singular_values = h.QkSingularValues,
                    ov_singular_values = h.OvSingularValues,
                    copying_score = N(h.CopyingScore),
                }),
                composition = kinds.ToDictionary(k => k.Kind, k => new
                {
                    definition = k.Definition,
                    heads = k.Heads.Select(h => h.ToString()),
                    scores = k.Scores.Select(r => r.Select(N)),
                    top = Pairs(k).Select(p => new { from = p.From.ToString(), to = p.To.ToString(), score = p.Score }),
                }),
            }, applied));
            return 0;
        }

        int shown = heads is null ? 4 : c.DHead;
        RecipeArgs.WriteLine(stdout, applied);
        string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
        string Sv(double[] s) => string.Join(" ", s.Take(shown).Select(F));
        var table = new CliTable("head", ">‖W_QK‖", "σ(W_QK) largest first", ">‖W_OV‖", "σ(W_OV) largest first", ">copying");
        foreach (var h in result.Heads)
        {
            table.Row($"{h.Head}", F(h.QkNorm), Sv(h.QkSingularValues), F(h.OvNorm), Sv(h.OvSingularValues), F(h.CopyingScore));
        }
        table.Write(stdout);
        foreach (var k in kinds)
        {
            stdout.WriteLine();
            stdout.WriteLine($"top {k.Kind}-composition (writer → reader): {k.Definition}");
            var pairs = new CliTable("writer", "", "reader", ">score");
            foreach (var p in Pairs(k))
            {
                pairs.Row($"{p.From}", "→", $"{p.To}", F(p.Score));
            }
            pairs.Write(stdout);
        }
        return 0;
    }
}
