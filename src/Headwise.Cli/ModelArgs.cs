using Headwise.Compute;
using Headwise.Loading;

namespace Headwise.Cli;

/// <summary>The options every model-taking command shares: --model, --tokenizer, --threads, --prepack.</summary>
public static class ModelArgs
{
    public static readonly CliOption[] Options =
    [
        CliOption.Text("model", "M", "Hugging Face model directory (config.json + *.safetensors [+ tokenizer.json]),\na llama2.c checkpoint (.bin) together with --tokenizer, or a Hub name ORG/NAME\n(found in the Hugging Face cache, else downloaded; see docs/hub.md)"),
        CliOption.Text("tokenizer", "F", "tokenizer file (llama2.c tokenizer.bin, tokenizer.json, tokenizer.model) overriding the model's"),
        CliOption.Integer("threads", "N", "worker threads for the kernels (default: all cores)"),
        CliOption.Text("prepack", "P", "auto|on|off: keep a copy of each weight packed for the GEMM, made on first use (faster\nprompts, one more copy of the weights in memory); auto (default) packs when it fits\n(docs/performance.md); the HEADWISE_PREPACK environment variable sets the default") with { Choices = ["auto", "on", "off"] },
    ];

    public static LoadedModel Load(CliArgs args)
    {
        ApplyThreads(args);
        bool? prepack = Prepack(args);
        string model = args.Require("model", "a model directory or llama2.c .bin");
        string? tokenizer = args.Get("tokenizer");
        var loaded = ModelLoader.Load(ResolveModel(model), tokenizer);
        if (prepack is bool on)
        {
            loaded.Model.Prepack = on;
        }
        return loaded;
    }

    /// <summary>--prepack auto|on|off: null for auto (the model's own default), else on or off.</summary>
    public static bool? Prepack(CliArgs args) => args.Get("prepack") switch
    {
        null or "auto" => null,
        "on" => true,
        "off" => false,
        var other => throw new UsageException($"--prepack expects auto, on or off, got '{other}'"),
    };

    public static void ApplyThreads(CliArgs args) =>
        Kernels.MaxThreads = args.GetInt("threads", Environment.ProcessorCount, 1, 1024);

    /// <summary>Maps a --model value to a local path: an existing path, else the Hugging Face cache, else a download
    /// from the Hub (unless HF_HUB_OFFLINE=1). A download's progress goes to stderr (<see cref="HubProgressDisplay"/>).</summary>
    public static string ResolveModel(string model)
    {
        using var progress = new HubProgressDisplay(Console.Error);
        return Hub.ModelResolver.Resolve(model, Hub.HubOptions.FromEnvironment(), progress);
    }
}
