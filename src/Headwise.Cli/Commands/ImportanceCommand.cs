using Headwise.Analysis;
using Headwise.Analysis.Interventions;

namespace Headwise.Cli.Commands;

public sealed class ImportanceCommand : ICommand
{
    public string Name => "importance";
    public string Summary => "ablate every head in turn: how much the loss, KL or a task's metric changes without it";
    public IReadOnlySet<string> Flags { get; } = new HashSet<string> { "json" };
    public IReadOnlySet<string> Options { get; } = new HashSet<string>([.. ModelArgs.Options, .. InterventionArgs.Options, .. RecipeArgs.Options, "top", "out"]);
    public string Help => $"""
        headwise importance --model M [--method zero|mean|resample] [--metric loss|kl|logit-diff]
                            (--text-file F | --text "..." | --tokens IDS | --task NAME) [--top N] [--out F]
                            [--intervene FILE] [--json]

        Ablates each head alone (hook_z) and records metric(ablated) − metric(clean) per head: for loss and KL, how much
        worse the model does without it. The clean run is computed once; each ablated run resumes at the head's layer
        from the cached residual. Progress on stderr; Ctrl-C stops cleanly (exit 130, no output file written).

        Options:
        {ModelArgs.Help}
        {InterventionArgs.InputHelp}
          --top N           rows of the table, by |change| (default 10)
          --out F           also write the JSON to F (written only when the scan completes)
        {RecipeArgs.Help}
                            (each head ablated on top of the recipe: its hooks and the ablation's, in every resumed run)
          --json            print {"{"}"name", "definition", "values": [[layer 0 heads], ...], "clean": x{"}"} (and "recipe":
                            name under --intervene)

        Example:
          headwise importance --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --task induction --metric logit-diff
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        var method = InterventionArgs.Method(args);
        var metric = InterventionArgs.Metric(args);
        int top = args.GetInt("top", 10, 1);
        string? outFile = args.Get("out");
        using var loaded = ModelArgs.Load(args);
        var task = InterventionArgs.Task(args, loaded.Tokenizer);
        var target = InterventionArgs.Target(args, loaded, task, metric);
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        using var applied = RecipeArgs.Apply(args, loaded);
        RecipeArgs.RequireSourcesCover(applied, target.Items.Select(i => i.Length));
        var scores = Ablation.Importance(applied?.Model ?? loaded.Model, target, method, metric, bar, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        string payload = RecipeArgs.Json(new { name = scores.Name, definition = scores.Definition, values = scores.Values }, applied);
        if (outFile is not null)
        {
            string tmp = outFile + ".partial";
            File.WriteAllText(tmp, payload + Environment.NewLine);
            File.Move(tmp, outFile, overwrite: true);
        }
        if (json)
        {
            stdout.WriteLine(payload);
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine(scores.Definition);
        stdout.WriteLine();
        stdout.WriteLine("head     change");
        foreach (var (head, score) in scores.Ranked().OrderByDescending(x => Math.Abs(x.Score)).Take(top))
        {
            stdout.WriteLine($"{head,-8} {score,10:+0.0000;-0.0000;0.0000}");
        }
        return 0;
    }
}
