using System.Diagnostics;
using Headwise.Analysis;

namespace Headwise.Cli;

/// <summary>
/// A progress bar on stderr with the time left: redrawn in place on a terminal, one line at each 10% otherwise
/// (logs, CI). Silent when <c>enabled</c> is false (e.g. with --json on a redirected stderr).
/// </summary>
public sealed class ProgressBar(TextWriter writer, bool enabled = true) : IProgress<AnalysisProgress>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private int _lastDecile = -1;
    private string _stage = "";
    private long _lastDraw;

    public void Report(AnalysisProgress p)
    {
        if (!enabled || p.Total <= 0)
        {
            return;
        }
        if (p.Stage != _stage)
        {
            _stage = p.Stage;
            _clock.Restart();
            _lastDecile = -1;
        }
        double fraction = Math.Clamp((double)p.Done / p.Total, 0, 1);
        double elapsed = _clock.Elapsed.TotalSeconds;
        string eta = p.Done > 0 && fraction < 1 ? $"{Format(elapsed / fraction - elapsed)} left" : fraction >= 1 ? $"done in {Format(elapsed)}" : "";
        if (_interactive)
        {
            long now = _clock.ElapsedMilliseconds;
            if (now - _lastDraw < 100 && fraction < 1)
            {
                return;
            }
            _lastDraw = now;
            int width = 30, filled = (int)(fraction * width);
            writer.Write($"\r{p.Stage} [{new string('#', filled)}{new string('.', width - filled)}] {p.Done}/{p.Total} {eta}   ");
            if (fraction >= 1)
            {
                writer.WriteLine();
            }
        }
        else
        {
            int decile = (int)(fraction * 10);
            if (decile != _lastDecile)
            {
                _lastDecile = decile;
                writer.WriteLine($"{p.Stage}: {p.Done}/{p.Total} {eta}");
            }
        }
    }

    private static string Format(double seconds) => seconds < 60 ? $"{seconds:F0}s" : seconds < 3600 ? $"{seconds / 60:F0}m{seconds % 60:00}s" : $"{seconds / 3600:F1}h";
}
