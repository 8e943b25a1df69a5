using Headwise.Analysis;
using Headwise.Analysis.Interventions;

namespace Headwise.Cli.Commands;

public sealed class AblateCommand : ICommand
{
    public string Name => "ablate";
    public string Summary => "ablate heads (zero, mean, resample) and measure the change in loss, KL or a task's metric";
    public IReadOnlySet<string> Flags { get; } = new HashSet<string> { "json" };
    public IReadOnlySet<string> Options { get; } = new HashSet<string>([.. ModelArgs.Options, .. InterventionArgs.Options, .. RecipeArgs.Options, "heads"]);
    public string Help => $"""
        headwise ablate --model M --heads 1.4,9.6 [--method zero|mean|resample] [--metric loss|kl|logit-diff]
                        (--text-file F | --text "..." | --tokens IDS | --task NAME) [--intervene FILE] [--json]

        Replaces the heads' output z (blocks.L.attn.hook_z) together and compares the metric with the clean run:
        loss = mean next-token NLL (nats), kl = mean KL(clean ‖ ablated) of the next-token distributions,
        logit-diff = the task's metric (see `headwise tasks`), averaged over the task's prompts.

        Options:
        {ModelArgs.Help}
          --heads H         heads to ablate, LAYER.HEAD comma-separated (counted from 0)
        {InterventionArgs.InputHelp}
        {RecipeArgs.Help}
                            (clean = the recipe's run, ablated = the recipe's hooks and the ablation together)
          --json            print {"{"}"heads": [...], "method", "metric", "clean": x, "ablated": y, "change": y − x{"}"}
                            (and "recipe": name under --intervene)

        Example:
          headwise ablate --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --heads 1.2,3.0 --text "Once upon a time there was a little girl"
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string headsArg = args.Require("heads", "heads to ablate, e.g. 1.4,9.6");
        var method = InterventionArgs.Method(args);
        var metric = InterventionArgs.Metric(args);
        using var loaded = ModelArgs.Load(args);
        var task = InterventionArgs.Task(args, loaded.Tokenizer);
        var heads = HeadId.ParseList(headsArg, loaded.Config.NLayers, loaded.Config.NHeads);
        var target = InterventionArgs.Target(args, loaded, task, metric);
        using var applied = RecipeArgs.Apply(args, loaded);
        RecipeArgs.RequireSourcesCover(applied, target.Items.Select(i => i.Length));
        var r = Ablation.Ablate(applied?.Model ?? loaded.Model, target, heads, method, metric, cancel: CliMain.Cancellation, baseHooks: RecipeArgs.Hooks(applied));
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                heads = r.Heads.Select(h => h.ToString()).ToArray(),
                method = r.Method.ToString().ToLowerInvariant(),
                metric = Ablation.Name(r.Metric),
                target = r.Target,
                clean = r.Clean,
                ablated = r.Ablated,
                change = r.Change,
            }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"heads     {string.Join(", ", r.Heads)} ({r.Method.ToString().ToLowerInvariant()}-ablated)");
        stdout.WriteLine($"on        {r.Target}");
        stdout.WriteLine($"metric    {Ablation.Name(r.Metric)}");
        stdout.WriteLine($"clean     {r.Clean:F4}");
        stdout.WriteLine($"ablated   {r.Ablated:F4}");
        stdout.WriteLine($"change    {r.Change:+0.0000;-0.0000;0.0000}");
        return 0;
    }
}
