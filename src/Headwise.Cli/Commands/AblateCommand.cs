using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Vision;

namespace Headwise.Cli.Commands;

public sealed class AblateCommand : ICommand
{
    public string Name => "ablate";
    public string Summary => "ablate heads (zero, mean, resample) and measure the change in loss, KL or a task's metric";
    public string Usage => """
        headwise ablate --model M --heads 1.4,9.6 [--method zero|mean|resample] [--metric loss|kl|logit-diff]
                        (--text-file F | --text "..." | --tokens IDS | --task NAME) [--intervene FILE] [--json]
        headwise ablate --model VIT --heads 1.4,9.6 --image FILE [--method zero|mean] [--intervene FILE] [--json]
        """;

    public string Description => """
        Replaces the heads' output z (blocks.L.attn.hook_z) together and compares the metric with the clean run:
        loss = mean next-token NLL (nats), kl = mean KL(clean ‖ ablated) of the next-token distributions,
        logit-diff = the task's metric (see `headwise tasks`), averaged over the task's prompts.
        On an image classifier (ViT) with --image: mean = the head's mean z over the image's positions, and the metric is
        KL(clean ‖ ablated) of the label distributions at the CLS, with the clean top label's probability before and after.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("heads", "H", "heads to ablate, LAYER.HEAD comma-separated (counted from 0)"),
        CliOption.Text("image", "FILE", "a vision classifier's image (PNG/JPEG, preprocessed as for classify)"),
        .. InterventionArgs.Options,
        .. CliOption.Noted(RecipeArgs.Options, "(clean = the recipe's run, ablated = the recipe's hooks and the ablation together)"),
        CliOption.Flag("json", "print {\"heads\": [...], \"method\", \"metric\", \"clean\": x, \"ablated\": y, \"change\": y − x}\n(and \"recipe\": name under --intervene); on an image {\"heads\", \"method\", \"metric\": \"kl\",\n\"kl\", \"clean_label\", \"clean_probability\", \"ablated_probability\", \"ablated_label\"}"),
    ];

    public string Examples => """
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
        if (loaded.Config.Vision is not null || args.Get("image") is not null)
        {
            return RunImage(args, loaded, headsArg, method, json, stdout, stderr);
        }
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

    // an image classifier: the label distribution at the CLS, clean and with the heads ablated
    private static int RunImage(CliArgs args, LoadedModel loaded, string headsArg, AblationMethod method, bool json, TextWriter stdout, TextWriter stderr)
    {
        var vision = ImageArgs.RequireVision(loaded, "ablate --image");
        string file = args.Get("image") ?? throw new UsageException($"{loaded.Path} is a vision model: give --image FILE");
        var heads = HeadId.ParseList(headsArg, loaded.Config.NLayers, loaded.Config.NHeads);
        var input = ImageArgs.Read(file, loaded, ImageArgs.Processor(loaded), stderr);
        using var applied = RecipeArgs.Apply(args, loaded);
        var r = VisionAblation.Ablate(applied?.Model ?? loaded.Model, input, heads, method, RecipeArgs.Hooks(applied));
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                heads = r.Heads.Select(h => h.ToString()).ToArray(),
                method = r.Method.ToString().ToLowerInvariant(),
                metric = "kl",
                kl = r.Kl,
                clean_label = vision.Labels[r.CleanTop],
                clean_probability = r.CleanProbability,
                ablated_probability = r.AblatedProbability,
                ablated_label = vision.Labels[r.AblatedTop],
            }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"heads     {string.Join(", ", r.Heads)} ({r.Method.ToString().ToLowerInvariant()}-ablated) on {file}");
        stdout.WriteLine($"kl        {r.Kl:F4} nats (clean ‖ ablated, labels at the CLS)");
        stdout.WriteLine($"clean     {vision.Labels[r.CleanTop]} {r.CleanProbability:P2}");
        stdout.WriteLine($"ablated   {vision.Labels[r.CleanTop]} {r.AblatedProbability:P2}; top label {vision.Labels[r.AblatedTop]}");
        return 0;
    }
}
