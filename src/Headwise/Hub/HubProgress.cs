using System.Diagnostics;
using System.Globalization;

namespace Headwise.Hub;

/// <summary>What a <see cref="HubProgress"/> event says happened.</summary>
public enum HubProgressKind
{
    /// <summary>A file's download starts; <see cref="HubProgress.Done"/> is what an earlier, interrupted download left in
    /// the cache (resumed with a Range request), usually 0.</summary>
    Started,

    /// <summary>Bytes arrived: <see cref="HubProgress.Done"/> grew. Reported at most every 100 ms per file.</summary>
    Received,

    /// <summary>The connection broke, or the server ignored the Range request: the download goes on from
    /// <see cref="HubProgress.Done"/>, which is 0 when the server made it start over.</summary>
    Resumed,

    /// <summary>The file is downloaded, its size and hash checked, and it is in the cache: Done = Total = its size.</summary>
    Completed,

    /// <summary>No download was needed: the file was already in the cache (Done = Total = its size).</summary>
    Cached,

    /// <summary>The file's download failed; <see cref="HubProgress.Message"/> says why in a word (the pull then throws the
    /// <see cref="HubException"/> with the whole story).</summary>
    Failed,

    /// <summary>A request failed (network error, timeout, HTTP 5xx or 429) and is sent again after a pause;
    /// <see cref="HubProgress.Message"/> is the sentence to show (what, why, how long, which try), and
    /// <see cref="HubProgress.File"/> what was asked for.</summary>
    Retrying,
}

/// <summary>
/// One event of a Hub download, reported through <see cref="IProgress{T}"/> by <see cref="HubClient"/> and
/// <see cref="ModelResolver"/>: the library never draws or writes to the console; the caller decides how to show it
/// (the CLI: a Spectre.Console live display on a terminal, one line per finished file otherwise). For each downloaded
/// file the events are <see cref="HubProgressKind.Started"/>, <see cref="HubProgressKind.Received"/>… (Done never
/// decreases except at a <see cref="HubProgressKind.Resumed"/> that restarts from 0), then <see cref="HubProgressKind.Completed"/>
/// with Done = the file's size, or <see cref="HubProgressKind.Failed"/>; a file already present gives one
/// <see cref="HubProgressKind.Cached"/>. Files download in parallel (<see cref="HubOptions.MaxParallel"/>), so
/// <see cref="IProgress{T}.Report"/> is called from several threads at once and must be thread-safe; events of one file
/// arrive in order.
/// </summary>
/// <param name="Kind">What happened.</param>
/// <param name="File">The file's name in the repository (for <see cref="HubProgressKind.Retrying"/>: what was asked for).</param>
/// <param name="Done">Bytes of the file on disk so far.</param>
/// <param name="Total">The file's size as the Hub announced it; null when the server did not say.</param>
/// <param name="Elapsed">Time since this file's download started (zero for a cached file).</param>
/// <param name="BytesPerSecond">The mean rate of this download so far (bytes received in this run over <paramref name="Elapsed"/>).</param>
/// <param name="Resumes">How many times the download broke off and was resumed.</param>
/// <param name="Message">For <see cref="HubProgressKind.Failed"/> and <see cref="HubProgressKind.Retrying"/>: what to tell the user.</param>
public sealed record HubProgress(
    HubProgressKind Kind, string File, long Done, long? Total, TimeSpan Elapsed, double BytesPerSecond, int Resumes = 0, string? Message = null)
{
    /// <summary>Bytes in decimal units, as the Hub's web pages show sizes: <c>512 B</c>, <c>1.5 kB</c>, <c>2.3 GB</c>.</summary>
    public static string FormatBytes(double bytes)
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
}

/// <summary>One file's download as <see cref="HubClient"/> sees it: counts the bytes and reports <see cref="HubProgress"/>
/// events (chunks at most every 100 ms, so a fast download does not flood the caller). Used by one download loop at a time.</summary>
internal sealed class FileTransfer
{
    private static readonly TimeSpan s_interval = TimeSpan.FromMilliseconds(100);

    private readonly IProgress<HubProgress>? _progress;
    private readonly string _name;
    private readonly long? _total;
    private readonly long _startedAt;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _done;
    private int _resumes;
    private TimeSpan _lastReport;

    public FileTransfer(IProgress<HubProgress>? progress, string name, long? total, long already)
    {
        _progress = progress;
        _name = name;
        _total = total;
        _done = already;
        _startedAt = already;
        Report(HubProgressKind.Started);
    }

    /// <summary>A file that needed no download.</summary>
    public static void Cached(IProgress<HubProgress>? progress, string name, long size) =>
        progress?.Report(new HubProgress(HubProgressKind.Cached, name, size, size, TimeSpan.Zero, 0));

    public void Add(int bytes)
    {
        _done += bytes;
        if (_progress is not null && _clock.Elapsed - _lastReport >= s_interval)
        {
            Report(HubProgressKind.Received);
        }
    }

    /// <summary>The download restarts at <paramref name="position"/> (a Range request after a broken connection, or 0).</summary>
    public void Resumed(long position)
    {
        _done = position;
        _resumes++;
        Report(HubProgressKind.Resumed);
    }

    public void Complete() => Report(HubProgressKind.Completed, total: _done);

    public void Fail(string why) => Report(HubProgressKind.Failed, message: why);

    private void Report(HubProgressKind kind, long? total = null, string? message = null)
    {
        if (_progress is null)
        {
            return;
        }
        _lastReport = _clock.Elapsed;
        double seconds = Math.Max(_lastReport.TotalSeconds, 1e-3);
        double rate = Math.Max(0, _done - _startedAt) / seconds;
        _progress.Report(new HubProgress(kind, _name, _done, total ?? _total, _lastReport, rate, _resumes, message));
    }
}
