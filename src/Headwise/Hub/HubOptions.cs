namespace Headwise.Hub;

/// <summary>How to reach the Hugging Face Hub and where its cache lives. <see cref="FromEnvironment"/> reads the
/// same environment variables as Python's <c>huggingface_hub</c>.</summary>
public sealed record HubOptions
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The Hub's base URL (<c>HF_ENDPOINT</c>); mirrors work if they answer like the Hub.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>Access token for gated and private models (<c>HF_TOKEN</c>, or <c>--token</c>). Sent only to <see cref="Endpoint"/>'s host.</summary>
    public string? Token { get; init; }

    /// <summary><c>HF_HUB_OFFLINE=1</c>: no network at all; only the cache is read.</summary>
    public bool Offline { get; init; }

    /// <summary>Branch, tag or commit hash.</summary>
    public string Revision { get; init; } = "main";

    /// <summary>The hub cache folder (holding <c>models--ORG--NAME</c> folders).</summary>
    public string CacheDir { get; init; } = DefaultCacheDir(Environment.GetEnvironmentVariable);

    /// <summary>How many files download at once.</summary>
    public int MaxParallel { get; init; } = 4;

    /// <summary>How long to wait for a server's response headers (<c>HF_HUB_ETAG_TIMEOUT</c>, seconds).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a body may stall with no bytes arriving (<c>HF_HUB_DOWNLOAD_TIMEOUT</c>, seconds).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries after a failed request (network error, timeout, 5xx, 429) before giving up.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>The first backoff delay; each retry doubles it (capped at 30 s).</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Reads <c>HF_ENDPOINT</c>, <c>HF_TOKEN</c> (else the token file <c>HF_TOKEN_PATH</c> or <c>HF_HOME/token</c>),
    /// <c>HF_HUB_OFFLINE</c> (or <c>TRANSFORMERS_OFFLINE</c>), <c>HF_HUB_CACHE</c>/<c>HF_HOME</c>, <c>HF_HUB_ETAG_TIMEOUT</c>
    /// and <c>HF_HUB_DOWNLOAD_TIMEOUT</c>. <paramref name="getenv"/> replaces the process environment (tests).</summary>
    public static HubOptions FromEnvironment(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        var o = new HubOptions { CacheDir = DefaultCacheDir(getenv) };
        if (NonEmpty(getenv("HF_ENDPOINT")) is { } endpoint)
        {
            o = o with { Endpoint = endpoint.TrimEnd('/') };
        }
        string? token = NonEmpty(getenv("HF_TOKEN")) ?? NonEmpty(getenv("HUGGING_FACE_HUB_TOKEN"));
        if (token is null)
        {
            string tokenPath = NonEmpty(getenv("HF_TOKEN_PATH")) ?? Path.Combine(HfHome(getenv), "token");
            try
            {
                if (File.Exists(tokenPath))
                {
                    token = NonEmpty(File.ReadAllText(tokenPath).Trim());
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                token = null;
            }
        }
        o = o with { Token = token, Offline = IsTrue(getenv("HF_HUB_OFFLINE")) || IsTrue(getenv("TRANSFORMERS_OFFLINE")) };
        if (Seconds(getenv("HF_HUB_ETAG_TIMEOUT")) is { } etagTimeout)
        {
            o = o with { RequestTimeout = etagTimeout };
        }
        if (Seconds(getenv("HF_HUB_DOWNLOAD_TIMEOUT")) is { } downloadTimeout)
        {
            o = o with { ReadTimeout = downloadTimeout };
        }
        return o;
    }

    /// <summary><c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else <c>$XDG_CACHE_HOME/huggingface/hub</c>, else <c>~/.cache/huggingface/hub</c>.</summary>
    public static string DefaultCacheDir(Func<string, string?> getenv)
    {
        string? hub = NonEmpty(getenv("HF_HUB_CACHE")) ?? NonEmpty(getenv("HUGGINGFACE_HUB_CACHE"));
        return hub is not null ? ExpandHome(hub) : Path.Combine(HfHome(getenv), "hub");
    }

    private static string HfHome(Func<string, string?> getenv)
    {
        if (NonEmpty(getenv("HF_HOME")) is { } home)
        {
            return ExpandHome(home);
        }
        string cache = NonEmpty(getenv("XDG_CACHE_HOME")) is { } xdg
            ? ExpandHome(xdg)
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "huggingface");
    }

    private static string ExpandHome(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path.Length > 2 ? path[2..] : "")
            : path;

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    internal static bool IsTrue(string? s) =>
        s?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static TimeSpan? Seconds(string? s) =>
        double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) && v > 0
            ? TimeSpan.FromSeconds(v)
            : null;

    /// <summary>Never shows the token.</summary>
    public override string ToString() =>
        $"HubOptions {{ Endpoint = {Endpoint}, Token = {(Token is null ? "none" : "***")}, Offline = {Offline}, Revision = {Revision}, CacheDir = {CacheDir}, MaxParallel = {MaxParallel} }}";
}
