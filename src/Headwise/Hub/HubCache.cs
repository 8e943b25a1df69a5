using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Headwise.Hub;

/// <summary>The Hugging Face hub cache, laid out exactly as Python's <c>huggingface_hub</c> lays it out:
/// <code>
/// CACHE/models--ORG--NAME/refs/REVISION            the commit hash the revision pointed to
/// CACHE/models--ORG--NAME/blobs/ETAG                 file contents (SHA-256 for LFS files, git blob SHA-1 for small ones)
/// CACHE/models--ORG--NAME/blobs/ETAG.incomplete      a download in progress (resumed with a Range request)
/// CACHE/models--ORG--NAME/snapshots/COMMIT/FILE      relative symbolic link ../../blobs/ETAG
/// CACHE/models--ORG--NAME/.no_exist/COMMIT/FILE      empty marker: the file does not exist at that commit
/// CACHE/.locks/models--ORG--NAME/ETAG.lock           lock held while a blob downloads
/// </code></summary>
public sealed partial class HubCache(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex("^[0-9a-fA-F]{40}$")]
    private static partial Regex CommitPattern();

    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex EtagPattern();

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Pattern();

    [GeneratedRegex("^[0-9a-fA-F]{40}$")]
    private static partial Regex Sha1Pattern();

    /// <summary>Whether <paramref name="s"/> has the shape of a Hub model id (<c>ORG/NAME</c> or <c>NAME</c>).</summary>
    public static bool LooksLikeRepoId(string s) =>
        RepoIdPattern().IsMatch(s) && !s.Contains("..", StringComparison.Ordinal) && !s.Contains("--", StringComparison.Ordinal);

    public static bool IsCommitHash(string s) => CommitPattern().IsMatch(s);

    internal static bool IsSha256(string s) => Sha256Pattern().IsMatch(s);

    internal static bool IsSha1(string s) => Sha1Pattern().IsMatch(s);

    /// <summary><c>models--ORG--NAME</c>.</summary>
    public static string RepoFolderName(string repoId) => "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);

    public string RepoDir(string repoId) => Path.Combine(Root, RepoFolderName(repoId));

    public string SnapshotDir(string repoId, string commit) => Path.Combine(RepoDir(repoId), "snapshots", commit);

    public string SnapshotFile(string repoId, string commit, string fileName) =>
        Path.Combine(SnapshotDir(repoId, commit), ValidateFileName(fileName).Replace('/', Path.DirectorySeparatorChar));

    public string BlobPath(string repoId, string etag) => Path.Combine(RepoDir(repoId), "blobs", ValidateEtag(etag));

    public string IncompletePath(string repoId, string etag) => BlobPath(repoId, etag) + ".incomplete";

    public string LockPath(string repoId, string etag) => Path.Combine(Root, ".locks", RepoFolderName(repoId), ValidateEtag(etag) + ".lock");

    /// <summary>The commit a revision points to: the revision itself when it is a full commit hash, else <c>refs/REVISION</c>.</summary>
    public string? ReadRef(string repoId, string revision)
    {
        if (IsCommitHash(revision))
        {
            return revision.ToLowerInvariant();
        }
        string path = Path.Combine(RepoDir(repoId), "refs", ValidateFileName(revision, "revision"));
        if (!File.Exists(path))
        {
            return null;
        }
        string commit = File.ReadAllText(path).Trim();
        return commit.Length > 0 && EtagPattern().IsMatch(commit) ? commit : null;
    }

    /// <summary>Writes <c>refs/REVISION</c> atomically (temp file + rename); nothing when the revision is the commit itself.</summary>
    public void WriteRef(string repoId, string revision, string commit)
    {
        if (string.Equals(revision, commit, StringComparison.OrdinalIgnoreCase))
        {
            return;
        }
        string path = Path.Combine(RepoDir(repoId), "refs", ValidateFileName(revision, "revision"));
        if (File.Exists(path) && File.ReadAllText(path) == commit)
        {
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string tmp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(tmp, commit);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Points <c>snapshots/COMMIT/FILE</c> at <c>blobs/ETAG</c> with a relative symbolic link (a copy where links are not allowed).</summary>
    public void LinkSnapshotFile(string repoId, string commit, string fileName, string etag)
    {
        string link = SnapshotFile(repoId, commit, fileName);
        string blob = BlobPath(repoId, etag);
        string dir = Path.GetDirectoryName(link)!;
        Directory.CreateDirectory(dir);
        if (File.Exists(link) || new FileInfo(link).LinkTarget is not null)
        {
            File.Delete(link);
        }
        try
        {
            File.CreateSymbolicLink(link, Path.GetRelativePath(dir, blob));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(blob, link, overwrite: true);
        }
    }

    /// <summary>Records that <paramref name="fileName"/> does not exist at <paramref name="commit"/> (<c>.no_exist</c>).</summary>
    public void MarkNoExist(string repoId, string commit, string fileName)
    {
        string path = Path.Combine(RepoDir(repoId), ".no_exist", commit, ValidateFileName(fileName).Replace('/', Path.DirectorySeparatorChar));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!File.Exists(path))
        {
            File.WriteAllBytes(path, []);
        }
    }

    /// <summary>Whether the path exists and, if it is a link, whatever it points to exists too.</summary>
    public static bool FileResolves(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is null)
        {
            return info.Exists;
        }
        return info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true } target && target is FileInfo;
    }

    /// <summary>The snapshot folder for a revision if the cache holds one with a config.json and complete safetensors weights; else null.
    /// <paramref name="missing"/> says what is absent.</summary>
    public string? FindCompleteSnapshot(string repoId, string revision, out string missing)
    {
        missing = "";
        string? commit = ReadRef(repoId, revision);
        if (commit is null)
        {
            missing = $"no refs/{revision} for {repoId} in {Root}";
            return null;
        }
        string dir = SnapshotDir(repoId, commit);
        if (!Directory.Exists(dir))
        {
            missing = $"no snapshot {commit} for {repoId} in {Root}";
            return null;
        }
        if (!FileResolves(Path.Combine(dir, "config.json")))
        {
            missing = $"config.json is missing from {dir}";
            return null;
        }
        string index = Path.Combine(dir, "model.safetensors.index.json");
        if (FileResolves(index))
        {
            IReadOnlyList<string> shards;
            try
            {
                shards = ShardsOfIndex(File.ReadAllText(index));
            }
            catch (Exception e) when (e is HubException or System.Text.Json.JsonException)
            {
                missing = $"{index} cannot be read: {e.Message}";
                return null;
            }
            foreach (string shard in shards)
            {
                if (!FileResolves(Path.Combine(dir, shard.Replace('/', Path.DirectorySeparatorChar))))
                {
                    missing = $"weight shard {shard} is missing from {dir}";
                    return null;
                }
            }
            return dir;
        }
        bool anyWeights = Directory.EnumerateFiles(dir, "*.safetensors").Any(FileResolves);
        if (!anyWeights)
        {
            missing = $"no *.safetensors weights in {dir}";
            return null;
        }
        return dir;
    }

    /// <summary>The distinct shard file names of a <c>model.safetensors.index.json</c>'s <c>weight_map</c>, each checked to stay inside the snapshot.</summary>
    public static IReadOnlyList<string> ShardsOfIndex(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw new HubException(HubErrorKind.Protocol, "model.safetensors.index.json has no weight_map object");
        }
        var shards = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var entry in map.EnumerateObject())
        {
            string shard = entry.Value.GetString() ?? throw new HubException(HubErrorKind.Protocol, $"weight_map entry {entry.Name} is not a file name");
            shards.Add(ValidateFileName(shard));
        }
        return [.. shards];
    }

    /// <summary>Refuses names that could escape the snapshot folder: absolute paths, <c>..</c>, backslashes, empty segments, control characters.</summary>
    public static string ValidateFileName(string name, string what = "file name")
    {
        bool bad = string.IsNullOrEmpty(name) || name.Length > 1024
            || name.StartsWith('/') || name.StartsWith('~') || name.EndsWith('/')
            || name.Contains('\\') || name.Contains(':')
            || name.Any(char.IsControl)
            || Path.IsPathRooted(name)
            || name.Split('/').Any(seg => seg is "" or "." or "..");
        if (bad)
        {
            throw new HubException(HubErrorKind.UnsafeName, $"refused {what} '{Printable(name)}' from the server: it would leave the cache folder");
        }
        return name;
    }

    /// <summary>ETags become blob file names, so only plain hex-like names are accepted.</summary>
    public static string ValidateEtag(string etag)
    {
        if (!EtagPattern().IsMatch(etag))
        {
            throw new HubException(HubErrorKind.UnsafeName, $"refused ETag '{Printable(etag)}' from the server: not a plain hash");
        }
        return etag;
    }

    /// <summary>ETag header value to a file name: drops a weak <c>W/</c> prefix and the quotes.</summary>
    public static string? NormalizeEtag(string? etag)
    {
        if (etag is null)
        {
            return null;
        }
        string e = etag.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal))
        {
            e = e[2..];
        }
        return e.Trim('"');
    }

    /// <summary>The git blob SHA-1 of a file (what the Hub sends as ETag for files not stored in LFS).</summary>
    public static string GitBlobSha1(Stream content, long length)
    {
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
        byte[] buffer = new byte[1 << 16];
        int n;
        while ((n = content.Read(buffer)) > 0)
        {
            sha1.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(sha1.GetHashAndReset());
    }

    public static string Sha256Of(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    internal static string Printable(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s.Length > 200 ? s[..200] : s)
        {
            sb.Append(char.IsControl(c) ? '?' : c);
        }
        return sb.ToString();
    }
}
