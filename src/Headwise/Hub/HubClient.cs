using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;

namespace Headwise.Hub;

/// <summary>One file of a pull: its name in the repository, size, SHA-256 and whether this pull downloaded it.</summary>
public sealed record PulledFile(string Name, long Size, string Sha256, bool Downloaded);

/// <summary>The outcome of a pull: the snapshot folder the model loader reads.</summary>
public sealed record PullResult(string Repo, string Revision, string Commit, string Path, IReadOnlyList<PulledFile> Files);

/// <summary>Talks to the Hugging Face Hub (or a mirror): lists a repository, downloads its model files into the
/// <see cref="HubCache"/> with retries, backoff, Range resume and hash checks. The token goes only to the Hub's own host.
/// Progress (bytes per file, retries) is reported through <see cref="IProgress{T}"/> of <see cref="HubProgress"/> only;
/// nothing is written to the console.</summary>
public sealed class HubClient : IDisposable
{
    /// <summary>Tokenizer and generation files fetched when the repository has them.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
        "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json",
    ];

    private const string WeightsIndex = "model.safetensors.index.json";
    private const int MaxRedirects = 10;

    private readonly HubOptions _options;
    private readonly HubCache _cache;
    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly IProgress<HubProgress>? _progress;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _blobLocks = new(StringComparer.Ordinal);

    /// <param name="options">Endpoint, token, offline mode, revision, cache folder, timeouts and retries.</param>
    /// <param name="progress">Receives each file's start, bytes, completion or cache hit, and each retried request
    /// (<see cref="HubProgress"/>; called from several threads at once); null for none.</param>
    public HubClient(HubOptions options, IProgress<HubProgress>? progress = null)
    {
        _options = options;
        _cache = new HubCache(options.CacheDir);
        if (!Uri.TryCreate(options.Endpoint.TrimEnd('/') + "/", UriKind.Absolute, out var endpoint)
            || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new HubException(HubErrorKind.Protocol, $"HF_ENDPOINT '{HubCache.Printable(options.Endpoint)}' is not an http(s) URL");
        }
        _endpoint = endpoint;
        _progress = progress;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // followed by hand, so the token never follows a redirect to another host
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.RequestTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("headwise/0.1");
    }

    public HubCache Cache => _cache;

    public void Dispose() => _http.Dispose();

    /// <summary>Synchronous <see cref="PullAsync"/>.</summary>
    public PullResult Pull(string repoId, CancellationToken ct = default) => PullAsync(repoId, ct).GetAwaiter().GetResult();

    /// <summary>Lists the repository at <see cref="HubOptions.Revision"/>, then downloads config.json, the tokenizer files that
    /// exist and the safetensors weights (single or sharded) into the cache. Files already in the snapshot are not fetched again.</summary>
    public async Task<PullResult> PullAsync(string repoId, CancellationToken ct = default)
    {
        if (!HubCache.LooksLikeRepoId(repoId))
        {
            throw new HubException(HubErrorKind.NotFound, $"'{HubCache.Printable(repoId)}' is not a Hub model name (expected ORG/NAME)");
        }
        if (_options.Offline)
        {
            throw new HubException(HubErrorKind.Offline, $"HF_HUB_OFFLINE is set, so {repoId} cannot be downloaded; unset it to pull");
        }
        string revision = HubCache.ValidateFileName(_options.Revision, "revision");
        var (commit, siblings) = await ListAsync(repoId, revision, ct).ConfigureAwait(false);

        var present = new HashSet<string>(siblings, StringComparer.Ordinal);
        if (!present.Contains("config.json"))
        {
            throw new HubException(HubErrorKind.NotFound, $"{repoId} at {revision} has no config.json; it is not a transformers model");
        }
        var first = new List<string> { "config.json" };
        first.AddRange(TokenizerFiles.Where(present.Contains));
        bool sharded = present.Contains(WeightsIndex);
        if (sharded)
        {
            first.Add(WeightsIndex);
        }
        else if (!siblings.Any(IsTopLevelSafetensors))
        {
            throw new HubException(HubErrorKind.NoWeights,
                $"{repoId} at {revision} has no safetensors weights (Headwise never loads pickle .bin/.pt files); look for a safetensors version of the model");
        }

        var files = new List<PulledFile>();
        files.AddRange(await FetchAllAsync(repoId, commit, first, ct).ConfigureAwait(false));

        List<string> weights;
        if (sharded)
        {
            string indexPath = _cache.SnapshotFile(repoId, commit, WeightsIndex);
            weights = [.. HubCache.ShardsOfIndex(await File.ReadAllTextAsync(indexPath, ct).ConfigureAwait(false))];
            foreach (string shard in weights.Where(s => !present.Contains(s)))
            {
                throw new HubException(HubErrorKind.NotFound, $"{repoId}: {WeightsIndex} names shard {shard}, which the repository does not have");
            }
        }
        else
        {
            weights = [.. siblings.Where(IsTopLevelSafetensors).Order(StringComparer.Ordinal)];
        }
        files.AddRange(await FetchAllAsync(repoId, commit, weights, ct).ConfigureAwait(false));

        _cache.WriteRef(repoId, revision, commit);
        return new PullResult(repoId, revision, commit, _cache.SnapshotDir(repoId, commit), files);
    }

    private static bool IsTopLevelSafetensors(string name) =>
        !name.Contains('/') && name.EndsWith(".safetensors", StringComparison.Ordinal);

    /// <summary><c>GET /api/models/REPO/revision/REV</c>: the commit hash and every file name (each checked to stay inside the cache).</summary>
    public async Task<(string Commit, IReadOnlyList<string> Files)> ListAsync(string repoId, string revision, CancellationToken ct = default)
    {
        var url = new Uri(_endpoint, $"api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}");
        using var response = await SendWithRetryAsync(HttpMethod.Get, url, null, RedirectPolicy.All, $"the file list of {repoId}", ct).ConfigureAwait(false);
        ThrowForStatus(response, repoId, revision, null);
        string json;
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            cts.CancelAfter(_options.ReadTimeout);
            try
            {
                json = await response.Content.ReadAsStringAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new HubException(HubErrorKind.Timeout, $"the Hub at {_endpoint.Authority} stopped answering while sending the file list of {repoId} (timeout {_options.ReadTimeout.TotalSeconds:0.#} s)");
            }
        }
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            string commit = root.TryGetProperty("sha", out var sha) && sha.ValueKind == JsonValueKind.String ? sha.GetString()! : "";
            if (!HubCache.IsCommitHash(commit))
            {
                throw new HubException(HubErrorKind.Protocol, $"the Hub's answer for {repoId} has no commit hash ('sha')");
            }
            var files = new List<string>();
            if (root.TryGetProperty("siblings", out var siblings) && siblings.ValueKind == JsonValueKind.Array)
            {
                foreach (var s in siblings.EnumerateArray())
                {
                    if (s.TryGetProperty("rfilename", out var name) && name.ValueKind == JsonValueKind.String)
                    {
                        files.Add(HubCache.ValidateFileName(name.GetString()!));
                    }
                }
            }
            return (commit.ToLowerInvariant(), files);
        }
        catch (JsonException e)
        {
            throw new HubException(HubErrorKind.Protocol, $"the Hub's answer for {repoId} is not JSON: {e.Message}");
        }
    }

    private async Task<IReadOnlyList<PulledFile>> FetchAllAsync(string repoId, string commit, IReadOnlyList<string> names, CancellationToken ct)
    {
        using var gate = new SemaphoreSlim(Math.Max(1, _options.MaxParallel));
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var tasks = names.Select(async name =>
        {
            await gate.WaitAsync(failed.Token).ConfigureAwait(false);
            try
            {
                return await FetchFileAsync(repoId, commit, name, failed.Token).ConfigureAwait(false);
            }
            catch
            {
                await failed.CancelAsync().ConfigureAwait(false); // one failure stops the others
                throw;
            }
            finally
            {
                gate.Release();
            }
        }).ToList();
        try
        {
            return await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // Report the first real failure, not the cancellations it caused.
            var real = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault();
            if (real is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(real).Throw();
            }
            throw;
        }
    }

    private async Task<PulledFile> FetchFileAsync(string repoId, string commit, string name, CancellationToken ct)
    {
        string snapshotPath = _cache.SnapshotFile(repoId, commit, name);
        if (HubCache.FileResolves(snapshotPath))
        {
            var target = new FileInfo(snapshotPath).ResolveLinkTarget(returnFinalTarget: true);
            long size = (target as FileInfo ?? new FileInfo(snapshotPath)).Length; // the blob's size, not the link's
            string sha = target is not null && HubCache.IsSha256(target.Name) ? target.Name.ToLowerInvariant() : HubCache.Sha256Of(snapshotPath);
            FileTransfer.Cached(_progress, name, size);
            return new PulledFile(name, size, sha, Downloaded: false);
        }

        var resolveUrl = ResolveUrl(repoId, commit, name);
        var meta = await HeadAsync(resolveUrl, repoId, commit, name, ct).ConfigureAwait(false);
        string blob = _cache.BlobPath(repoId, meta.Etag);
        bool downloaded = false;
        if (!File.Exists(blob))
        {
            downloaded = await DownloadBlobAsync(resolveUrl, repoId, name, meta, ct).ConfigureAwait(false);
        }
        else
        {
            FileTransfer.Cached(_progress, name, new FileInfo(blob).Length);
        }
        _cache.LinkSnapshotFile(repoId, commit, name, meta.Etag);
        string sha256 = HubCache.IsSha256(meta.Etag) ? meta.Etag.ToLowerInvariant() : HubCache.Sha256Of(blob);
        return new PulledFile(name, new FileInfo(blob).Length, sha256, downloaded);
    }

    private Uri ResolveUrl(string repoId, string commit, string name) =>
        new(_endpoint, $"{repoId}/resolve/{commit}/{string.Join('/', name.Split('/').Select(Uri.EscapeDataString))}");

    private sealed record FileMeta(string Etag, long? Size, string? Commit);

    /// <summary>HEAD on <c>resolve</c>, following only redirects on the Hub's own host: a redirect to the storage host carries
    /// the LFS file's SHA-256 (<c>X-Linked-Etag</c>) and size (<c>X-Linked-Size</c>).</summary>
    private async Task<FileMeta> HeadAsync(Uri url, string repoId, string commit, string name, CancellationToken ct)
    {
        using var response = await SendWithRetryAsync(HttpMethod.Head, url, null, RedirectPolicy.SameHostOnly, name, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound && Header(response, "X-Repo-Commit") is { } c404 && HubCache.IsCommitHash(c404))
        {
            _cache.MarkNoExist(repoId, c404, name);
        }
        ThrowForStatus(response, repoId, commit, name);
        string? etag = HubCache.NormalizeEtag(Header(response, "X-Linked-Etag") ?? response.Headers.ETag?.ToString() ?? Header(response, "ETag"));
        if (string.IsNullOrEmpty(etag))
        {
            throw new HubException(HubErrorKind.Protocol, $"{name}: the server sent no ETag, so the file cannot be checked or cached");
        }
        HubCache.ValidateEtag(etag);
        long? size = long.TryParse(Header(response, "X-Linked-Size"), out long linked) ? linked
            : IsRedirect(response.StatusCode) ? null : response.Content.Headers.ContentLength;
        return new FileMeta(etag, size, Header(response, "X-Repo-Commit"));
    }

    /// <summary>Downloads one blob into <c>blobs/ETAG.incomplete</c>, resuming with Range requests after a broken connection,
    /// checks size and hash, then renames it to <c>blobs/ETAG</c>. Returns false if another download placed it meanwhile.</summary>
    private async Task<bool> DownloadBlobAsync(Uri resolveUrl, string repoId, string name, FileMeta meta, CancellationToken ct)
    {
        string blob = _cache.BlobPath(repoId, meta.Etag);
        string incomplete = _cache.IncompletePath(repoId, meta.Etag);
        var inProcess = _blobLocks.GetOrAdd(blob, _ => new SemaphoreSlim(1));
        await inProcess.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var fileLock = await AcquireFileLockAsync(_cache.LockPath(repoId, meta.Etag), name, ct).ConfigureAwait(false);
            if (File.Exists(blob))
            {
                FileTransfer.Cached(_progress, name, new FileInfo(blob).Length);
                return false;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
            long existing = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            if (meta.Size is { } total && existing > total)
            {
                File.Delete(incomplete);
                existing = 0;
            }
            CheckFreeSpace(name, (meta.Size ?? 0) - existing);
            var bar = new FileTransfer(_progress, name, meta.Size, existing);
            try
            {
                await ReceiveAsync(resolveUrl, repoId, name, meta, incomplete, existing, bar, ct).ConfigureAwait(false);
                Verify(name, meta, incomplete);
                File.Move(incomplete, blob, overwrite: false);
                bar.Complete();
                return true;
            }
            catch (Exception e)
            {
                bar.Fail(e is HubException ? "see error" : e.GetType().Name);
                throw;
            }
        }
        finally
        {
            inProcess.Release();
        }
    }

    private async Task ReceiveAsync(Uri resolveUrl, string repoId, string name, FileMeta meta, string incomplete, long existing, FileTransfer bar, CancellationToken ct)
    {
        int failures = 0;
        var buffer = new byte[1 << 16];
        await using var file = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, 1 << 16, useAsync: true);
        file.Seek(existing, SeekOrigin.Begin);
        file.SetLength(existing);
        while (true)
        {
            long position = file.Length;
            if (meta.Size is { } size && position == size && size > 0)
            {
                return; // complete from an earlier attempt
            }
            using var response = await SendWithRetryAsync(HttpMethod.Get, resolveUrl, position > 0 ? position : null, RedirectPolicy.All, name, ct).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                position = Restart(file, bar, 0);
                if (++failures > _options.MaxRetries)
                {
                    throw new HubException(HubErrorKind.Server, $"{name}: the server refused to resume the download (HTTP 416)");
                }
                continue;
            }
            ThrowForStatus(response, repoId, null, name);
            if (response.StatusCode == HttpStatusCode.PartialContent)
            {
                if (response.Content.Headers.ContentRange?.From is not { } from || from != position)
                {
                    position = Restart(file, bar, 0); // the server sent another range than asked: start over
                    continue;
                }
            }
            else if (position > 0)
            {
                position = Restart(file, bar, 0); // the server ignored Range and sends the whole file
            }
            else if (meta.Size is null && response.Content.Headers.ContentLength is { } length)
            {
                meta = meta with { Size = length };
            }

            long before = position;
            try
            {
                await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
                while (true)
                {
                    stall.CancelAfter(_options.ReadTimeout);
                    int n = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }
                    await WriteAsync(file, buffer.AsMemory(0, n), name, incomplete, ct).ConfigureAwait(false);
                    bar.Add(n);
                }
                await file.FlushAsync(ct).ConfigureAwait(false);
                if (meta.Size is { } expected && file.Length < expected)
                {
                    throw new IOException("the connection closed before the end of the file");
                }
                return;
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is IOException or HttpRequestException or OperationCanceledException && e is not HubException)
            {
                await file.FlushAsync(ct).ConfigureAwait(false);
                bool progressed = file.Length > before;
                if (!progressed && ++failures > _options.MaxRetries)
                {
                    throw e is OperationCanceledException
                        ? new HubException(HubErrorKind.Timeout, $"{name}: the server stopped sending data (no bytes for {_options.ReadTimeout.TotalSeconds:0.#} s, {failures} tries)")
                        : new HubException(HubErrorKind.Server, $"{name}: the download kept breaking off after {failures} tries: {e.Message}");
                }
                bar.Resumed(file.Length);
                await Task.Delay(Backoff(failures, null), ct).ConfigureAwait(false);
            }
        }
    }

    private static long Restart(FileStream file, FileTransfer bar, long position)
    {
        file.SetLength(position);
        file.Seek(position, SeekOrigin.Begin);
        bar.Resumed(position);
        return position;
    }

    private async Task WriteAsync(FileStream file, ReadOnlyMemory<byte> data, string name, string incomplete, CancellationToken ct)
    {
        try
        {
            await file.WriteAsync(data, ct).ConfigureAwait(false);
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            await file.DisposeAsync().ConfigureAwait(false);
            TryDelete(incomplete);
            throw DiskFull(name, e);
        }
    }

    private HubException DiskFull(string name, Exception? inner) =>
        new(HubErrorKind.DiskFull, $"disk full while downloading {name} into {_cache.Root}; free some space or point HF_HUB_CACHE (or --cache-dir) at a larger disk", inner);

    private void CheckFreeSpace(string name, long needed)
    {
        if (needed <= 0)
        {
            return;
        }
        long free;
        try
        {
            free = new DriveInfo(_cache.Root).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return;
        }
        if (free < needed)
        {
            throw new HubException(HubErrorKind.DiskFull,
                $"disk full: {name} needs {HubProgress.FormatBytes(needed)} but only {HubProgress.FormatBytes(free)} is free in {_cache.Root}; free some space or point HF_HUB_CACHE (or --cache-dir) at a larger disk");
        }
    }

    /// <summary>ENOSPC (28) / EDQUOT (122) on Unix, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.</summary>
    internal static bool IsDiskFull(IOException e) =>
        (e.HResult & 0xFFFF) is 28 or 122 or 112 or 39
        || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("disk full", StringComparison.OrdinalIgnoreCase);

    /// <summary>Size, then hash: SHA-256 for LFS files (64-hex ETag), git blob SHA-1 for small files (40-hex ETag).
    /// A mismatch deletes the temp file and nothing is placed in the cache.</summary>
    private static void Verify(string name, FileMeta meta, string incomplete)
    {
        long length = new FileInfo(incomplete).Length;
        if (meta.Size is { } size && length != size)
        {
            TryDelete(incomplete);
            throw new HubException(HubErrorKind.Checksum, $"{name}: received {length} bytes but the Hub announced {size}; nothing was placed in the cache, run the command again");
        }
        string? actual = null;
        string kind = "";
        if (HubCache.IsSha256(meta.Etag))
        {
            actual = HubCache.Sha256Of(incomplete);
            kind = "SHA-256";
        }
        else if (HubCache.IsSha1(meta.Etag))
        {
            using var fs = File.OpenRead(incomplete);
            actual = HubCache.GitBlobSha1(fs, length);
            kind = "git SHA-1";
        }
        if (actual is not null && !string.Equals(actual, meta.Etag, StringComparison.OrdinalIgnoreCase))
        {
            TryDelete(incomplete);
            throw new HubException(HubErrorKind.Checksum,
                $"{name}: the downloaded bytes have {kind} {actual} but the Hub announced {meta.Etag.ToLowerInvariant()}; the file was refused and nothing was placed in the cache");
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // best effort: the .incomplete file is restarted or resumed next time
        }
    }

    private static async Task<FileStream> AcquireFileLockAsync(string path, string name, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(500, ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new HubException(HubErrorKind.Timeout, $"{name}: another process has been downloading this file for 10 minutes (lock {path})", e);
            }
        }
    }

    private enum RedirectPolicy
    {
        All,
        SameHostOnly,
    }

    /// <summary>Sends a request, following redirects by hand (the Authorization header only ever goes to the Hub endpoint's
    /// host), retrying network errors, timeouts, 5xx and 429 with exponential backoff. Other statuses are returned as they are.</summary>
    private async Task<HttpResponseMessage> SendWithRetryAsync(HttpMethod method, Uri url, long? rangeFrom, RedirectPolicy redirects, string what, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            HttpResponseMessage? response = null;
            Exception? error = null;
            try
            {
                response = await SendFollowingRedirectsAsync(method, url, rangeFrom, redirects, ct).ConfigureAwait(false);
                if ((int)response.StatusCode < 500 && response.StatusCode != HttpStatusCode.TooManyRequests)
                {
                    return response;
                }
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
            {
                error = e;
            }
            catch (HttpRequestException e)
            {
                error = e;
            }
            catch (IOException e)
            {
                error = e;
            }
            if (attempt >= _options.MaxRetries)
            {
                if (response is not null)
                {
                    int status = (int)response.StatusCode;
                    response.Dispose();
                    throw new HubException(HubErrorKind.Server, $"the server answered HTTP {status} for {what} {_options.MaxRetries + 1} times; try again later");
                }
                throw error is OperationCanceledException
                    ? new HubException(HubErrorKind.Timeout, $"the server did not answer within {_options.RequestTimeout.TotalSeconds:0.#} s for {what} ({attempt + 1} tries); check the network or HF_ENDPOINT ({_endpoint.GetLeftPart(UriPartial.Authority)})")
                    : new HubException(HubErrorKind.Server, $"cannot reach {_endpoint.GetLeftPart(UriPartial.Authority)} for {what} ({attempt + 1} tries): {error!.Message}");
            }
            TimeSpan? retryAfter = response?.Headers.RetryAfter?.Delta;
            string reason = response is not null ? $"HTTP {(int)response.StatusCode}"
                : error is OperationCanceledException ? $"no answer within {_options.RequestTimeout.TotalSeconds:0.#} s" : error!.Message;
            response?.Dispose();
            TimeSpan delay = Backoff(attempt + 1, retryAfter);
            // say so: without this a run with no network looks hung for the whole backoff (about half a minute)
            _progress?.Report(new HubProgress(HubProgressKind.Retrying, what, 0, null, TimeSpan.Zero, 0,
                Message: $"{what}: {reason}; retrying in {delay.TotalSeconds:0.#} s (try {attempt + 2} of {_options.MaxRetries + 1}; HF_HUB_OFFLINE=1 skips the network)"));
            await Task.Delay(delay, ct).ConfigureAwait(false);
        }
    }

    private TimeSpan Backoff(int attempt, TimeSpan? retryAfter)
    {
        double ms = _options.RetryDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 10));
        ms = Math.Min(ms, 30_000);
        if (retryAfter is { } ra)
        {
            ms = Math.Max(ms, Math.Min(ra.TotalMilliseconds, 60_000));
        }
        return TimeSpan.FromMilliseconds(ms);
    }

    private async Task<HttpResponseMessage> SendFollowingRedirectsAsync(HttpMethod method, Uri url, long? rangeFrom, RedirectPolicy policy, CancellationToken ct)
    {
        for (int hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            if (_options.Token is { Length: > 0 } token && IsHubHost(url))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (rangeFrom is { } from)
            {
                request.Headers.Range = new RangeHeaderValue(from, null);
            }
            HttpResponseMessage response;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(_options.RequestTimeout);
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            }
            if (!IsRedirect(response.StatusCode) || response.Headers.Location is not { } location)
            {
                return response;
            }
            var next = location.IsAbsoluteUri ? location : new Uri(url, location);
            if (policy == RedirectPolicy.SameHostOnly && !IsHubHost(next))
            {
                return response; // the redirect's headers (X-Linked-Etag, X-Linked-Size) are what HEAD wants
            }
            if (hop >= MaxRedirects)
            {
                response.Dispose();
                throw new HubException(HubErrorKind.Protocol, $"more than {MaxRedirects} redirects from {url.GetLeftPart(UriPartial.Authority)}");
            }
            if (next.Scheme != Uri.UriSchemeHttp && next.Scheme != Uri.UriSchemeHttps)
            {
                response.Dispose();
                throw new HubException(HubErrorKind.Protocol, $"the server redirected to a non-http URL ({next.Scheme})");
            }
            response.Dispose();
            url = next;
        }
    }

    private bool IsHubHost(Uri url) =>
        string.Equals(url.Scheme, _endpoint.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(url.Host, _endpoint.Host, StringComparison.OrdinalIgnoreCase)
        && url.Port == _endpoint.Port;

    private static bool IsRedirect(HttpStatusCode s) => (int)s is 301 or 302 or 303 or 307 or 308;

    private static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault()
        : r.Content.Headers.TryGetValues(name, out var c) ? c.FirstOrDefault()
        : null;

    /// <summary>401/403/404 and other client errors to one-line messages (never the token).</summary>
    private void ThrowForStatus(HttpResponseMessage response, string repoId, string? revision, string? file)
    {
        int status = (int)response.StatusCode;
        if (status < 400)
        {
            return;
        }
        string page = new Uri(_endpoint, repoId).ToString();
        string? code = Header(response, "X-Error-Code");
        if (status is 401 or 403)
        {
            string tokenAdvice = _options.Token is null
                ? "set HF_TOKEN or pass --token with a token that has access"
                : "the token given was refused or has no access to it; check HF_TOKEN / --token";
            throw new HubException(HubErrorKind.Unauthorized,
                $"access to {repoId} was refused (HTTP {status}): the model may be gated or private; accept its terms at {page} and {tokenAdvice}");
        }
        if (status == 404)
        {
            string message = code switch
            {
                "RevisionNotFound" => $"{repoId} has no revision '{revision}' (HTTP 404)",
                "EntryNotFound" => $"{repoId} has no file {file} at that revision (HTTP 404)",
                "RepoNotFound" => $"no model {repoId} on {_endpoint.Authority} (HTTP 404); check the name",
                _ when file is not null => $"{repoId} has no file {file} at that revision (HTTP 404)",
                _ => $"no model {repoId} with revision '{revision}' on {_endpoint.Authority} (HTTP 404); check the name and --revision",
            };
            throw new HubException(HubErrorKind.NotFound, message);
        }
        throw new HubException(HubErrorKind.Protocol, $"the server answered HTTP {status} for {file ?? repoId}");
    }
}
