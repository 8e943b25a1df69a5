using System.Text.Json;
using Headwise.Hub;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise pull ORG/NAME</c>: downloads a model from the Hugging Face Hub into the shared hub cache.</summary>
public sealed class PullCommand : ICommand
{
    public string Name => "pull";

    public string Summary => "download a model from the Hugging Face Hub into the local cache";

    public string Usage => """
        headwise pull ORG/NAME [--revision R] [--token T] [--endpoint URL] [--cache-dir DIR] [--max-parallel N] [--json]
        """;

    public string Description => """
        Downloads a model from the Hugging Face Hub into the Hugging Face cache: config.json, the tokenizer files the
        repository has and the safetensors weights (single file or sharded via model.safetensors.index.json; pickle .bin
        files are never fetched), in the same cache layout as Python's huggingface_hub, so transformers finds them too. Every file is checked against its SHA-256 (git SHA-1
        for small files) before it is put in place; broken connections resume; a second pull downloads nothing.
        Afterwards any command takes --model ORG/NAME and reads the cache with no network.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("revision", "R", "branch, tag or commit to fetch (default: main)"),
        CliOption.Text("token", "T", "access token for gated or private models (default: $HF_TOKEN); sent only to the Hub"),
        CliOption.Text("endpoint", "URL", "Hub URL, for mirrors (default: $HF_ENDPOINT, else https://huggingface.co)"),
        CliOption.Text("cache-dir", "DIR", "hub cache folder (default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)"),
        CliOption.Integer("max-parallel", "N", "files downloaded at once (default: 4)"),
        CliOption.Flag("json", "print {\"repo\",\"revision\",\"commit\",\"path\",\"files\":[{\"name\",\"size\",\"sha256\",\"downloaded\"}]}"),
    ];

    public string Examples => """
        Environment:
          HF_ENDPOINT        Hub URL, for mirrors (default: https://huggingface.co)
          HF_TOKEN           access token (never printed or logged)
          HF_HUB_OFFLINE=1   no network at all: pull refuses, --model reads the cache only
          HF_HUB_CACHE, HF_HOME   where the cache is
          HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT   seconds to wait for an answer / for stalled data

        Exit codes: 0 done; 2 for a model that is gated/private (401/403), missing (404), a full disk, a server that
        stops answering, or a file whose hash does not match.

        Example:
          headwise pull HuggingFaceTB/SmolLM2-135M
          headwise pull meta-llama/Llama-3.2-1B --token hf_xxx --json
        """;

    public IReadOnlyList<CliArgument> Arguments { get; } = [new("ORG/NAME", "the Hugging Face Hub repository")];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var options = HubOptions.FromEnvironment();
        if (args.Get("revision") is { } revision)
        {
            options = options with { Revision = revision };
        }
        if (args.Get("token") is { } token)
        {
            options = options with { Token = token };
        }
        if (args.Get("endpoint") is { } endpoint)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw new UsageException($"--endpoint '{endpoint}' is not an http(s) URL");
            }
            options = options with { Endpoint = endpoint.TrimEnd('/') };
        }
        if (args.Get("cache-dir") is { } cacheDir)
        {
            options = options with { CacheDir = cacheDir };
        }
        options = options with { MaxParallel = args.GetInt("max-parallel", options.MaxParallel, 1, 64) };
        bool json = args.Flag("json");
        if (args.Positional.Count != 1)
        {
            throw new UsageException("expects one model name, ORG/NAME (see --help)");
        }

        using var progress = new HubProgressDisplay(stderr);
        using var client = new HubClient(options, progress);
        var result = client.Pull(args.Positional[0], CliMain.Cancellation);
        if (json)
        {
            WriteJson(stdout, result);
        }
        else
        {
            int fetched = result.Files.Count(f => f.Downloaded);
            long bytes = result.Files.Where(f => f.Downloaded).Sum(f => f.Size);
            stdout.WriteLine($"{result.Repo} @ {result.Revision} ({result.Commit}): {fetched} of {result.Files.Count} files downloaded ({bytes:N0} bytes)");
            stdout.WriteLine(result.Path);
        }
        return 0;
    }

    private static void WriteJson(TextWriter stdout, PullResult result)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("repo", result.Repo);
            w.WriteString("revision", result.Revision);
            w.WriteString("commit", result.Commit);
            w.WriteString("path", result.Path);
            w.WriteStartArray("files");
            foreach (var f in result.Files)
            {
                w.WriteStartObject();
                w.WriteString("name", f.Name);
                w.WriteNumber("size", f.Size);
                w.WriteString("sha256", f.Sha256);
                w.WriteBoolean("downloaded", f.Downloaded);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
