using Headwise.Compute;
using Headwise.Loading;

namespace Headwise.Cli;

/// <summary>The options every model-taking command shares: --model, --tokenizer, --threads.</summary>
public static class ModelArgs
{
    /// <summary>The options below, for a command's <c>Options</c>.</summary>
    public static readonly string[] Options = ["model", "tokenizer", "threads"];

    public const string Help =
        "  --model M         Hugging Face model directory (config.json + *.safetensors [+ tokenizer.json]),\n" +
        "                    a llama2.c checkpoint (.bin) together with --tokenizer, or a Hub name ORG/NAME\n" +
        "                    (found in the Hugging Face cache, else downloaded; see docs/hub.md)\n" +
        "  --tokenizer F     tokenizer file (llama2.c tokenizer.bin, tokenizer.json, tokenizer.model) overriding the model's\n" +
        "  --threads N       worker threads for the kernels (default: all cores)";

    public static LoadedModel Load(CliArgs args)
    {
        ApplyThreads(args);
        string model = args.Require("model", "a model directory or llama2.c .bin");
        string? tokenizer = args.Get("tokenizer");
        return ModelLoader.Load(ResolveModel(model), tokenizer);
    }

    public static void ApplyThreads(CliArgs args) =>
        Kernels.MaxThreads = args.GetInt("threads", Environment.ProcessorCount, 1, 1024);

    /// <summary>Maps a --model value to a local path: an existing path, else the Hugging Face cache, else a download
    /// from the Hub (unless HF_HUB_OFFLINE=1). Progress goes to stderr.</summary>
    public static string ResolveModel(string model) => Hub.ModelResolver.Resolve(model, Hub.HubOptions.FromEnvironment(), Console.Error);
}
