using System.Globalization;
using Headwise.Hub;
using Spectre.Console;

namespace Headwise.Cli;

/// <summary>
/// Shows what the Hub client reports (<see cref="HubProgress"/>): when the writer is the console's stderr and that is a
/// terminal, a Spectre.Console live display with one row per file being downloaded (bar, percentage, bytes done/total,
/// rate, time left), with each finished or cached file and each retry printed above it as a line; otherwise (logs, CI,
/// tests) just those lines, one per finished file:
/// <code>
///   model.safetensors  538.1 MB  in 0:41 (13.1 MB/s)
///   config.json  612 B  (already in the cache)
/// hub: the file list of ORG/NAME: HTTP 503; retrying in 1 s (try 2 of 6; HF_HUB_OFFLINE=1 skips the network)
/// </code>
/// Nothing is drawn until the first event, so a model found in the cache shows nothing. Dispose to end the display.
/// </summary>
public sealed class HubProgressDisplay(TextWriter writer) : IProgress<HubProgress>, IDisposable
{
    private readonly bool _interactive = ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected;
    private readonly object _gate = new();
    private readonly Dictionary<string, ProgressTask> _rows = new(StringComparer.Ordinal);
    private LiveProgress? _live;

    public void Report(HubProgress p)
    {
        lock (_gate)
        {
            if (!_interactive)
            {
                if (Line(p) is { } line)
                {
                    writer.WriteLine(line);
                    writer.Flush();
                }
                return;
            }
            _live ??= new LiveProgress(hideCompleted: true,
                new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(),
                new TransferSpeedColumn(), new RemainingTimeColumn());
            if (p.Kind is HubProgressKind.Started)
            {
                var row = _live.AddTask(p.File, p.Total ?? 1);
                row.IsIndeterminate = p.Total is null;
                _rows[p.File] = row;
            }
            if (_rows.TryGetValue(p.File, out var task))
            {
                task.Value = p.Total is { } total ? Math.Min(p.Done, total) : 0;
                if (p.Kind is HubProgressKind.Completed or HubProgressKind.Failed)
                {
                    task.Value = task.MaxValue;
                    task.StopTask();
                    _rows.Remove(p.File);
                }
            }
            if (Line(p) is { } above)
            {
                _live.WriteLine(above);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _live?.End();
            _live = null;
        }
    }

    /// <summary>The line an event leaves in the log: a finished, cached or failed file, or a retry; null for the others.</summary>
    internal static string? Line(HubProgress p) => p.Kind switch
    {
        HubProgressKind.Completed => string.Create(CultureInfo.InvariantCulture,
            $"  {p.File}  {HubProgress.FormatBytes(p.Done)}  in {FormatTime(p.Elapsed.TotalSeconds)} ({HubProgress.FormatBytes(p.BytesPerSecond)}/s{(p.Resumes > 0 ? $", resumed {p.Resumes}x" : "")})"),
        HubProgressKind.Cached => $"  {p.File}  {HubProgress.FormatBytes(p.Done)}  (already in the cache)",
        HubProgressKind.Failed => $"  {p.File}  failed: {p.Message}",
        HubProgressKind.Retrying => $"hub: {p.Message}",
        _ => null,
    };

    private static string FormatTime(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}")
            : string.Create(CultureInfo.InvariantCulture, $"{t.Minutes}:{t.Seconds:00}");
    }
}
