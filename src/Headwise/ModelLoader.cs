using System.Text.Json;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Tokenizers;

namespace Headwise;

/// <summary>A model ready to run, with its tokenizer when one was found.</summary>
public sealed class LoadedModel(TransformerModel model, TextTokenizer? tokenizer, string path) : IDisposable
{
    public TransformerModel Model { get; } = model;
    public TextTokenizer? Tokenizer { get; } = tokenizer;
    public string Path { get; } = path;
    public ModelConfig Config => Model.Config;

    /// <summary>The tokenizer, or a clear error saying how to supply one.</summary>
    public TextTokenizer RequireTokenizer() => Tokenizer ?? throw new InvalidInputException(Config.Vision is not null
        ? $"{Path} is a {Config.ModelType} vision model: it reads images, not text (docs/vision.md)" :
        $"{Path}: no tokenizer found (a Hugging Face directory needs tokenizer.json, vocab.json + merges.txt or tokenizer.model; a llama2.c .bin needs --tokenizer tokenizer.bin)");

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// Loads checkpoints: a Hugging Face model directory (config.json + model.safetensors, or shards with model.safetensors.index.json),
/// or a llama2.c <c>.bin</c>. Refuses pickle files (<c>pytorch_model.bin</c>, <c>.pt</c>, <c>.pth</c>, <c>.ckpt</c>): unpickling can execute code.
/// </summary>
public static class ModelLoader
{
    private const string PickleAdvice =
        "is a PyTorch pickle file, which can execute arbitrary code when loaded, so Headwise refuses it. " +
        "Use the model's safetensors weights instead: most Hub repositories ship model.safetensors (try `headwise pull ORG/NAME`), " +
        "or convert once in Python with `safetensors.torch.save_file(torch.load(path, weights_only=True), \"model.safetensors\")`.";

    public static LoadedModel Load(string path, string? tokenizerPath = null)
    {
        if (Directory.Exists(path))
        {
            return LoadDirectory(path, tokenizerPath);
        }
        if (!File.Exists(path))
        {
            throw new ModelFormatException($"{path}: no such file or directory");
        }
        string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".pt" or ".pth" or ".ckpt" or ".pkl" || IsPickle(path))
        {
            throw new ModelFormatException($"{path} {PickleAdvice}");
        }
        if (ext == ".safetensors" || System.IO.Path.GetFileName(path) == "model.safetensors.index.json")
        {
            return LoadDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, tokenizerPath);
        }
        // anything else is read as a llama2.c checkpoint; its header check rejects files that are not one
        var (config, weights) = Llama2cCheckpoint.Load(path);
        TransformerModel model;
        try
        {
            model = TransformerModel.Create(config, weights);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        var tokenizer = tokenizerPath is null ? null : TokenizerLoader.LoadLlama2c(tokenizerPath, config.VocabSize);
        return new LoadedModel(model, tokenizer, path);
    }

    /// <summary>True for a pickle stream (protocol 2+ starts with 0x80, version) or a zip archive (torch.save's default since 1.6).</summary>
    public static bool IsPickle(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        int n = f.Read(head);
        return (n >= 2 && head[0] == 0x80 && head[1] is >= 2 and <= 5) || (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4);
    }

    private static LoadedModel LoadDirectory(string dir, string? tokenizerPath)
    {
        string configPath = System.IO.Path.Combine(dir, "config.json");
        if (!File.Exists(configPath) && !File.Exists(System.IO.Path.Combine(dir, "model.safetensors"))
            && !File.Exists(System.IO.Path.Combine(dir, "model.safetensors.index.json")))
        {
            RefusePickleWeights(dir); // pickle weights and no config: the pickle is the problem to report, not config.json
        }
        Training.TrainingCheckpoint.RefuseTrainingOnly(dir);
        var config = HfConfigReader.Read(configPath);
        var weights = OpenWeights(dir);
        TransformerModel model;
        try
        {
            config = config with { StoredDType = weights.StoredDType };
            model = TransformerModel.Create(config, weights);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        TextTokenizer? tokenizer = null;
        try
        {
            if (tokenizerPath is not null)
            {
                tokenizer = TokenizerLoader.Load(tokenizerPath);
            }
            else if (new[] { "tokenizer.json", "vocab.json", "tokenizer.model" }.Any(f => File.Exists(System.IO.Path.Combine(dir, f))))
            {
                tokenizer = TokenizerLoader.Load(dir);
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return new LoadedModel(model, tokenizer, dir);
    }

    /// <summary>Opens model.safetensors, or every shard listed in model.safetensors.index.json.</summary>
    public static WeightSet OpenWeights(string dir)
    {
        string single = System.IO.Path.Combine(dir, "model.safetensors");
        string index = System.IO.Path.Combine(dir, "model.safetensors.index.json");
        var weights = new WeightSet(dir);
        try
        {
            if (File.Exists(single))
            {
                weights.AddFile(SafeTensorsFile.Open(single));
            }
            else if (File.Exists(index))
            {
                foreach (var (shard, names) in ReadIndex(index))
                {
                    weights.AddFile(SafeTensorsFile.Open(System.IO.Path.Combine(dir, shard)), names);
                    foreach (var name in names.Where(n => !weights.Contains(n)))
                    {
                        throw new ModelFormatException($"{index}: tensor '{name}' is mapped to {shard}, but that file does not contain it");
                    }
                }
            }
            else
            {
                RefusePickleWeights(dir);
                throw new ModelFormatException($"{dir}: no model.safetensors or model.safetensors.index.json in the model directory");
            }
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        return weights;
    }

    // throws the pickle advice when the directory holds PyTorch pickle weights
    private static void RefusePickleWeights(string dir)
    {
        string[] pickles = ["pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth"];
        var found = pickles.FirstOrDefault(p => File.Exists(System.IO.Path.Combine(dir, p)));
        if (found is not null)
        {
            throw new ModelFormatException($"{System.IO.Path.Combine(dir, found)} {PickleAdvice}");
        }
    }

    private static List<(string Shard, HashSet<string> Names)> ReadIndex(string index)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(index));
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{index}: not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException($"{index}: no \"weight_map\" object");
            }
            var shards = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            foreach (var e in map.EnumerateObject())
            {
                string file = e.Value.GetString() ?? "";
                // a shard must be a plain file name beside the index: no directories, no escaping the model folder
                if (file.Length == 0 || file != System.IO.Path.GetFileName(file) || file is "." or ".." || !file.EndsWith(".safetensors", StringComparison.Ordinal))
                {
                    throw new ModelFormatException($"{index}: tensor '{e.Name}' maps to '{file}', which is not a .safetensors file name in the model directory");
                }
                if (!shards.TryGetValue(file, out var set))
                {
                    shards[file] = set = new HashSet<string>(StringComparer.Ordinal);
                }
                set.Add(e.Name);
            }
            return shards.Select(kv => (kv.Key, kv.Value)).OrderBy(s => s.Key, StringComparer.Ordinal).ToList();
        }
    }
}
