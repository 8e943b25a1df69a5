using System.Text;
using System.Text.Json;
using Headwise.Loading;

namespace Headwise.Training;

/// <summary>
/// A training checkpoint directory:
/// <list type="bullet">
/// <item><c>config.json</c> + <c>model.safetensors</c>: the Hugging Face checkpoint (ModelLoader.Load reads it). For a model
/// Hugging Face cannot express (combined W_OV, no norms) <c>model.safetensors</c> holds the Headwise parameter names and
/// there is no config.json.</item>
/// <item><c>headwise_model.json</c>: the <see cref="TrainableConfig"/>; <c>trainer.json</c>: the <see cref="TrainerOptions"/>.</item>
/// <item><c>training_state.bin</c>: "HWTRAIN\0", version, step, RNG state, data hash, parameter count, then parameters,
/// Adam first and second moments (float32, little-endian), and an FNV-1a checksum of everything before it.</item>
/// <item>the tokenizer file, when the run was given one.</item>
/// </list>
/// Written into a temp directory beside the target, then renamed into place, so a crash never leaves a half-written checkpoint.
/// </summary>
public static class TrainingCheckpoint
{
    public const string StateFile = "training_state.bin";
    public const string ModelConfigFile = "headwise_model.json";
    public const string TrainerFile = "trainer.json";
    private static readonly byte[] s_magic = "HWTRAIN\0"u8.ToArray();
    private const int Version = 1;

    public sealed record State(int Step, ulong RngState, ulong DataHash, float[] Params, float[] M, float[] V);

    /// <summary>
    /// Throws <see cref="ModelFormatException"/> (one line for the analyses to print) when <paramref name="dir"/> is a training
    /// checkpoint the inference engine cannot run: no config.json, the parameters in Headwise's own layout.
    /// </summary>
    public static void RefuseTrainingOnly(string dir)
    {
        string configFile = Path.Combine(dir, ModelConfigFile);
        if (File.Exists(Path.Combine(dir, "config.json")) || !File.Exists(configFile)) return;
        string variant = TrainableConfig.FromJson(File.ReadAllText(configFile), configFile).AttentionVariant;
        string what = variant == AttentionVariants.Softmax ? "a model Hugging Face cannot express (combined W_OV or no norms)" : $"the {variant} attention variant";
        throw new ModelFormatException($"{dir}: a training-only checkpoint ({what}): the analyses need an ordinary attention the inference engine runs; continue training it with `headwise train --resume`");
    }

    public static void Write(string dir, TrainableTransformer model, TrainerOptions options, State state, string? tokenizerFile)
    {
        string full = Path.GetFullPath(dir);
        string parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}");
        string old = Path.Combine(parent, $".{Path.GetFileName(full)}.old-{Environment.ProcessId}");
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        Directory.CreateDirectory(temp);
        try
        {
            if (model.HfExportBlocker is null)
            {
                model.SaveHf(temp);
            }
            else
            {
                var tensors = model.Parameters.Select(p => (p.Name, p.Shape, (ReadOnlyMemory<float>)model.Params.AsMemory(p.Offset, p.Length)));
                SafeTensorsWriter.Write(Path.Combine(temp, "model.safetensors"), tensors,
                    new Dictionary<string, string> { ["format"] = "headwise-trainable" });
            }
            File.WriteAllText(Path.Combine(temp, ModelConfigFile), model.Config.ToJson() + "\n");
            File.WriteAllText(Path.Combine(temp, TrainerFile), JsonSerializer.Serialize(options, TrainerOptions.Json) + "\n");
            WriteState(Path.Combine(temp, StateFile), state);
            if (tokenizerFile is not null)
            {
                File.Copy(tokenizerFile, Path.Combine(temp, Path.GetFileName(tokenizerFile)));
            }
            if (Directory.Exists(full))
            {
                if (Directory.Exists(old)) Directory.Delete(old, true);
                Directory.Move(full, old);
            }
            Directory.Move(temp, full);
            if (Directory.Exists(old)) Directory.Delete(old, true);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            throw;
        }
    }

    private static void WriteState(string path, State s)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(s_magic);
            w.Write(Version);
            w.Write(s.Step);
            w.Write(s.RngState);
            w.Write(s.DataHash);
            w.Write(s.Params.Length);
            foreach (var a in new[] { s.Params, s.M, s.V })
            {
                w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
            }
        }
        ulong sum = Fnv(ms.GetBuffer().AsSpan(0, (int)ms.Length));
        ms.Write(BitConverter.GetBytes(sum));
        File.WriteAllBytes(path, ms.ToArray());
    }

    /// <summary>Reads a checkpoint directory; throws <see cref="ModelFormatException"/> naming the file that is missing, corrupt or inconsistent.</summary>
    public static (TrainableConfig Model, TrainerOptions Options, State State) Read(string dir)
    {
        if (!Directory.Exists(dir)) throw new InvalidInputException($"--resume: no checkpoint directory '{dir}'");
        string mc = Path.Combine(dir, ModelConfigFile), tr = Path.Combine(dir, TrainerFile), st = Path.Combine(dir, StateFile);
        foreach (var f in new[] { mc, tr, st })
        {
            if (!File.Exists(f)) throw new ModelFormatException($"{f}: missing — '{dir}' is not a Headwise training checkpoint");
        }
        var config = TrainableConfig.FromJson(File.ReadAllText(mc), mc);
        TrainerOptions options;
        try
        {
            options = JsonSerializer.Deserialize<TrainerOptions>(File.ReadAllText(tr), TrainerOptions.Json) ?? throw new ModelFormatException($"{tr}: empty");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{tr}: not a Headwise trainer configuration ({e.Message})", e);
        }
        try
        {
            config.Validate();
        }
        catch (InvalidInputException e)
        {
            throw new ModelFormatException($"{mc}: {e.Message}", e);
        }
        byte[] bytes = File.ReadAllBytes(st);
        const int header = 8 + 4 + 4 + 8 + 8 + 4;
        if (bytes.Length < header + 8 || !bytes.AsSpan(0, 8).SequenceEqual(s_magic))
        {
            throw new ModelFormatException($"{st}: not a Headwise training state (bad magic or truncated)");
        }
        ulong stored = BitConverter.ToUInt64(bytes, bytes.Length - 8);
        if (Fnv(bytes.AsSpan(0, bytes.Length - 8)) != stored)
        {
            throw new ModelFormatException($"{st}: checksum mismatch — the file is corrupt or truncated");
        }
        int version = BitConverter.ToInt32(bytes, 8);
        if (version != Version) throw new ModelFormatException($"{st}: version {version}, this build reads version {Version}");
        int step = BitConverter.ToInt32(bytes, 12);
        ulong rng = BitConverter.ToUInt64(bytes, 16);
        ulong hash = BitConverter.ToUInt64(bytes, 24);
        int n = BitConverter.ToInt32(bytes, 32);
        if (n < 0 || bytes.Length != header + 3L * n * 4 + 8)
        {
            throw new ModelFormatException($"{st}: {bytes.Length} bytes do not match {n} parameters");
        }
        int expected = new TrainableTransformer(config).ParameterCount;
        if (n != expected)
        {
            throw new ModelFormatException($"{st}: holds {n} parameters but {mc} describes a model with {expected}");
        }
        float[] Floats(int index)
        {
            var a = new float[n];
            bytes.AsSpan(header + index * n * 4, n * 4).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
            return a;
        }
        return (config, options, new State(step, rng, hash, Floats(0), Floats(1), Floats(2)));
    }

    private static ulong Fnv(ReadOnlySpan<byte> data)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in data) h = (h ^ b) * 1099511628211UL;
        return h;
    }
}
