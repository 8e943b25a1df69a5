using System.Diagnostics;
using System.Globalization;

namespace Headwise.Hub;

/// <summary>Per-file progress: on a terminal, live bars (bytes, rate, time left) redrawn in place; elsewhere (logs, tests)
/// one line per file when it completes.</summary>
internal sealed class DownloadProgress : IDisposable
{
    private readonly TextWriter? _writer;
    private readonly bool _interactive;
    private readonly object _gate = new();
    private readonly List<FileBar> _active = [];
    private readonly List<string> _finished = [];
    private readonly Timer? _timer;
    private int _drawnLines;

    public DownloadProgress(TextWriter? writer, bool interactive)
    {
        _writer = writer;
        _interactive = interactive && writer is not null;
        if (_interactive)
        {
            _timer = new Timer(_ => Render(), null, 250, 250);
        }
    }

    /// <summary>Whether <paramref name="writer"/> is the console's stdout or stderr and that stream is a terminal.</summary>
    public static bool IsTerminal(TextWriter? writer) =>
        writer is not null
        && ((ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected)
            || (ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected));

    public FileBar Start(string name, long total, long already)
    {
        var bar = new FileBar(this, name, total, already);
        lock (_gate)
        {
            _active.Add(bar);
        }
        return bar;
    }

    /// <summary>A line for a file that needed no download.</summary>
    public void Cached(string name, long size)
    {
        Finish(null, $"  {name}  {FormatBytes(size)}  (already in the cache)");
    }

    internal void Finish(FileBar? bar, string line)
    {
        if (_writer is null)
        {
            return;
        }
        lock (_gate)
        {
            if (bar is not null)
            {
                _active.Remove(bar);
            }
            if (_interactive)
            {
                _finished.Add(line);
            }
            else
            {
                _writer.WriteLine(line);
                _writer.Flush();
            }
        }
        if (_interactive)
        {
            Render();
        }
    }

    private void Render()
    {
        if (!_interactive || _writer is null)
        {
            return;
        }
        lock (_gate)
        {
            var sb = new System.Text.StringBuilder();
            if (_drawnLines > 0)
            {
                sb.Append(CultureInfo.InvariantCulture, $"\x1b[{_drawnLines}A");
            }
            foreach (string line in _finished)
            {
                sb.Append("\x1b[2K").Append(line).Append('\n');
            }
            _finished.Clear();
            foreach (var bar in _active)
            {
                sb.Append("\x1b[2K").Append(bar.Describe(live: true)).Append('\n');
            }
            _drawnLines = _active.Count;
            _writer.Write(sb.ToString());
            _writer.Flush();
        }
    }

    public void Dispose()
    {
        _timer?.Dispose();
        Render();
    }

    internal static string FormatBytes(double bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB"];
        int u = 0;
        while (bytes >= 1000 && u < units.Length - 1)
        {
            bytes /= 1000;
            u++;
        }
        return u == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes:0} B")
            : string.Create(CultureInfo.InvariantCulture, $"{bytes:0.0} {units[u]}");
    }

    internal static string FormatTime(double seconds)
    {
        if (double.IsNaN(seconds) || double.IsInfinity(seconds) || seconds < 0)
        {
            return "--:--";
        }
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}")
            : string.Create(CultureInfo.InvariantCulture, $"{t.Minutes}:{t.Seconds:00}");
    }

    /// <summary>One file's progress.</summary>
    internal sealed class FileBar(DownloadProgress owner, string name, long total, long already)
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _done = already;
        private readonly long _startedAt = already;
        private int _resumes;

        public void Add(long bytes) => Interlocked.Add(ref _done, bytes);

        /// <summary>The download restarts at <paramref name="position"/> (a Range request after a broken connection, or 0).</summary>
        public void Resumed(long position)
        {
            Interlocked.Exchange(ref _done, position);
            Interlocked.Increment(ref _resumes);
        }

        public void Complete() => owner.Finish(this, Describe(live: false));

        public void Fail(string why) => owner.Finish(this, $"  {name}  failed: {why}");

        public string Describe(bool live)
        {
            long done = Interlocked.Read(ref _done);
            double secs = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
            double rate = (done - _startedAt) / secs;
            string resumed = _resumes > 0 ? string.Create(CultureInfo.InvariantCulture, $", resumed {_resumes}x") : "";
            if (!live)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"  {name}  {FormatBytes(done)}  in {FormatTime(secs)} ({FormatBytes(rate)}/s{resumed})");
            }
            double frac = total > 0 ? Math.Clamp((double)done / total, 0, 1) : 0;
            const int width = 24;
            int filled = (int)(frac * width);
            string bar = new string('#', filled) + new string('.', width - filled);
            double left = rate > 0 && total > 0 ? (total - done) / rate : double.NaN;
            return string.Create(CultureInfo.InvariantCulture,
                $"  {name}  [{bar}] {frac * 100,3:0}%  {FormatBytes(done)}/{FormatBytes(total)}  {FormatBytes(rate)}/s  ETA {FormatTime(left)}");
        }
    }
}
