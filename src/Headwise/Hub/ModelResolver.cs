namespace Headwise.Hub;

/// <summary>Turns a <c>--model</c> argument into a local path: a file or folder that exists wins; else a Hugging Face model
/// name (<c>ORG/NAME</c>) is looked up in the hub cache, and pulled from the Hub when it is missing and the network is allowed.</summary>
public static class ModelResolver
{
    /// <summary>Returns the local file or directory as given (made absolute), or the cache's snapshot folder
    /// (<c>…/models--ORG--NAME/snapshots/COMMIT</c>) holding config.json, the tokenizer files and the safetensors weights.</summary>
    /// <param name="nameOrPath">A local path, or a model name such as <c>HuggingFaceTB/SmolLM2-135M</c>.</param>
    /// <param name="options">Endpoint, token, offline mode, revision, cache folder; null reads the environment (<see cref="HubOptions.FromEnvironment"/>).</param>
    /// <param name="progress">Receives the download's progress and retries when the model is pulled (<see cref="HubProgress"/>;
    /// called from several threads at once); null for none. Nothing is reported when the path or the cache answers.</param>
    public static string Resolve(string nameOrPath, HubOptions? options = null, IProgress<HubProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        if (File.Exists(nameOrPath) || Directory.Exists(nameOrPath))
        {
            return Path.GetFullPath(nameOrPath);
        }
        if (!HubCache.LooksLikeRepoId(nameOrPath))
        {
            throw new HubException(HubErrorKind.NotFound,
                $"'{HubCache.Printable(nameOrPath)}' is neither an existing file or folder nor a Hugging Face model name (ORG/NAME)");
        }
        options ??= HubOptions.FromEnvironment();
        var cache = new HubCache(options.CacheDir);
        if (cache.FindCompleteSnapshot(nameOrPath, options.Revision, out string missing) is { } snapshot)
        {
            return snapshot;
        }
        if (options.Offline)
        {
            throw new HubException(HubErrorKind.Offline,
                $"{nameOrPath} is not a local path and is not complete in the Hugging Face cache ({missing}); HF_HUB_OFFLINE=1 forbids downloading it: run 'headwise pull {nameOrPath}' with network access, or unset HF_HUB_OFFLINE");
        }
        using var client = new HubClient(options, progress);
        try
        {
            return client.Pull(nameOrPath).Path;
        }
        catch (HubException e) when (e.Kind == HubErrorKind.NotFound && !nameOrPath.Contains('/'))
        {
            throw new HubException(HubErrorKind.NotFound, $"'{nameOrPath}' is not a local file or folder, and {e.Message}", e);
        }
    }
}
