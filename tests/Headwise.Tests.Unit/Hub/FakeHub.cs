using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Headwise.Tests.Unit.Hub;

/// <summary>A loopback imitation of the Hugging Face Hub: one HttpListener answers as the Hub (file list, <c>resolve</c>),
/// a second one on another port as the storage host that large (LFS) files redirect to. Fault modes are switched per test.</summary>
internal sealed class FakeHub : IDisposable
{
    public const int LargeThreshold = 1024;

    private readonly HttpListener _hub;
    private readonly HttpListener _storage;
    private readonly CancellationTokenSource _stop = new();

    public string HubUrl { get; }
    public string StorageUrl { get; }

    /// <summary>repo id → (commit, files).</summary>
    public Dictionary<string, (string Commit, Dictionary<string, byte[]> Files)> Repos { get; } = new(StringComparer.Ordinal);

    /// <summary>Every request: host ("hub"/"storage"), method, path, Authorization header, Range header.</summary>
    public ConcurrentQueue<(string Host, string Method, string Path, string? Auth, string? Range)> Log { get; } = new();

    /// <summary>Body bytes sent for file contents (both hosts).</summary>
    public long FileBytesServed;

    // Fault modes.
    public string? RequiredToken { get; set; }
    public int DropsLeft;
    public int DropAfterBytes { get; set; } = 3000;
    public string? CorruptFile { get; set; }
    public int Fail500Left;
    public bool Hang { get; set; }
    public List<string> ExtraSiblings { get; } = [];

    public FakeHub()
    {
        (_hub, HubUrl) = Listen();
        (_storage, StorageUrl) = Listen();
        _ = Loop(_hub, "hub");
        _ = Loop(_storage, "storage");
    }

    public string AddRepo(string repo, Dictionary<string, byte[]> files)
    {
        string commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(repo + files.Count)));
        Repos[repo] = (commit, files);
        return commit;
    }

    public static string Sha256(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    public static string GitSha1(byte[] b) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {b.Length}\0"), .. b]));

    private static (HttpListener, string) Listen()
    {
        for (int i = 0; ; i++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var l = new HttpListener();
            string url = $"http://127.0.0.1:{port}/";
            l.Prefixes.Add(url);
            try
            {
                l.Start();
                return (l, url.TrimEnd('/'));
            }
            catch (HttpListenerException) when (i < 20)
            {
                l.Close();
            }
        }
    }

    private async Task Loop(HttpListener listener, string host)
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await listener.GetContextAsync();
            }
            catch (Exception)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await Handle(ctx, host);
                }
                catch (Exception)
                {
                    try
                    {
                        ctx.Response.Abort();
                    }
                    catch (Exception)
                    {
                        // already gone
                    }
                }
            });
        }
    }

    private async Task Handle(HttpListenerContext ctx, string host)
    {
        var req = ctx.Request;
        var res = ctx.Response;
        string path = req.Url!.AbsolutePath;
        Log.Enqueue((host, req.HttpMethod, path, req.Headers["Authorization"], req.Headers["Range"]));
        if (host == "hub" && Hang)
        {
            await Task.Delay(Timeout.Infinite, _stop.Token);
            return;
        }
        if (host == "hub" && Interlocked.Decrement(ref Fail500Left) >= 0)
        {
            res.StatusCode = 500;
            res.Close();
            return;
        }
        if (host == "storage")
        {
            // /lfs/SHA256
            string sha = path[(path.LastIndexOf('/') + 1)..];
            var (file, bytes) = Repos.Values.SelectMany(r => r.Files).First(f => Sha256(f.Value) == sha);
            await SendFile(req, res, bytes, file, allowDrop: true);
            return;
        }
        if (RequiredToken is not null && req.Headers["Authorization"] != $"Bearer {RequiredToken}")
        {
            res.StatusCode = 401;
            res.AddHeader("X-Error-Code", "GatedRepo");
            res.Close();
            return;
        }
        const string api = "/api/models/";
        if (path.StartsWith(api, StringComparison.Ordinal))
        {
            int rev = path.IndexOf("/revision/", StringComparison.Ordinal);
            string repoId = path[api.Length..rev];
            string revision = Uri.UnescapeDataString(path[(rev + "/revision/".Length)..]);
            if (!Repos.TryGetValue(repoId, out var repo))
            {
                await Status(res, 404, "RepoNotFound");
                return;
            }
            if (revision != "main" && revision != repo.Commit)
            {
                await Status(res, 404, "RevisionNotFound");
                return;
            }
            var json = JsonSerializer.Serialize(new
            {
                id = repoId,
                sha = repo.Commit,
                siblings = repo.Files.Keys.Concat(ExtraSiblings).Select(f => new { rfilename = f }),
            });
            byte[] body = Encoding.UTF8.GetBytes(json);
            res.ContentType = "application/json";
            res.ContentLength64 = body.Length;
            await res.OutputStream.WriteAsync(body);
            res.Close();
            return;
        }
        int resolve = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (resolve > 0)
        {
            string repoId = path[1..resolve];
            string rest = path[(resolve + "/resolve/".Length)..];
            string commit = rest[..rest.IndexOf('/')];
            string file = Uri.UnescapeDataString(rest[(commit.Length + 1)..]);
            if (!Repos.TryGetValue(repoId, out var repo))
            {
                await Status(res, 404, "RepoNotFound");
                return;
            }
            res.AddHeader("X-Repo-Commit", repo.Commit);
            if (!repo.Files.TryGetValue(file, out var content))
            {
                await Status(res, 404, "EntryNotFound");
                return;
            }
            if (content.Length >= LargeThreshold)
            {
                res.StatusCode = 302;
                res.AddHeader("ETag", "\"" + GitSha1(content) + "\"");
                res.AddHeader("X-Linked-Etag", "\"" + Sha256(content) + "\"");
                res.AddHeader("X-Linked-Size", content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
                res.AddHeader("Location", $"{StorageUrl}/lfs/{Sha256(content)}?X-Amz-Signature=abc");
                res.Close();
                return;
            }
            res.AddHeader("ETag", "W/\"" + GitSha1(content) + "\"");
            await SendFile(req, res, content, file, allowDrop: false);
            return;
        }
        await Status(res, 404, null);
    }

    private static async Task Status(HttpListenerResponse res, int status, string? code)
    {
        res.StatusCode = status;
        if (code is not null)
        {
            res.AddHeader("X-Error-Code", code);
        }
        byte[] body = Encoding.UTF8.GetBytes("{\"error\":\"x\"}");
        res.ContentLength64 = body.Length;
        await res.OutputStream.WriteAsync(body);
        res.Close();
    }

    private async Task SendFile(HttpListenerRequest req, HttpListenerResponse res, byte[] content, string file, bool allowDrop)
    {
        if (file == CorruptFile)
        {
            content = [.. content];
            content[content.Length / 2] ^= 0xFF;
        }
        long from = 0;
        string? range = req.Headers["Range"];
        if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            from = long.Parse(range[6..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (from >= content.Length)
            {
                res.StatusCode = 416;
                res.Close();
                return;
            }
            res.StatusCode = 206;
            res.AddHeader("Content-Range", $"bytes {from}-{content.Length - 1}/{content.Length}");
        }
        res.ContentLength64 = content.Length - from;
        if (req.HttpMethod == "HEAD")
        {
            res.Close();
            return;
        }
        var slice = content.AsMemory((int)from);
        if (allowDrop && slice.Length > DropAfterBytes && Interlocked.Decrement(ref DropsLeft) >= 0)
        {
            // counted before writing: the client may have read every byte (and the test looked) before a later count ran
            Interlocked.Add(ref FileBytesServed, DropAfterBytes);
            await res.OutputStream.WriteAsync(slice[..DropAfterBytes]);
            await res.OutputStream.FlushAsync();
            await Task.Delay(50);
            res.Abort();
            return;
        }
        Interlocked.Add(ref FileBytesServed, slice.Length); // before writing, as above
        await res.OutputStream.WriteAsync(slice);
        res.Close();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _hub.Abort();
        _storage.Abort();
    }
}
