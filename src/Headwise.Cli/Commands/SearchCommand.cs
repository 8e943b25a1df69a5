using System.Globalization;
using Headwise.Analysis.Interventions;
using Headwise.Interventions;

namespace Headwise.Cli.Commands;

public sealed class SearchCommand : ICommand
{
    public string Name => "search";
    public string Summary => "greedy search for the head set whose intervention moves the loss, KL or a task metric most; writes it as a recipe";
    public string Usage => """
        headwise search --model M (--task T | --text-file F | --text "..." | --tokens IDS)
                        --intervention soften|scale|ablate [--strength s | --factor a] [--method zero|mean]
                        [--objective loss|kl|task] [--direction up|down] [--budget K] [--out recipe.json] [--json]
        """;

    public string Description => """
        Greedy forward selection [HeadHunter]: starting from no heads, each of K rounds tries adding every remaining head,
        scores the objective with the intervention applied to the set plus that head, and keeps the best. Each round runs
        the input once under the current set; every candidate resumes from that run's residual at its own layer, so it
        costs less than a forward. Prints the objective after each added head and writes the final set as a recipe file,
        which eval and the other commands run under with their recipe option (eval then reports the final loss).
        Progress on stderr; Ctrl-C stops (exit 130, no file written).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text-file", "F", "the text to run on (UTF-8; BOS prepended when the tokenizer adds one)"),
        CliOption.Text("text", "S", "the text, inline"),
        CliOption.Text("tokens", "IDS", "explicit ids, e.g. 1,403,407"),
        CliOption.Text("task", "NAME", "a task's prompts (see `headwise tasks`): induction, ioi, factual, laundry, greater-than"),
        CliOption.Integer("count", "N", "prompts of the task (default 8)"),
        CliOption.Integer("seed", "S", "seed of the task's prompts (default 0)"),
        CliOption.Text("intervention", "K", "soften | scale | ablate: what is done to every head of the set"),
        CliOption.Number("strength", "s", "soften: the pattern becomes (1 − s)·A + s·I, s in [0, 1] (default 1)"),
        CliOption.Number("factor", "a", "scale: hook_z × a (required with scale)"),
        CliOption.Text("method", "M", "ablate: zero | mean (default zero)"),
        CliOption.Text("objective", "O", "loss (mean next-token NLL) | kl (mean KL(clean ‖ intervened) of next-token distributions)\n| task (the task's metric, needs --task) (default loss)"),
        CliOption.Text("direction", "D", "up (maximise the objective) | down (minimise it) (default up)"),
        CliOption.Integer("budget", "K", "heads to add, at least 1 (default 3; capped at the model's number of heads)"),
        CliOption.Text("out", "F", "the recipe to write (default search.json)"),
        CliOption.Flag("json", "print {\"baseline\", \"steps\": [{\"head\", \"objective\"}, ...], \"heads\", \"final\", \"forwards\",\n\"forward_equivalents\", \"recipe\"}"),
    ];

    public string Examples => """
        Example:
          headwise search --model models/demo --text "The cat sat on the mat. The cat sat on the mat." --intervention ablate --objective loss --direction up --budget 3 --out search.json
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        var kind = Kind(args);
        var objective = (args.Get("objective") ?? "loss") switch
        {
            "loss" => MetricKind.Loss,
            "kl" => MetricKind.Kl,
            "task" => MetricKind.Task,
            var o => throw new UsageException($"--objective must be loss, kl or task (got '{o}')"),
        };
        var direction = (args.Get("direction") ?? "up") switch
        {
            "up" => SearchDirection.Up,
            "down" => SearchDirection.Down,
            var d => throw new UsageException($"--direction must be up or down (got '{d}')"),
        };
        int budget = args.GetInt("budget", 3, 1);
        if (objective == MetricKind.Task && !args.Has("task"))
        {
            throw new UsageException("--objective task needs --task NAME (the task says what its metric is)");
        }
        string outFile = args.Get("out") ?? "search.json";

        using var loaded = ModelArgs.Load(args);
        var task = InterventionArgs.Task(args, loaded.Tokenizer);
        var target = InterventionArgs.Target(args, loaded, task, objective);
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
        string what = HeadSearch.Objective(objective);
        Action<SearchStep>? print = json ? null : s => stdout.WriteLine($"+ {s.Head,-6} {what} {F(s.Objective)}");
        if (!json)
        {
            string on = task is null ? "the text" : $"task {task.Name}";
            stdout.WriteLine($"searching {on}: {kind.Kind}, {what} {direction.ToString().ToLowerInvariant()}, budget {budget}");
        }
        var result = HeadSearch.Run(loaded.Model, target, kind, objective, direction, budget, bar, print, CliMain.Cancellation);

        string tmp = outFile + ".partial";
        result.Recipe.Save(tmp);
        File.Move(tmp, outFile, overwrite: true);
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                intervention = result.Intervention,
                objective = what,
                direction = direction.ToString().ToLowerInvariant(),
                target = result.Target,
                baseline = result.Baseline,
                steps = result.Steps.Select(s => new { head = s.Head.ToString(), objective = s.Objective }),
                heads = result.Heads.Select(h => h.ToString()),
                final = result.Final,
                forwards = result.Forwards,
                forward_equivalents = result.ForwardEquivalents,
                recipe = outFile,
            }));
            return 0;
        }
        stdout.WriteLine($"baseline {what} {F(result.Baseline)}; final {what} {F(result.Final)} with {string.Join(",", result.Heads)}");
        stdout.WriteLine($"{result.Forwards} forwards, {result.ForwardEquivalents.ToString("F1", CultureInfo.InvariantCulture)} forward-equivalents");
        stdout.WriteLine($"recipe written to {outFile}");
        return 0;
    }

    // the intervention every head of the set gets (its heads filled in by the search)
    private static Intervention Kind(CliArgs args)
    {
        string kind = args.Require("intervention", "soften, scale or ablate");
        if (kind != "scale" && args.Has("factor"))
        {
            throw new UsageException($"--factor is for --intervention scale (got --intervention {kind})");
        }
        if (kind != "soften" && args.Has("strength"))
        {
            throw new UsageException($"--strength is for --intervention soften (got --intervention {kind})");
        }
        if (kind != "ablate" && args.Has("method"))
        {
            throw new UsageException($"--method is for --intervention ablate (got --intervention {kind})");
        }
        return kind switch
        {
            "soften" => new SoftenHeads([], args.GetDouble("strength", 1, 0, 1)),
            "scale" => new ScaleHeads([], args.Has("factor") ? args.GetDouble("factor", 1, -1e6, 1e6)
                : throw new UsageException("--intervention scale needs --factor a (hook_z is multiplied by a)")),
            "ablate" => new AblateHeads([], (args.Get("method") ?? "zero") switch
            {
                "zero" => false,
                "mean" => true,
                var m => throw new UsageException($"--method must be zero or mean (got '{m}')"),
            }),
            _ => throw new UsageException($"--intervention must be soften, scale or ablate (got '{kind}')"),
        };
    }
}
