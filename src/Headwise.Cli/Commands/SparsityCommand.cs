using Headwise.Sparse;

namespace Headwise.Cli.Commands;

public sealed class SparsityCommand : ICommand
{
    public string Name => "sparsity";
    public string Summary => "sparse attention specs judged on a text: density, ΔNLL vs dense, attention-mass recall vs an oracle";
    public string Usage => """
        headwise sparsity --model M (--text-file F | --text "...") --attention SPEC [--attention SPEC ...] [--json]
        """;

    public string Description => """
        Runs the first min(tokens, context) tokens of the text densely and under each spec (docs/sparse.md) and reports:
          density      query–key pairs computed ÷ causal pairs, over every layer and head
          ΔNLL         the spec's mean nll minus dense's (nats/token)
          recall       the share of the dense pattern's attention mass that falls on the keys the spec kept, per layer
                       and head, averaged over queries; the table shows the mean over heads and the worst head
          oracle       the same share for an oracle that keeps, in every query's row, as many keys as the spec kept there
                       — those with the most dense attention (the best any selection of that density can do)
          speed-up     the attention part's speed-up: every layer's attention on the blocked kernel, dense ÷ the spec's
                       (its selection + the kernel on what it kept), median of 5 alternating rounds on the same q, k, v
                       (taken from one dense forward); at a small model's context the selection's cost can outweigh the
                       saving (n/a on multi-head latent attention models)
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text-file", "F", "the text (UTF-8; BOS prepended when the tokenizer adds one)"),
        CliOption.Text("text", "S", "the text, inline"),
        CliOption.Flag("no-bos", "do not prepend BOS"),
        CliOption.Repeated("attention", "SPEC", "a spec to judge (repeat for several): window:W,sinks:S | topk-blocks:B,K[,proxy:P] |\nchunks:B,K | dense"),
        CliOption.Flag("json", "print {\"tokens\": T, \"dense_mean_nll\": x, \"specs\": [{\"spec\", \"density\", \"mean_nll\",\n\"delta_nll\", \"recall\": [[...]], \"oracle_recall\": [[...]], \"mean_recall\", \"mean_oracle_recall\",\n\"attention_speedup\"}]} (recall [layer][head])"),
    ];

    public string Examples => """
        Example:
          headwise sparsity --model models/demo --text-file docs/examples/texts/stories.txt --attention window:32,sinks:4 --attention topk-blocks:16,2
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        var specs = args.GetAll("attention");
        if (specs.Count == 0)
        {
            throw new UsageException("give at least one --attention SPEC to judge (e.g. --attention window:64,sinks:4)");
        }
        var policies = specs.Select(AttentionSpec.Parse).ToList();
        string text = TextInput.Read(args);
        using var loaded = ModelArgs.Load(args);
        if (loaded.Config.Vision is not null)
        {
            throw new UsageException($"{loaded.Path}: sparse attention specs apply to causal text models; a {loaded.Config.ModelType} model reads images");
        }
        int[] ids = loaded.RequireTokenizer().Encode(text, addSpecial: !args.Flag("no-bos"));
        var r = SparsityAnalysis.Run(loaded.Model, ids, policies, CliMain.Cancellation, timeRounds: 5);
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                tokens = r.Tokens,
                dense_mean_nll = r.DenseMeanNll,
                specs = r.Specs.Select(s => new
                {
                    spec = s.Spec,
                    density = s.Density,
                    mean_nll = s.MeanNll,
                    delta_nll = s.DeltaNll,
                    recall = s.Recall,
                    oracle_recall = s.OracleRecall,
                    mean_recall = s.MeanRecall,
                    mean_oracle_recall = s.MeanOracleRecall,
                    attention_speedup = s.AttentionSpeedup,
                }),
            }));
            return 0;
        }
        stdout.WriteLine($"{r.Tokens} tokens; dense mean nll {r.DenseMeanNll:F4} nats/token");
        var table = new CliTable("spec", ">density", ">ΔNLL", ">recall", ">worst", ">oracle", ">speed-up");
        foreach (var s in r.Specs)
        {
            double worst = s.Recall.SelectMany(x => x).Min();
            table.Row(s.Spec, $"{s.Density:F4}", $"{s.DeltaNll:+0.0000;-0.0000;0.0000}", $"{s.MeanRecall:F4}", $"{worst:F4}", $"{s.MeanOracleRecall:F4}",
                s.AttentionSpeedup is double x ? $"{x:F2}×" : "n/a");
        }
        table.Write(stdout);
        return 0;
    }
}
