using System.Diagnostics;
using Headwise.Analysis;
using Spectre.Console;

namespace Headwise.Cli;

/// <summary>
/// Shows the <see cref="AnalysisProgress"/> the library reports: a Spectre.Console live progress display (bar, percentage,
/// time left) when the writer is the console's stderr and that is a terminal; otherwise (logs, CI, tests) one plain line at
/// each 10% of a stage. Silent when <c>enabled</c> is false (e.g. with --json on a redirected stderr). The library only
/// reports through <see cref="IProgress{T}"/>; all drawing is here.
/// </summary>
public sealed class ProgressBar(TextWriter writer, bool enabled = true) : IProgress<AnalysisProgress>
{
    private static readonly List<ProgressBar> s_live = [];

    private readonly bool _interactive = ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly object _gate = new();
    private int _lastDecile = -1;
    private string _stage = "";
    private LiveStage? _live;

    public void Report(AnalysisProgress p)
    {
        if (!enabled || p.Total <= 0)
        {
            return;
        }
        lock (_gate)
        {
            bool newStage = p.Stage != _stage;
            if (newStage)
            {
                _stage = p.Stage;
                _clock.Restart();
                _lastDecile = -1;
            }
            if (_interactive)
            {
                ReportLive(p, newStage);
            }
            else
            {
                ReportPlain(p);
            }
        }
    }

    /// <summary>The same display for a library call that reports bare counts (<c>IProgress&lt;(int Done, int Total)&gt;</c>:
    /// tokens scored, layers converted), under the name <paramref name="stage"/>. Reports arrive on the calling thread, in order.</summary>
    public IProgress<(int Done, int Total)> Stage(string stage) => new CountProgress(this, stage);

    /// <summary>Ends every live display still drawing (a command that failed or was interrupted mid-stage), so that
    /// what follows starts on a fresh line.</summary>
    public static void FinishAll()
    {
        ProgressBar[] bars;
        lock (s_live)
        {
            bars = [.. s_live];
        }
        foreach (var bar in bars)
        {
            lock (bar._gate)
            {
                bar.EndLive();
            }
        }
    }

    private void ReportPlain(AnalysisProgress p)
    {
        double fraction = Math.Clamp((double)p.Done / p.Total, 0, 1);
        int decile = (int)(fraction * 10);
        if (decile != _lastDecile)
        {
            _lastDecile = decile;
            double elapsed = _clock.Elapsed.TotalSeconds;
            string eta = p.Done > 0 && fraction < 1 ? $"{Format(elapsed / fraction - elapsed)} left" : fraction >= 1 ? $"done in {Format(elapsed)}" : "";
            writer.WriteLine($"{p.Stage}: {p.Done}/{p.Total} {eta}");
        }
    }

    private void ReportLive(AnalysisProgress p, bool newStage)
    {
        if (newStage || _live is null)
        {
            EndLive();
            _live = new LiveStage(p.Stage, p.Total);
            lock (s_live)
            {
                s_live.Add(this);
            }
        }
        _live.Update(p.Done, p.Total);
        if (p.Done >= p.Total)
        {
            EndLive();
        }
    }

    private void EndLive()
    {
        if (_live is null)
        {
            return;
        }
        _live.End();
        _live = null;
        lock (s_live)
        {
            s_live.Remove(this);
        }
    }

    private static string Format(double seconds) => seconds < 60 ? $"{seconds:F0}s" : seconds < 3600 ? $"{seconds / 60:F0}m{seconds % 60:00}s" : $"{seconds / 3600:F1}h";

    private sealed class CountProgress(ProgressBar bar, string stage) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => bar.Report(new AnalysisProgress(stage, value.Done, value.Total));
    }

    /// <summary>One stage drawn by Spectre.Console on stderr.</summary>
    private sealed class LiveStage
    {
        private readonly LiveProgress _display = new(hideCompleted: false,
            new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn());
        private readonly ProgressTask _task;

        public LiveStage(string stage, long total) => _task = _display.AddTask(stage, total);

        public void Update(long done, long total)
        {
            _task.MaxValue = total;
            _task.Value = Math.Min(done, total);
        }

        public void End() => _display.End();
    }
}
