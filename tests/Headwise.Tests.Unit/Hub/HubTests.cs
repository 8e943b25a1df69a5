using System.Text;
using Headwise.Hub;

namespace Headwise.Tests.Unit.Hub;

public sealed class HubTests : IDisposable
{
    private const string Repo = "test-org/tiny-model";
    private const string Token = "hf_SECRETtoken123";
    private readonly FakeHub _hub = new();
    private readonly string _cacheDir = Path.Combine(Path.GetTempPath(), "headwise-hub-" + Guid.NewGuid().ToString("N"));
    private readonly ProgressRecorder _progress = new();

    private static readonly byte[] Config = Encoding.UTF8.GetBytes("{\"model_type\":\"llama\",\"hidden_size\":8}");
    private static readonly byte[] Tokenizer = Encoding.UTF8.GetBytes("{\"version\":\"1.0\",\"model\":{}}");
    private static readonly byte[] Weights = MakeBytes(10_000, 1);

    public void Dispose()
    {
        _hub.Dispose();
        try
        {
            Directory.Delete(_cacheDir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private static byte[] MakeBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    private HubOptions Options => new()
    {
        Endpoint = _hub.HubUrl,
        CacheDir = _cacheDir,
        MaxParallel = 3,
        RequestTimeout = TimeSpan.FromSeconds(2),
        ReadTimeout = TimeSpan.FromSeconds(2),
        MaxRetries = 3,
        RetryDelay = TimeSpan.FromMilliseconds(20),
    };

    private string AddTinyRepo() => _hub.AddRepo(Repo, new()
    {
        ["config.json"] = Config,
        ["tokenizer.json"] = Tokenizer,
        ["model.safetensors"] = Weights,
        ["pytorch_model.bin"] = MakeBytes(2000, 9),
        ["README.md"] = Encoding.UTF8.GetBytes("# tiny"),
    });

    private PullResult Pull(HubOptions? o = null)
    {
        using var client = new HubClient(o ?? Options, _progress);
        return client.Pull(Repo);
    }

    private HubException PullFails(HubOptions? o = null) => Assert.Throws<HubException>(() => Pull(o));

    private string RepoDir => Path.Combine(_cacheDir, "models--test-org--tiny-model");

    [Fact]
    public void Pull_WritesThePythonCacheLayout()
    {
        string commit = AddTinyRepo();
        var result = Pull();

        Assert.Equal(commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        Assert.Equal(Path.Combine(RepoDir, "snapshots", commit), result.Path);
        Assert.Equal(commit, result.Commit);
        Assert.Equal(["config.json", "model.safetensors", "tokenizer.json"], result.Files.Select(f => f.Name).Order());
        Assert.All(result.Files, f => Assert.True(f.Downloaded));

        // Small files: blob named by git SHA-1; large: by SHA-256. Relative links ../../blobs/ETAG.
        var expect = new Dictionary<string, (byte[] Bytes, string Etag)>
        {
            ["config.json"] = (Config, FakeHub.GitSha1(Config)),
            ["tokenizer.json"] = (Tokenizer, FakeHub.GitSha1(Tokenizer)),
            ["model.safetensors"] = (Weights, FakeHub.Sha256(Weights)),
        };
        foreach (var (name, (bytes, etag)) in expect)
        {
            string link = Path.Combine(result.Path, name);
            Assert.Equal($"../../blobs/{etag}", new FileInfo(link).LinkTarget);
            Assert.Equal(bytes, File.ReadAllBytes(link));
            Assert.Equal(FakeHub.Sha256(bytes), result.Files.Single(f => f.Name == name).Sha256);
            Assert.Equal(bytes.Length, result.Files.Single(f => f.Name == name).Size);
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete"));
        Assert.False(File.Exists(Path.Combine(result.Path, "pytorch_model.bin")));
        Assert.Contains(_progress.Events, e => e is { Kind: HubProgressKind.Completed, File: "model.safetensors" });
    }

    [Fact]
    public void Progress_IsMonotoneAndEndsAtTheFileSize()
    {
        AddTinyRepo();
        Pull();
        foreach (string name in new[] { "config.json", "tokenizer.json", "model.safetensors" })
        {
            var events = _progress.Events.Where(e => e.File == name).ToList();
            Assert.Equal(HubProgressKind.Started, events[0].Kind);
            Assert.Equal(HubProgressKind.Completed, events[^1].Kind);
            Assert.All(events.Skip(1).SkipLast(1), e => Assert.Equal(HubProgressKind.Received, e.Kind));
            long size = name == "model.safetensors" ? Weights.Length : name == "config.json" ? Config.Length : Tokenizer.Length;
            Assert.Equal(size, events[^1].Done);
            Assert.Equal(size, events[^1].Total);
            Assert.Equal(0, events[0].Done);
            for (int i = 1; i < events.Count; i++)
            {
                Assert.True(events[i].Done >= events[i - 1].Done, $"{name}: {events[i - 1].Done} then {events[i].Done}");
                Assert.True(events[i].Elapsed >= events[i - 1].Elapsed);
                Assert.True(events[i].Done <= size);
            }
            Assert.True(events[^1].BytesPerSecond > 0);
        }

        // a second pull reports each file once, as cached, at its size
        _progress.Events.Clear();
        var again = Pull();
        Assert.Equal(Weights.Length, again.Files.Single(f => f.Name == "model.safetensors").Size);
        var cached = _progress.Events.ToList();
        Assert.Equal(3, cached.Count);
        Assert.All(cached, e => Assert.Equal(HubProgressKind.Cached, e.Kind));
        Assert.Equal(Weights.Length, cached.Single(e => e.File == "model.safetensors").Done);
    }

    [Fact]
    public void SecondPull_DownloadsNothing()
    {
        AddTinyRepo();
        Pull();
        long served = _hub.FileBytesServed;
        int requests = _hub.Log.Count;
        var again = Pull();
        Assert.All(again.Files, f => Assert.False(f.Downloaded));
        Assert.Equal(served, _hub.FileBytesServed);
        Assert.Equal(requests + 1, _hub.Log.Count); // only the file list
        Assert.Equal(FakeHub.Sha256(Weights), again.Files.Single(f => f.Name == "model.safetensors").Sha256);
    }

    [Fact]
    public void ShardedWeights_FollowTheIndex()
    {
        byte[] s1 = MakeBytes(5000, 2), s2 = MakeBytes(4000, 3);
        byte[] index = Encoding.UTF8.GetBytes("{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\",\"c\":\"model-00001-of-00002.safetensors\"}}");
        _hub.AddRepo(Repo, new()
        {
            ["config.json"] = Config,
            ["model.safetensors.index.json"] = index,
            ["model-00001-of-00002.safetensors"] = s1,
            ["model-00002-of-00002.safetensors"] = s2,
            ["other/model.safetensors"] = MakeBytes(1500, 4),
        });
        var r = Pull();
        Assert.Equal(s1, File.ReadAllBytes(Path.Combine(r.Path, "model-00001-of-00002.safetensors")));
        Assert.Equal(s2, File.ReadAllBytes(Path.Combine(r.Path, "model-00002-of-00002.safetensors")));
        Assert.Equal(4, r.Files.Count);
        Assert.Equal(r.Path, ModelResolver.Resolve(Repo, Options with { Offline = true }));
    }

    [Fact]
    public void ConnectionDropMidFile_IsResumedWithRange()
    {
        AddTinyRepo();
        _hub.DropsLeft = 2;
        _hub.DropAfterBytes = 3000;
        var r = Pull();
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(r.Path, "model.safetensors")));
        var ranges = _hub.Log.Where(e => e.Host == "storage").Select(e => e.Range).ToList();
        Assert.Contains("bytes=3000-", ranges);
        Assert.Contains("bytes=6000-", ranges);
        Assert.Contains(_progress.Events, e => e is { Kind: HubProgressKind.Resumed, File: "model.safetensors", Done: 3000 });
        Assert.Contains(_progress.Events, e => e is { Kind: HubProgressKind.Resumed, File: "model.safetensors", Done: 6000 });
        var done = _progress.Events.Single(e => e is { Kind: HubProgressKind.Completed, File: "model.safetensors" });
        Assert.Equal(2, done.Resumes);
        Assert.Equal(Weights.Length, done.Done);
    }

    [Fact]
    public void ChecksumMismatch_IsRefusedAndNothingPlaced()
    {
        string commit = AddTinyRepo();
        _hub.CorruptFile = "model.safetensors";
        var e = PullFails();
        Assert.Equal(HubErrorKind.Checksum, e.Kind);
        Assert.Contains("SHA-256", e.Message);
        Assert.False(File.Exists(Path.Combine(RepoDir, "blobs", FakeHub.Sha256(Weights))));
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", commit, "model.safetensors")));
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete"));
        Assert.False(File.Exists(Path.Combine(RepoDir, "refs", "main")));
    }

    [Fact]
    public void SmallFileWithWrongGitSha_IsRefused()
    {
        AddTinyRepo();
        _hub.CorruptFile = "config.json";
        Assert.Equal(HubErrorKind.Checksum, PullFails().Kind);
        Assert.False(File.Exists(Path.Combine(RepoDir, "blobs", FakeHub.GitSha1(Config))));
        Assert.False(File.Exists(Path.Combine(RepoDir, "blobs", FakeHub.GitSha1(Config) + ".incomplete")));
    }

    [Fact]
    public void Unauthorized_SaysGatedAndNeverShowsTheToken()
    {
        AddTinyRepo();
        _hub.RequiredToken = "the-right-one";
        var e = PullFails(Options with { Token = Token });
        Assert.Equal(HubErrorKind.Unauthorized, e.Kind);
        Assert.Contains("gated or private", e.Message);
        Assert.Contains($"{_hub.HubUrl}/{Repo}", e.Message);
        Assert.DoesNotContain(Token, e.Message);
        Assert.DoesNotContain(Token, _progress.Said);
        Assert.DoesNotContain(Token, (Options with { Token = Token }).ToString());

        var noToken = PullFails();
        Assert.Contains("HF_TOKEN", noToken.Message);
    }

    [Fact]
    public void Token_GoesToTheHubButNotToTheStorageHost()
    {
        AddTinyRepo();
        _hub.RequiredToken = Token;
        Pull(Options with { Token = Token });
        Assert.All(_hub.Log.Where(e => e.Host == "hub"), e => Assert.Equal($"Bearer {Token}", e.Auth));
        var storage = _hub.Log.Where(e => e.Host == "storage").ToList();
        Assert.NotEmpty(storage);
        Assert.All(storage, e => Assert.Null(e.Auth));
    }

    [Fact]
    public void NotFound_ModelAndRevision()
    {
        var e = PullFails();
        Assert.Equal(HubErrorKind.NotFound, e.Kind);
        Assert.Contains("no model test-org/tiny-model", e.Message);

        AddTinyRepo();
        var rev = PullFails(Options with { Revision = "v9" });
        Assert.Equal(HubErrorKind.NotFound, rev.Kind);
        Assert.Contains("no revision 'v9'", rev.Message);
    }

    [Fact]
    public void ServerError500_IsRetried()
    {
        AddTinyRepo();
        _hub.Fail500Left = 2;
        var r = Pull();
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(r.Path, "model.safetensors")));
        Assert.True(_hub.Log.Count(e => e.Host == "hub" && e.Path.StartsWith("/api/", StringComparison.Ordinal)) >= 3);
        // each retry is said, not silent: a run with no network would otherwise look hung for the whole backoff
        string said = _progress.Said;
        Assert.Contains("HTTP 500; retrying in", said);
        Assert.Contains("(try 2 of 4;", said);
        Assert.Contains("(try 3 of 4;", said);
    }

    [Fact]
    public void ServerError500Forever_GivesUpWithAClearError()
    {
        AddTinyRepo();
        _hub.Fail500Left = 1000;
        var e = PullFails();
        Assert.Equal(HubErrorKind.Server, e.Kind);
        Assert.Contains("HTTP 500", e.Message);
    }

    [Fact]
    public void ServerThatNeverAnswers_TimesOut()
    {
        AddTinyRepo();
        _hub.Hang = true;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = PullFails(Options with { RequestTimeout = TimeSpan.FromMilliseconds(300), MaxRetries = 1 });
        Assert.Equal(HubErrorKind.Timeout, e.Kind);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), clock.Elapsed.ToString());
    }

    [Theory]
    [InlineData("../../escape.json")]
    [InlineData("/etc/passwd")]
    [InlineData("a/../../b")]
    [InlineData("a\\..\\b")]
    public void FileNamesThatEscapeTheCache_AreRefused(string evil)
    {
        AddTinyRepo();
        _hub.ExtraSiblings.Add(evil);
        var e = PullFails();
        Assert.Equal(HubErrorKind.UnsafeName, e.Kind);
        Assert.False(Directory.Exists(Path.Combine(RepoDir, "snapshots")));
    }

    [Fact]
    public void ShardNamesThatEscapeTheCache_AreRefused()
    {
        _hub.AddRepo(Repo, new()
        {
            ["config.json"] = Config,
            ["model.safetensors.index.json"] = Encoding.UTF8.GetBytes("{\"weight_map\":{\"a\":\"../../../evil.safetensors\"}}"),
        });
        Assert.Equal(HubErrorKind.UnsafeName, PullFails().Kind);
    }

    [Fact]
    public void PickleOnlyRepo_IsRefused()
    {
        _hub.AddRepo(Repo, new() { ["config.json"] = Config, ["pytorch_model.bin"] = MakeBytes(2000, 5) });
        var e = PullFails();
        Assert.Equal(HubErrorKind.NoWeights, e.Kind);
        Assert.Contains("safetensors", e.Message);
    }

    [Fact]
    public void HandMadePythonCache_IsReadWithNoNetwork()
    {
        // Laid out the way huggingface_hub does it; the endpoint points nowhere.
        string commit = new('c', 40);
        string repo = Path.Combine(_cacheDir, "models--some-org--cached-model");
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        string snap = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(snap);
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        foreach (var (name, bytes, etag) in new[] { ("config.json", Config, FakeHub.GitSha1(Config)), ("model.safetensors", Weights, FakeHub.Sha256(Weights)) })
        {
            File.WriteAllBytes(Path.Combine(repo, "blobs", etag), bytes);
            File.CreateSymbolicLink(Path.Combine(snap, name), $"../../blobs/{etag}");
        }
        var nowhere = Options with { Endpoint = "http://127.0.0.1:9", MaxRetries = 0 };
        Assert.Equal(snap, ModelResolver.Resolve("some-org/cached-model", nowhere));
        Assert.Equal(snap, ModelResolver.Resolve("some-org/cached-model", nowhere with { Offline = true }));
        Assert.Equal(snap, ModelResolver.Resolve("some-org/cached-model", nowhere with { Revision = commit, Offline = true }));
    }

    [Fact]
    public void Offline_NotCached_IsAClearError()
    {
        AddTinyRepo();
        var e = Assert.Throws<HubException>(() => ModelResolver.Resolve(Repo, Options with { Offline = true }));
        Assert.Equal(HubErrorKind.Offline, e.Kind);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Empty(_hub.Log);
    }

    [Fact]
    public void Resolver_PullsWhenMissing_ThenUsesTheCache()
    {
        AddTinyRepo();
        string path = ModelResolver.Resolve(Repo, Options, _progress);
        Assert.True(File.Exists(Path.Combine(path, "config.json")));
        int requests = _hub.Log.Count;
        Assert.Equal(path, ModelResolver.Resolve(Repo, Options));
        Assert.Equal(requests, _hub.Log.Count);
    }

    [Fact]
    public void Resolver_LocalPathWins()
    {
        string dir = Path.Combine(_cacheDir, "test-org", "tiny-model");
        Directory.CreateDirectory(dir);
        // An existing folder is used as it is, even offline and with nothing cached (no process-wide cwd change here:
        // tests run in parallel).
        Assert.Equal(dir, ModelResolver.Resolve(dir, Options with { Offline = true }));
        string file = Path.Combine(dir, "model.safetensors");
        File.WriteAllBytes(file, Weights);
        Assert.Equal(file, ModelResolver.Resolve(file, Options with { Offline = true }));
        Assert.Empty(_hub.Log);
        var e = Assert.Throws<HubException>(() => ModelResolver.Resolve("./no/such/../file.bin", Options));
        Assert.Equal(HubErrorKind.NotFound, e.Kind);
    }

    [Fact]
    public void InterruptedEarlierPull_IsResumedFromTheIncompleteFile()
    {
        AddTinyRepo();
        string blobs = Path.Combine(RepoDir, "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, FakeHub.Sha256(Weights) + ".incomplete"), Weights[..4000]);
        var r = Pull();
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(r.Path, "model.safetensors")));
        Assert.Contains("bytes=4000-", _hub.Log.Select(e => e.Range));
    }

    [Fact]
    public void Options_FromEnvironment()
    {
        var env = new Dictionary<string, string>
        {
            ["HF_HOME"] = "/x/hf",
            ["HF_ENDPOINT"] = "https://mirror.example/",
            ["HF_TOKEN"] = Token,
            ["HF_HUB_OFFLINE"] = "1",
        };
        var o = HubOptions.FromEnvironment(env.GetValueOrDefault);
        Assert.Equal(Path.Combine("/x/hf", "hub"), o.CacheDir);
        Assert.Equal("https://mirror.example", o.Endpoint);
        Assert.Equal(Token, o.Token);
        Assert.True(o.Offline);
        Assert.DoesNotContain(Token, o.ToString());

        env["HF_HUB_CACHE"] = "/y/cache";
        env["HF_HUB_OFFLINE"] = "0";
        o = HubOptions.FromEnvironment(env.GetValueOrDefault);
        Assert.Equal("/y/cache", o.CacheDir);
        Assert.False(o.Offline);

        o = HubOptions.FromEnvironment(_ => null);
        Assert.EndsWith(Path.Combine(".cache", "huggingface", "hub"), o.CacheDir);
        Assert.Equal(HubOptions.DefaultEndpoint, o.Endpoint);
    }

    [Theory]
    [InlineData("\"abc123\"", "abc123")]
    [InlineData("W/\"abc123\"", "abc123")]
    [InlineData("abc123", "abc123")]
    public void Etags_AreNormalized(string header, string expected) => Assert.Equal(expected, HubCache.NormalizeEtag(header));

    [Fact]
    public void RepoFolderName_MatchesPython() =>
        Assert.Equal("models--julien-c--EsperBERTo-small", HubCache.RepoFolderName("julien-c/EsperBERTo-small"));
}

/// <summary>Collects what the Hub client reports (from several download threads at once).</summary>
internal sealed class ProgressRecorder : IProgress<HubProgress>
{
    public System.Collections.Concurrent.ConcurrentQueue<HubProgress> Events { get; } = new();

    /// <summary>Every file name and message reported, one per line.</summary>
    public string Said => string.Join('\n', Events.Select(e => $"{e.Kind} {e.File} {e.Message}"));

    public void Report(HubProgress value) => Events.Enqueue(value);
}
