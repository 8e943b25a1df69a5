using Spectre.Console;

namespace Headwise.Cli;

/// <summary>A Spectre.Console live progress display on stderr (which the caller has checked is a terminal), shared by
/// <see cref="ProgressBar"/> and <see cref="HubProgressDisplay"/>. Spectre's display runs for the length of a callback, so
/// the callback runs on its own thread until <see cref="End"/>, while the reporting threads add and update tasks and
/// write lines, which Spectre prints above the bars.</summary>
internal sealed class LiveProgress
{
    private readonly TaskCompletionSource _ended = new();
    private readonly Task _display;
    private readonly IAnsiConsole _console;
    private ProgressContext? _context;

    public LiveProgress(bool hideCompleted, params ProgressColumn[] columns)
    {
        // stderr is a terminal (checked by the caller) even when stdout is redirected: say so, or Spectre falls back to plain lines
        _console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error), Interactive = InteractionSupport.Yes });
        var started = new TaskCompletionSource();
        _display = Task.Run(() => _console.Progress()
            .AutoClear(false)
            .HideCompleted(hideCompleted)
            .Columns(columns)
            .Start(ctx =>
            {
                _context = ctx;
                started.SetResult();
                _ended.Task.Wait();
                ctx.Refresh();
            }));
        Task.WaitAny(started.Task, _display);
        if (_display.IsFaulted)
        {
            _display.GetAwaiter().GetResult(); // the display failed to start: say why rather than wait forever
        }
    }

    /// <summary>A new row; <paramref name="description"/> is plain text (escaped here).</summary>
    public ProgressTask AddTask(string description, double maxValue) => _context!.AddTask(Markup.Escape(description), maxValue: maxValue);

    /// <summary>A plain line printed above the live rows.</summary>
    public void WriteLine(string line) => _console.WriteLine(line);

    public void End()
    {
        _ended.TrySetResult();
        _display.Wait();
    }
}
