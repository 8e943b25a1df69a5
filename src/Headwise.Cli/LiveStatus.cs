using Spectre.Console;

namespace Headwise.Cli;

/// <summary>
/// One live row on stderr for a command that composes its own status text from the library's reports (training: step,
/// loss, tokens/s; influence: documents/s): the text, a bar and a percentage drawn by Spectre.Console. Only when the
/// writer is the console's stderr and that is a terminal (<see cref="Start"/> returns null otherwise, and the command
/// writes its plain log lines instead). Dispose to end the display.
/// </summary>
internal sealed class LiveStatus : IDisposable
{
    private readonly LiveProgress _display = new(hideCompleted: false, new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn());
    private ProgressTask? _row;

    private LiveStatus()
    {
    }

    /// <summary>A live row when <paramref name="writer"/> is a terminal's stderr; null for a pipe, a file or a test's writer.</summary>
    public static LiveStatus? Start(TextWriter writer) =>
        ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected ? new LiveStatus() : null;

    /// <summary>Shows <paramref name="text"/> (plain, escaped here) with <paramref name="done"/> of <paramref name="total"/> on the bar.</summary>
    public void Update(string text, long done, long total)
    {
        total = Math.Max(1, total);
        _row ??= _display.AddTask(text, total);
        _row.Description = Markup.Escape(text);
        _row.MaxValue = total;
        _row.Value = Math.Clamp(done, 0, total);
    }

    public void Dispose() => _display.End();
}
