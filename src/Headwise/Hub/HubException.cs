namespace Headwise.Hub;

/// <summary>What went wrong talking to the Hub or its cache; tests and callers branch on it, users read the message.</summary>
public enum HubErrorKind
{
    /// <summary>401/403: gated or private model, or a token that is refused.</summary>
    Unauthorized,

    /// <summary>404: no such model, revision or file.</summary>
    NotFound,

    /// <summary>The server stopped answering within the configured timeout.</summary>
    Timeout,

    /// <summary>The cache's disk has no room left.</summary>
    DiskFull,

    /// <summary>The downloaded bytes do not match the hash or size the Hub announced.</summary>
    Checksum,

    /// <summary>HF_HUB_OFFLINE forbids the network and the model is not cached.</summary>
    Offline,

    /// <summary>5xx/429 answers or network failures that outlasted every retry.</summary>
    Server,

    /// <summary>A file name, ETag or commit from the server that would escape the cache or is not a plain name.</summary>
    UnsafeName,

    /// <summary>The repository has no safetensors weights (Headwise never loads pickle files).</summary>
    NoWeights,

    /// <summary>The server's answer does not look like the Hub's (bad JSON, missing headers).</summary>
    Protocol,
}

/// <summary>An error reaching, reading or writing models on the Hugging Face Hub or in its local cache.
/// The message is one line and never contains the access token.</summary>
public sealed class HubException(HubErrorKind kind, string message, Exception? inner = null) : HeadwiseException(message, inner)
{
    public HubErrorKind Kind { get; } = kind;
}
