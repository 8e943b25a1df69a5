namespace Headwise.Cli.Commands;

/// <summary>Every sub-command, in the order <c>headwise --help</c> lists them.</summary>
public static class CommandRegistry
{
    public static IReadOnlyList<ICommand> All { get; } =
    [
        new InfoCommand(),
        new TokenizeCommand(),
        new GenerateCommand(),
        new EvalCommand(),
        new CompareCommand(),
        new SparsityCommand(),
        new StreamingCommand(),
        new ConvertCommand(),
        new HealCommand(),
        new ClassifyCommand(),
        new InfluenceCommand(),
        new ExportCommand(),
        new PullCommand(),
        new BenchCommand(),
        new CircuitsCommand(),
        new StatsCommand(),
        new SinksCommand(),
        new CentralityCommand(),
        new ExplainCommand(),
        new HeadsCommand(),
        new PatternsCommand(),
        new DlaCommand(),
        new TasksCommand(),
        new AblateCommand(),
        new ImportanceCommand(),
        new PatchCommand(),
        new SearchCommand(),
        new ContextCommand(),
        new ReportCommand(),
        new TrainCommand(),
        new TrainTokenizerCommand(),
        new ExperimentCommand(),
        new TrainDemoCommand(),
        new TrainVitCommand(),
        new DemoCommand(),
    ];
}
