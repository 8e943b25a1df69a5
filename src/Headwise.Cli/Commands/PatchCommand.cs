using Headwise.Analysis.Interventions;
using Headwise.Analysis.Tasks;

namespace Headwise.Cli.Commands;

public sealed class PatchCommand : ICommand
{
    public string Name => "patch";
    public string Summary => "activation patching: how much of the clean behaviour each head's z, q, k, v or pattern restores";
    public string Usage => """
        headwise patch --model M --clean "..." --corrupted "..." --answer X --wrong Y [--what z|q|k|v|pattern]
                       [--per-position] [--intervene FILE] [--json]
        headwise patch --model M --task NAME [--count N] [--seed S] [--what ...] [--per-position] [--intervene FILE] [--json]
        """;

    public string Description => """
        Runs the corrupted prompt with one head's activation copied from the clean run, for every head, and reports
        (metric(patched) − metric(corrupted)) / (metric(clean) − metric(corrupted)): 0 = corrupted behaviour, 1 = clean.
        The metric is logit(answer) − logit(wrong) at the last position (answers: their first token after the prompt),
        or the task's metric averaged over its prompts. Clean and corrupted prompts must have the same number of tokens.
        For k and v of a grouped-query model the units are the key/value heads.
        The 0–1 score is only shown when the clean run beats the corrupted one by a margin (1 logit for logit differences,
        0.1 for probability differences, 0.25 nats for losses) and beats chance (a logit difference above 0, a loss below
        ln V); otherwise a WARNING says why and the scores are the raw metric(patched) − metric(corrupted).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("clean", "S", "the clean prompt"),
        CliOption.Text("corrupted", "S", "the corrupted prompt (same token count)"),
        CliOption.Text("answer", "X", "the clean answer, e.g. \" Mary\""),
        CliOption.Text("wrong", "Y", "the competing answer, e.g. \" John\""),
        CliOption.Text("task", "NAME", "instead: a task's clean/corrupted prompt pairs (ioi, factual, laundry, greater-than)"),
        CliOption.Integer("count", "N", "prompts of the task (default 8)"),
        CliOption.Integer("seed", "S", "seed of the task (default 0)"),
        CliOption.Text("what", "W", "z | q | k | v | pattern (default z)"),
        CliOption.Flag("per-position", "also patch one position at a time: a [layer][head][position] table"),
        CliOption.Integer("top", "N", "rows of the table (default 10)"),
        .. CliOption.Noted(RecipeArgs.Options, "(clean, corrupted and patched runs all under the recipe; the patch applied after its hooks)"),
        CliOption.Flag("json", "print {\"site\", \"clean\", \"corrupted\", \"gap\", \"normalized\", \"warning\", \"values\": [[...]],\n\"per_position\": [[[...]]]} (and \"recipe\": name under --intervene); normalized false means\nvalues are raw differences and warning says why"),
    ];

    public string Examples => """
        Example:
          headwise patch --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --clean "Tom had a big red ball. Tom liked the ball. He played with the" --corrupted "Tom had a big red dog. Tom liked the ball. He played with the" --answer " ball" --wrong " dog"
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        bool perPosition = args.Flag("per-position");
        var site = (args.Get("what") ?? "z") switch
        {
            "z" => PatchSite.Z,
            "q" => PatchSite.Q,
            "k" => PatchSite.K,
            "v" => PatchSite.V,
            "pattern" => PatchSite.Pattern,
            var w => throw new UsageException($"--what must be z, q, k, v or pattern (got '{w}')"),
        };
        int top = args.GetInt("top", 10, 1);
        bool hasTask = args.Has("task");
        string? clean = args.Get("clean"), corrupted = args.Get("corrupted"), answer = args.Get("answer"), wrong = args.Get("wrong");
        if (!hasTask && (clean is null || corrupted is null || answer is null || wrong is null))
        {
            throw new UsageException("give --clean, --corrupted, --answer and --wrong, or --task NAME");
        }
        if (hasTask && (clean ?? corrupted ?? answer ?? wrong) is not null)
        {
            throw new UsageException("give either --task or --clean/--corrupted/--answer/--wrong, not both");
        }
        using var loaded = ModelArgs.Load(args);
        var task = InterventionArgs.Task(args, loaded.Tokenizer);
        var tokenizer = loaded.RequireTokenizer();
        if (task is null)
        {
            int nc = tokenizer.Encode(clean!).Length, nx = tokenizer.Encode(corrupted!).Length;
            if (nc != nx)
            {
                throw new InvalidInputException($"--clean has {nc} tokens and --corrupted {nx}: patching needs prompts of equal length");
            }
            task = new PromptTask("prompt", "given on the command line", TaskMetric.LogitDifference, "logit(answer) − logit(wrong) at the last position", 0,
                [new TaskPrompt(clean!, corrupted!, [answer!], [wrong!])]);
        }
        var tokenized = TaskLibrary.Tokenize(task, tokenizer);
        int V = loaded.Config.VocabSize;
        var pairs = tokenized.Prompts.Select((p, i) => (p, i)).Where(x => x.p.Corrupted is not null)
            .Select(x => new PatchPair(x.p.Clean, x.p.Corrupted!, logits => tokenized.Score(x.i, logits, V), PatchMetricScale.For(tokenized.Metric, V))).ToArray();
        if (pairs.Length == 0)
        {
            throw new InvalidInputException($"task '{task.Name}' has no corrupted prompts of the clean prompts' length to patch from");
        }
        foreach (var note in tokenized.Notes)
        {
            stderr.WriteLine($"note: {note}");
        }
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        using var applied = RecipeArgs.Apply(args, loaded);
        RecipeArgs.RequireSourcesCover(applied, pairs.Select(p => p.Clean.Length));
        var r = ActivationPatching.Run(applied?.Model ?? loaded.Model, pairs, site, perPosition, bar, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        if (json)
        {
            if (r.Warning is { } jsonWarning)
            {
                stderr.WriteLine($"warning: {jsonWarning}");
            }
            stdout.WriteLine(RecipeArgs.Json(new
            {
                site = site.ToString().ToLowerInvariant(),
                definition = r.Scores.Definition,
                clean = r.CleanMetric,
                corrupted = r.CorruptedMetric,
                gap = r.Gap,
                normalized = r.Normalized,
                warning = r.Warning,
                values = r.Scores.Values,
                per_position = r.PerPosition,
                tokens = perPosition ? pairs[0].Clean.Select(id => tokenizer.TokenText(id)).ToArray() : null,
            }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"metric: clean {r.CleanMetric:F4}, corrupted {r.CorruptedMetric:F4} ({pairs.Length} pair{(pairs.Length == 1 ? "" : "s")})");
        stdout.WriteLine(r.Scores.Definition);
        if (r.Warning is { } warning)
        {
            stdout.WriteLine($"WARNING: {warning}");
        }
        stdout.WriteLine();
        var table = new CliTable("head", r.Normalized ? ">recovered" : ">patched − corrupted (raw)");
        foreach (var (head, score) in r.Scores.Top(top))
        {
            table.Row($"{head}", $"{score:F4}");
        }
        table.Write(stdout);
        if (r.PerPosition is { } pp)
        {
            var toks = pairs[0].Clean.Select(id => tokenizer.TokenText(id)).ToArray();
            stdout.WriteLine();
            stdout.WriteLine("per position (top heads): " + string.Join(" | ", toks.Select((t, i) => $"{i}:{t.Trim()}")));
            var positions = new CliTable(["head", .. toks.Select((_, i) => $">{i}")]);
            foreach (var (head, _) in r.Scores.Top(Math.Min(top, 5)))
            {
                positions.Row([$"{head}", .. pp[head.Layer][head.Head].Select(v => $"{v:F2}")]);
            }
            positions.Write(stdout);
        }
        return 0;
    }
}
