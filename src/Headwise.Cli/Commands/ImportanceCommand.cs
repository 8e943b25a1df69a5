using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Vision;

namespace Headwise.Cli.Commands;

public sealed class ImportanceCommand : ICommand
{
    public string Name => "importance";
    public string Summary => "ablate every head in turn: how much the loss, KL or a task's metric changes without it";
    public string Usage => """
        headwise importance --model M [--method zero|mean|resample] [--metric loss|kl|logit-diff]
                            (--text-file F | --text "..." | --tokens IDS | --task NAME) [--top N] [--out F]
                            [--intervene FILE] [--json]
        headwise importance --model VIT --image-dir DIR [--labels FILE] [--metric accuracy|loss] [--top N] [--out F] [--json]
        """;

    public string Description => """
        Ablates each head alone (hook_z) and records metric(ablated) − metric(clean) per head: for loss and KL, how much
        worse the model does without it. The clean run is computed once; each ablated run resumes at the head's layer
        from the cached residual. Progress on stderr; Ctrl-C stops cleanly (exit 130, no output file written).

        On an image classifier (ViT), head pruning over labelled images (--image-dir): each head's z zeroed alone, and
        accuracy or mean cross-entropy (--metric accuracy|loss, default loss) with it pruned minus without — for
        accuracy, negative when the head matters (docs/vision.md). Only --method zero applies.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        .. InterventionArgs.Options,
        .. ImageArgs.LabelsOptions,
        CliOption.Integer("top", "N", "rows of the table, by |change| (default 10)"),
        CliOption.Text("out", "F", "also write the JSON to F (written only when the scan completes)"),
        .. CliOption.Noted(RecipeArgs.Options, "(each head ablated on top of the recipe: its hooks and the ablation's, in every resumed run)"),
        CliOption.Flag("json", "print {\"name\", \"definition\", \"values\": [[layer 0 heads], ...], \"clean\": x} (and \"recipe\":\nname under --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise importance --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --task induction --metric logit-diff
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        int top = args.GetInt("top", 10, 1);
        string? outFile = args.Get("out");
        using var loaded = ModelArgs.Load(args);
        if (loaded.Config.Vision is not null || args.Has("image-dir") || args.Has("labels"))
        {
            return RunImages(args, loaded, json, top, outFile, stdout, stderr);
        }
        var method = InterventionArgs.Method(args);
        var metric = InterventionArgs.Metric(args);
        var task = InterventionArgs.Task(args, loaded.Tokenizer);
        var target = InterventionArgs.Target(args, loaded, task, metric);
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        using var applied = RecipeArgs.Apply(args, loaded);
        RecipeArgs.RequireSourcesCover(applied, target.Items.Select(i => i.Length));
        var scores = Ablation.Importance(applied?.Model ?? loaded.Model, target, method, metric, bar, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        return Write(RecipeArgs.Json(new { name = scores.Name, definition = scores.Definition, values = scores.Values }, applied),
            scores, applied, json, top, outFile, stdout);
    }

    // an image classifier: each head zero-ablated alone over labelled images, accuracy or loss
    private static int RunImages(CliArgs args, LoadedModel loaded, bool json, int top, string? outFile, TextWriter stdout, TextWriter stderr)
    {
        var vision = ImageArgs.RequireVision(loaded, "importance --image-dir");
        if (args.Has("text") || args.Has("text-file") || args.Has("tokens") || args.Has("task"))
        {
            throw new UsageException($"{loaded.Path} is a vit vision model: give --image-dir DIR (labelled images), not a text or task");
        }
        if ((args.Get("method") ?? "zero") != "zero")
        {
            throw new UsageException($"--method {args.Get("method")}: on images only zero is supported (head pruning)");
        }
        var metric = (args.Get("metric") ?? "loss") switch
        {
            "accuracy" => ImageMetric.Accuracy,
            "loss" => ImageMetric.Loss,
            string m => throw new UsageException($"--metric {m}: on images use accuracy or loss"),
        };
        var files = ImageArgs.LabelledFiles(args, vision);
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        using var applied = RecipeArgs.Apply(args, loaded);
        var scores = ImageEvaluation.Importance(applied?.Model ?? loaded.Model, ImageArgs.ReadLabelled(files, loaded, stderr), metric, out double clean,
            bar, files.Length, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        return Write(RecipeArgs.Json(new { name = scores.Name, definition = scores.Definition, values = scores.Values, clean, images = files.Length }, applied),
            scores, applied, json, top, outFile, stdout);
    }

    private static int Write(string payload, HeadScores scores, Headwise.Interventions.RecipeApplication? applied, bool json, int top, string? outFile, TextWriter stdout)
    {
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
        var table = new CliTable("head", ">change");
        foreach (var (head, score) in scores.Ranked().OrderByDescending(x => Math.Abs(x.Score)).Take(top))
        {
            table.Row($"{head}", $"{score:+0.0000;-0.0000;0.0000}");
        }
        table.Write(stdout);
        return 0;
    }
}
