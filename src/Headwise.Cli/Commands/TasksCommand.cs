using Headwise.Analysis.Tasks;

namespace Headwise.Cli.Commands;

public sealed class TasksCommand : ICommand
{
    public string Name => "tasks";
    public string Summary => "list the prompt sets (tasks) that come with the tool, or print one task's prompts";
    public IReadOnlyList<CliArgument> Arguments { get; } = [new("NAME", "a task: its prompts (without NAME: the list of tasks)")];
    public string Usage => """
        headwise tasks [NAME] [--count N] [--seed S] [--model M [--tokenizer F]] [--json]
        """;

    public string Description => """
        Without NAME: the tasks, each with its metric. With NAME: its prompts (clean, corrupted, answers, wrong answers),
        generated from the seed (same seed, same prompts). With --model: also token counts, and whether every answer is a
        single token for that tokenizer (an answer of several tokens is scored by its first).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Integer("count", "N", "prompts to generate (default 8)"),
        CliOption.Integer("seed", "S", "seed (default 0)"),
        CliOption.Text("model", "M", "tokenize the prompts with this model's tokenizer (see `headwise info --help`)"),
        CliOption.Text("tokenizer", "F", "tokenizer file overriding the model's"),
        CliOption.Integer("threads", "N", "worker threads for the kernels (default: all cores)"),
        CliOption.Text("prepack", "P", "auto|on|off: weights packed once for the GEMM (see `headwise info --help`)"),
        CliOption.Flag("json", "print the task as JSON"),
    ];

    public string Examples => """
        Example:
          headwise tasks ioi --count 4 --json
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        int count = args.GetInt("count", 8, 1, 10_000);
        int seed = args.GetInt("seed", 0, 0);
        bool withModel = args.Has("model");
        using var loaded = withModel ? ModelArgs.Load(args) : null;
        if (args.Positional.Count == 0)
        {
            var all = TaskLibrary.Names.Select(n => TaskLibrary.Create(n, 1, seed)).ToArray();
            if (json)
            {
                stdout.WriteLine(Json.Serialize(all.Select(t => new { name = t.Name, description = t.Description, metric = t.MetricDefinition }).ToArray()));
                return 0;
            }
            var table = new CliTable("task", "description");
            foreach (var t in all)
            {
                table.Row(t.Name, t.Description).Row("", $"metric: {t.MetricDefinition}");
            }
            table.Write(stdout);
            return 0;
        }
        var task = TaskLibrary.Create(args.Positional[0], count, seed, loaded?.Tokenizer);
        var tokenized = loaded is null ? null : TaskLibrary.Tokenize(task, loaded.RequireTokenizer());
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                name = task.Name,
                description = task.Description,
                metric = task.MetricDefinition,
                seed = task.Seed,
                prompts = task.Prompts.Select((p, i) => new
                {
                    clean = p.Clean,
                    corrupted = p.Corrupted,
                    answers = p.Answers,
                    wrong = p.Wrong,
                    clean_ids = tokenized?.Prompts[i].Clean,
                    corrupted_ids = tokenized?.Prompts[i].Corrupted,
                    answer_ids = tokenized?.Prompts[i].AnswerIds,
                    wrong_ids = tokenized?.Prompts[i].WrongIds,
                }).ToArray(),
                notes = tokenized?.Notes,
            }));
            return 0;
        }
        stdout.WriteLine($"{task.Name}: {task.Description} (seed {task.Seed})");
        stdout.WriteLine($"metric: {task.MetricDefinition}");
        for (int i = 0; i < task.Prompts.Count; i++)
        {
            var p = task.Prompts[i];
            stdout.WriteLine();
            stdout.WriteLine($"[{i}] {p.Clean}" + (tokenized is null ? "" : $"   ({tokenized.Prompts[i].Clean.Length} tokens)"));
            if (p.Corrupted is not null)
            {
                stdout.WriteLine($"    corrupted: {p.Corrupted}");
            }
            if (p.Answers.Length > 0)
            {
                stdout.WriteLine($"    answer: {Short(p.Answers)}   wrong: {Short(p.Wrong)}");
            }
        }
        foreach (var note in tokenized?.Notes ?? [])
        {
            stdout.WriteLine($"note: {note}");
        }
        return 0;
    }

    private static string Short(string[] xs) => xs.Length <= 4 ? string.Join(",", xs.Select(x => $"\"{x}\"")) : $"\"{xs[0]}\"…\"{xs[^1]}\" ({xs.Length})";
}
