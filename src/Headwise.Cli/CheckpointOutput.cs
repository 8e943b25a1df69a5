using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Cli;

/// <summary>What the commands that write a checkpoint (export, convert) share: the --dtype and --out checks, and writing
/// the weights with the source model's tokenizer files beside them.</summary>
public static class CheckpointOutput
{
    private static readonly string[] TokenizerFiles = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"];

    public static TensorDType DType(CliArgs args) => args.Get("dtype") switch
    {
        null or "f32" => TensorDType.F32,
        "f16" => TensorDType.F16,
        "bf16" => TensorDType.BF16,
        var d => throw new UsageException($"--dtype {d}: expected f32, f16 or bf16"),
    };

    public static void RequireNew(string outDir)
    {
        if (File.Exists(outDir) || (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()))
        {
            throw new UsageException($"--out {outDir} already exists and is not an empty directory; give a new directory");
        }
    }

    /// <summary>Writes config.json and model.safetensors, and copies the source's tokenizer files (or an explicit Hugging Face
    /// tokenizer file; a llama2.c tokenizer has no Hugging Face form, which a note on stderr says). Returns the files written.</summary>
    public static List<string> Write(CanonicalWeights weights, LoadedModel loaded, string? tokenizer, string outDir, TensorDType dtype, TextWriter stderr, string command)
    {
        weights.SaveHf(outDir, dtype);
        return CopyTokenizer(loaded, tokenizer, outDir, stderr, command);
    }

    /// <summary>Writes a checkpoint through <paramref name="save"/> (config.json and model.safetensors) into a temporary
    /// directory beside <paramref name="outDir"/>, copies the tokenizer files there, then renames it: a failure leaves no
    /// half-written <paramref name="outDir"/>. Returns the files written.</summary>
    public static List<string> Write(Action<string> save, LoadedModel loaded, string? tokenizer, string outDir, TextWriter stderr, string command)
    {
        string full = Path.GetFullPath(outDir).TrimEnd(Path.DirectorySeparatorChar);
        string partial = full + ".partial-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            save(partial);
            var files = CopyTokenizer(loaded, tokenizer, partial, stderr, command);
            if (Directory.Exists(full))
            {
                Directory.Delete(full); // empty (RequireNew checked)
            }
            Directory.Move(partial, full);
            return files;
        }
        finally
        {
            if (Directory.Exists(partial))
            {
                Directory.Delete(partial, recursive: true);
            }
        }
    }

    private static List<string> CopyTokenizer(LoadedModel loaded, string? tokenizer, string outDir, TextWriter stderr, string command)
    {
        List<string> files = ["config.json", "model.safetensors"];
        var sources = Directory.Exists(loaded.Path)
            ? TokenizerFiles.Select(f => Path.Combine(loaded.Path, f)).Where(File.Exists).ToList()
            : [];
        if (tokenizer is not null)
        {
            // an explicit Hugging Face tokenizer file overrides the directory's; a llama2.c tokenizer.bin has no HF form here
            if (TokenizerFiles.Contains(Path.GetFileName(tokenizer)))
            {
                sources.RemoveAll(s => Path.GetFileName(s) == Path.GetFileName(tokenizer));
                sources.Add(tokenizer);
            }
            else
            {
                stderr.WriteLine($"headwise {command}: note: the tokenizer {tokenizer} is not converted (a llama2.c tokenizer has no Hugging Face form here); run the exported model with --tokenizer {tokenizer}");
            }
        }
        foreach (string source in sources)
        {
            string name = Path.GetFileName(source), target = Path.Combine(outDir, name), partial = target + ".partial";
            File.Copy(source, partial, overwrite: true);
            File.Move(partial, target, overwrite: true);
            files.Add(name);
        }
        if (sources.Count == 0 && tokenizer is null)
        {
            stderr.WriteLine($"headwise {command}: note: {loaded.Path} has no tokenizer files to copy; give one with --tokenizer when running the exported model");
        }
        return files;
    }
}
