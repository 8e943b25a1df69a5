using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Headwise.Models;
using Headwise.Tokenizers;

namespace Headwise.Tests.Models;

/// <summary>
/// Fuzzed loading. Property: a mutated checkpoint, config.json or tokenizer file either loads — and then runs one tiny
/// forward or encode, which touches the data — or is refused with a <see cref="HeadwiseException"/>. Never another
/// exception type, never a read outside the file (a bad offset into a memory mapping would kill the test process), never a
/// hang (each case runs under <see cref="CaseLimit"/>). The cases come from CsCheck generators driven by one fixed PCG
/// seed, so every run sees the same cases; a failure names the loader, the case number and the mutation.
/// </summary>
public sealed class FuzzedLoadingTests(ITestOutputHelper output) : IDisposable
{
    private const ulong Seed = 20_261_128;
    private static readonly TimeSpan CaseLimit = TimeSpan.FromSeconds(20);
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>One case: its choices from CsCheck (which file, which mutation) and a seed for the mutation's details.</summary>
    private readonly record struct Case(int Source, int Kind, int Detail);

    private static Gen<Case> Cases(int sources, int kinds) =>
        Gen.Select(Gen.Int[0, sources - 1], Gen.Int[0, kinds - 1], Gen.Int).Select(t => new Case(t.Item1, t.Item2, t.Item3));

    /// <summary>Runs <paramref name="count"/> cases: <paramref name="prepare"/> writes the mutated files into an empty
    /// directory and describes the mutation; <paramref name="load"/> loads them and runs one tiny forward or encode.</summary>
    private void Run(string loader, Gen<Case> gen, int count, Func<Case, Random, string, string> prepare, Action<string> load)
    {
        var pcg = new PCG(1, Seed);
        int loaded = 0, refused = 0;
        var failures = new Dictionary<string, (string Example, List<int> Cases)>(StringComparer.Ordinal); // by kind of failure
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            var c = gen.Generate(pcg, null, out _);
            string dir = Path.Combine(_dir, $"{loader}-{i}");
            Directory.CreateDirectory(dir);
            string what = $"{loader} case {i} ({c}): {prepare(c, new Random(c.Detail), dir)}";
            var task = Task.Run(() =>
            {
                try
                {
                    load(dir);
                    return true;
                }
                catch (HeadwiseException)
                {
                    return false;
                }
            });
            try
            {
                if (!task.Wait(CaseLimit))
                {
                    Assert.Fail($"{what}: no answer within {CaseLimit.TotalSeconds:F0} s");
                }
                if (task.Result)
                {
                    loaded++;
                }
                else
                {
                    refused++;
                }
            }
            catch (AggregateException e)
            {
                // the kind of failure: exception type and the library frame that threw
                var inner = e.InnerException!;
                string frame = inner.StackTrace?.Split('\n').FirstOrDefault(l => l.Contains("Headwise.", StringComparison.Ordinal))?.Trim() ?? "";
                string kind = $"{inner.GetType().Name} {frame}";
                if (!failures.TryGetValue(kind, out var f))
                {
                    failures[kind] = f = ($"{what}: {inner.GetType().Name} instead of a HeadwiseException: {inner.Message}\n    {frame}", []);
                }
                f.Cases.Add(i);
                output.WriteLine($"FAILED {what}: {inner.GetType().Name}");
            }
            Directory.Delete(dir, recursive: true);
        }
        double seconds = clock.Elapsed.TotalSeconds;
        output.WriteLine($"{loader}: {count} cases ({loaded} loaded, {refused} refused) in {seconds:F1} s, {1000 * seconds / count:F1} ms per case");
        Assert.True(failures.Count == 0, $"{loader}: {failures.Count} kinds of failure:\n"
            + string.Join("\n", failures.Values.Select(f => $"cases {string.Join(",", f.Cases)}, e.g. {f.Example}")));
        Assert.True(loaded > 0 && refused > 0, $"{loader}: {loaded} loaded, {refused} refused: the mutations miss one side");
    }

    // ---------------------------------------------------------------- values a mutation picks from

    private static JsonNode? OddValue(Random r, long original) => r.Next(22) switch
    {
        0 => 0,
        1 => -1,
        2 => 1,
        3 => 2,
        4 => 3,
        5 => original + 1,
        6 => original - 1,
        7 => original * 2,
        8 => original / 2,
        9 => int.MaxValue,
        10 => 1L << 31,
        11 => 1L << 32,
        12 => 1L << 40,
        13 => long.MaxValue,
        14 => long.MinValue,
        15 => 1.5,
        16 => 1e300,
        17 => JsonValue.Create(original.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        18 => true,
        19 => null,
        20 => new JsonArray(),
        _ => new JsonObject(),
    };

    private static long AsLong(JsonNode? n) => n is JsonValue v && v.TryGetValue(out long l) ? l : 7;

    private static int OddInt(Random r, int original) => r.Next(14) switch
    {
        0 => 0,
        1 => -1,
        2 => 1,
        3 => original + 1,
        4 => original - 1,
        5 => original * 2,
        6 => original / 2,
        7 => int.MaxValue,
        8 => int.MinValue,
        9 => 1 << 16,
        10 => 1 << 20,
        11 => -original,
        12 => r.Next(),
        _ => original + r.Next(-8, 9),
    };

    /// <summary>Cuts the file short or extends it with random bytes.</summary>
    private static string Resize(Random r, string path)
    {
        byte[] data = File.ReadAllBytes(path);
        if (r.Next(2) == 0)
        {
            int keep = r.Next(4) == 0 ? r.Next(Math.Min(64, data.Length)) : r.Next(data.Length);
            File.WriteAllBytes(path, data[..keep]);
            return $"{Path.GetFileName(path)} cut from {data.Length} to {keep} bytes";
        }
        var extra = new byte[r.Next(4) == 0 ? r.Next(1, 4096) : r.Next(1, 9)];
        r.NextBytes(extra);
        File.WriteAllBytes(path, [.. data, .. extra]);
        return $"{Path.GetFileName(path)} extended by {extra.Length} bytes";
    }

    /// <summary>Overwrites 1–8 random bytes in [from, to).</summary>
    private static string FlipBytes(Random r, byte[] data, int from, int to)
    {
        int n = r.Next(1, 9);
        var at = new List<int>();
        for (int k = 0; k < n && to > from; k++)
        {
            int i = r.Next(from, to);
            data[i] = (byte)r.Next(256);
            at.Add(i);
        }
        return $"bytes at {string.Join(",", at)} overwritten";
    }

    // ---------------------------------------------------------------- safetensors

    private static readonly string[] Goldens = Directory.GetDirectories(TestPaths.Goldens)
        .Where(d => File.Exists(Path.Combine(d, "config.json")) && Directory.GetFiles(d, "model*.safetensors").Length > 0)
        .OrderBy(d => d, StringComparer.Ordinal).ToArray();

    /// <summary>Copies a golden model (config, weights, shard index; not the expected outputs) into <paramref name="dir"/>.</summary>
    private static void CopyGolden(string golden, string dir)
    {
        foreach (string f in Directory.GetFiles(golden).Where(f => Path.GetFileName(f) is var n && (n == "config.json" || n.StartsWith("model", StringComparison.Ordinal))))
        {
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }
    }

    private static void LoadAndRun(string path)
    {
        using var m = ModelLoader.Load(path);
        int v = m.Config.VocabSize;
        // a vision model (the vit_* goldens) reads a blank image of its own size instead of two token ids
        var input = m.Config.Vision is { } vision
            ? ModelInput.Image(new ImagePixels(new float[vision.Channels * vision.ImageSize * vision.ImageSize], 1, vision.Channels, vision.ImageSize, vision.ImageSize), vision)
            : ModelInput.Single(0, Math.Min(1, v - 1));
        var logits = m.Model.Forward(input);
        Assert.Equal(input.SeqLen * v, logits.Length);
    }

    [Fact]
    public void MutatedSafetensorsLoadOrAreRefused() =>
        Run("safetensors", Cases(Goldens.Length, 6), 700, MutateSafetensors, LoadAndRun);

    [Fact]
    public void AZeroDimensionDoesNotLetAHugeOneThrough()
    {
        // found by the fuzzer's shape mutations, kept as a plain case: [2⁴⁰, 0] holds no bytes, so the header is consistent
        string dir = Path.Combine(_dir, "zero-dim");
        Directory.CreateDirectory(dir);
        CopyGolden(Path.Combine(TestPaths.Goldens, "gpt2_tied"), dir);
        string file = Path.Combine(dir, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        int headerLength = (int)BinaryPrimitives.ReadInt64LittleEndian(bytes);
        var header = JsonNode.Parse(bytes.AsSpan(8, headerLength))!.AsObject();
        header["transformer.ln_f.bias"] = JsonNode.Parse("""{"dtype": "F32", "shape": [1099511627776, 0], "data_offsets": [0, 0]}""");
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        byte[] data = bytes[(8 + headerLength)..];
        var bytesOut = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteInt64LittleEndian(bytesOut, json.Length);
        json.CopyTo(bytesOut, 8);
        data.CopyTo(bytesOut, 8 + json.Length);
        File.WriteAllBytes(file, bytesOut);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(dir).Dispose());
        Assert.Contains("transformer.ln_f.bias", e.Message);
    }

    private static string MutateSafetensors(Case c, Random r, string dir)
    {
        CopyGolden(Goldens[c.Source], dir);
        string[] files = Directory.GetFiles(dir, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        string file = files[r.Next(files.Length)];
        string where = $"{Path.GetFileName(Goldens[c.Source])}/{Path.GetFileName(file)}: ";
        byte[] bytes = File.ReadAllBytes(file);
        int headerLength = (int)BinaryPrimitives.ReadInt64LittleEndian(bytes);
        byte[] data = bytes[(8 + headerLength)..];
        var header = JsonNode.Parse(bytes.AsSpan(8, headerLength))!.AsObject();
        string[] names = header.Select(p => p.Key).Where(k => k != "__metadata__").ToArray();
        string name = names[r.Next(names.Length)];
        var entry = header[name]!.AsObject();
        string what;

        void Write(long? lengthField = null)
        {
            byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
            var bytesOut = new byte[8 + json.Length + data.Length];
            BinaryPrimitives.WriteInt64LittleEndian(bytesOut, lengthField ?? json.Length);
            json.CopyTo(bytesOut, 8);
            data.CopyTo(bytesOut, 8 + json.Length);
            File.WriteAllBytes(file, bytesOut);
        }

        switch (c.Kind)
        {
            case 0: // one field of one entry
                switch (r.Next(6))
                {
                    case 0:
                        string[] dtypes = ["F32", "F16", "BF16", "I32", "I64", "F64", "U8", "f32", ""];
                        entry["dtype"] = r.Next(5) == 0 ? OddValue(r, 4) : dtypes[r.Next(dtypes.Length)];
                        what = $"dtype of '{name}' → {entry["dtype"]?.ToJsonString() ?? "null"}";
                        break;
                    case 1:
                        var shape = entry["shape"]!.AsArray();
                        if (shape.Count == 0 || r.Next(4) == 0)
                        {
                            // a zero dimension makes any other one fit an empty byte range, however large
                            entry["shape"] = r.Next(2) == 0 ? new JsonArray(r.Next(2) == 0 ? 7 : 1L << 40, 0) : OddValue(r, 3);
                            if (r.Next(2) == 0)
                            {
                                entry["data_offsets"] = new JsonArray(0, 0);
                            }
                        }
                        else
                        {
                            int d = r.Next(shape.Count);
                            shape[d] = OddValue(r, AsLong(shape[d]));
                        }
                        what = $"shape of '{name}' → {entry["shape"]?.ToJsonString() ?? "null"}";
                        break;
                    case 2:
                    case 3:
                        var offsets = entry["data_offsets"]!.AsArray();
                        int o = r.Next(2);
                        offsets[o] = r.Next(3) == 0 ? data.Length + r.Next(-4, 5) : OddValue(r, AsLong(offsets[o]));
                        what = $"data_offsets of '{name}' → {offsets.ToJsonString()}";
                        break;
                    case 4:
                        string key = new[] { "dtype", "shape", "data_offsets" }[r.Next(3)];
                        entry.Remove(key);
                        what = $"'{name}' lost its {key}";
                        break;
                    default:
                        entry["data_offsets"] = r.Next(2) == 0 ? new JsonArray(0) : new JsonArray(0, 4, 8);
                        what = $"data_offsets of '{name}' → {entry["data_offsets"]!.ToJsonString()}";
                        break;
                }
                Write();
                return where + what;
            case 1: // the 8-byte header length
                {
                    long real = Encoding.UTF8.GetByteCount(header.ToJsonString());
                    long[] odd = [0, -1, real - 1, real + 1, real + 8, real + data.Length, real + data.Length + 1, long.MaxValue, long.MinValue, 1L << 31, 100L << 20];
                    long field = odd[r.Next(odd.Length)];
                    Write(field);
                    return where + $"header length field {field} (header is {real} bytes)";
                }
            case 2:
                return where + Resize(r, file);
            case 3: // bytes of the JSON header
                what = FlipBytes(r, bytes, 8, 8 + headerLength);
                File.WriteAllBytes(file, bytes);
                return where + what;
            case 4: // the header's structure
                switch (r.Next(5))
                {
                    case 0:
                        header.Remove(name);
                        header[name + ".renamed"] = entry;
                        what = $"'{name}' renamed";
                        break;
                    case 1:
                        string other = names[r.Next(names.Length)];
                        entry["data_offsets"] = header[other]!["data_offsets"]!.DeepClone();
                        what = $"'{name}' points at the bytes of '{other}'";
                        break;
                    case 2:
                        header["__metadata__"] = OddValue(r, 1);
                        what = $"__metadata__ → {header["__metadata__"]?.ToJsonString() ?? "null"}";
                        break;
                    case 3:
                        header[name] = OddValue(r, 1);
                        what = $"entry '{name}' → {header[name]?.ToJsonString() ?? "null"}";
                        break;
                    default:
                        byte[] array = Encoding.UTF8.GetBytes("[" + header.ToJsonString() + "]");
                        var arrayOut = new byte[8 + array.Length + data.Length];
                        BinaryPrimitives.WriteInt64LittleEndian(arrayOut, array.Length);
                        array.CopyTo(arrayOut, 8);
                        data.CopyTo(arrayOut, 8 + array.Length);
                        File.WriteAllBytes(file, arrayOut);
                        return where + "header wrapped in an array";
                }
                Write();
                return where + what;
            default: // every offset shifted by a few bytes, the data padded to match: still a valid file (unaligned tensors)
                {
                    int shift = r.Next(1, 8);
                    foreach (var n in names)
                    {
                        var off = header[n]!["data_offsets"]!.AsArray();
                        off[0] = AsLong(off[0]) + shift;
                        off[1] = AsLong(off[1]) + shift;
                    }
                    data = [.. new byte[shift], .. data];
                    Write();
                    return where + $"all data shifted by {shift} bytes";
                }
        }
    }

    // ---------------------------------------------------------------- config.json

    private static readonly string[] ConfigFields =
    [
        "model_type", "vocab_size", "n_embd", "n_head", "n_layer", "n_positions", "n_inner", "hidden_size", "num_attention_heads",
        "num_key_value_heads", "num_hidden_layers", "head_dim", "intermediate_size", "max_position_embeddings", "rotary_pct",
        "partial_rotary_factor", "rope_theta", "rotary_emb_base", "rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps",
        "sliding_window", "use_sliding_window", "tie_word_embeddings", "rope_scaling", "activation_function", "hidden_act",
        "eos_token_id", "bos_token_id", "attention_bias", "mlp_bias", "use_parallel_residual",
    ];

    [Fact]
    public void MutatedConfigsLoadOrAreRefused() =>
        Run("config.json", Cases(Goldens.Length, 6), 500, MutateConfig, LoadAndRun);

    private static string MutateConfig(Case c, Random r, string dir)
    {
        CopyGolden(Goldens[c.Source], dir);
        string path = Path.Combine(dir, "config.json");
        string where = $"{Path.GetFileName(Goldens[c.Source])}/config.json: ";
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        string[] present = config.Select(p => p.Key).ToArray();
        string Set(string field, JsonNode? value)
        {
            config[field] = value;
            return $"{field} → {value?.ToJsonString() ?? "null"}";
        }
        string what;
        switch (c.Kind)
        {
            case 0:
                string gone = r.Next(2) == 0 ? present[r.Next(present.Length)] : ConfigFields[r.Next(ConfigFields.Length)];
                config.Remove(gone);
                what = $"{gone} removed";
                break;
            case 1:
            case 2:
                string field = ConfigFields[r.Next(ConfigFields.Length)];
                what = Set(field, OddValue(r, AsLong(config[field])));
                break;
            case 3: // heads that do not divide the width, kv heads that do not divide the heads, an odd head size
                string width = config.ContainsKey("n_embd") ? "n_embd" : "hidden_size";
                string heads = config.ContainsKey("n_head") ? "n_head" : "num_attention_heads";
                what = r.Next(3) switch
                {
                    0 => Set(heads, AsLong(config[width]) + 1),
                    1 => Set(heads, new[] { 3, 5, 7 }[r.Next(3)]),
                    _ => Set(config.ContainsKey("num_key_value_heads") ? "num_key_value_heads" : heads, AsLong(config[heads]) + 1),
                };
                break;
            case 4:
                string[] types = ["gpt2", "llama", "mistral", "qwen2", "gpt_neox", "bert", "", "GPT2"];
                what = Set("model_type", r.Next(4) == 0 ? OddValue(r, 0) : types[r.Next(types.Length)]);
                break;
            default:
                string text = config.ToJsonString();
                File.WriteAllText(path, r.Next(3) switch
                {
                    0 => text[..r.Next(text.Length)],
                    1 => "[" + text + "]",
                    _ => "\"" + r.Next() + "\"",
                });
                return where + "not a JSON object";
        }
        File.WriteAllText(path, config.ToJsonString());
        return where + what;
    }

    // ---------------------------------------------------------------- tokenizer.json

    /// <summary>The demo model's tokenizer cut to its 256 byte tokens and first 64 merges, with an NFC normalizer and a
    /// template post-processor added so that those parsers are fuzzed too. Small, so each case is quick.</summary>
    private static readonly string SmallTokenizerJson = MakeSmallTokenizer();

    private static string MakeSmallTokenizer()
    {
        const int Merges = 64, Eot = 256 + Merges;
        var t = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "models", "demo", "tokenizer.json")))!.AsObject();
        var model = t["model"]!.AsObject();
        var vocab = new JsonObject();
        foreach (var (token, id) in model["vocab"]!.AsObject())
        {
            if (id!.GetValue<int>() < 256 + Merges)
            {
                vocab[token] = id.GetValue<int>();
            }
        }
        model["vocab"] = vocab;
        model["merges"] = new JsonArray([.. model["merges"]!.AsArray().Take(Merges).Select(m => m!.DeepClone())]);
        t["added_tokens"]![0]!["id"] = Eot;
        t["normalizer"] = new JsonObject { ["type"] = "Sequence", ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "NFC" }) };
        t["post_processor"] = JsonNode.Parse("""
            {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
             "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [EOT], "tokens": ["<|endoftext|>"]}}}
            """.Replace("EOT", Eot.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        return t.ToJsonString();
    }

    private static readonly string[] TokenizerSections =
    [
        """{"type": "Split", "pattern": {"Regex": "["}, "behavior": "Isolated"}""",
        """{"type": "Split", "pattern": {"String": ""}, "behavior": "MergedWithNext"}""",
        """{"type": "Metaspace", "replacement": "", "prepend_scheme": "first"}""",
        """{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}""",
        """{"type": "Strip", "content": " ", "start": -1, "stop": 2}""",
        """{"type": "BertProcessing", "sep": ["[SEP]"], "cls": ["[CLS]", 99999]}""",
        """{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "X"}}], "special_tokens": {"X": {"ids": [-1, 1000000]}}}""",
        """{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}], "pretokenizers": 3, "decoders": [], "processors": [{}]}""",
        """{"type": "Digits", "individual_digits": true}""",
        """{"type": "ByteFallback"}""",
        """{"type": "Lowercase"}""",
        """{"type": 7}""",
    ];

    [Fact]
    public void MutatedTokenizerJsonLoadsOrIsRefused() =>
        Run("tokenizer.json", Cases(1, 6), 400, MutateTokenizerJson, dir => EncodeAndDecode(TokenizerLoader.Load(Path.Combine(dir, "tokenizer.json"))));

    private static void EncodeAndDecode(TextTokenizer tok)
    {
        int[] ids = tok.Encode("Once upon a time, 123 héllo 🙂<|endoftext|> ");
        tok.Decode(ids);
    }

    private static string MutateTokenizerJson(Case c, Random r, string dir)
    {
        string path = Path.Combine(dir, "tokenizer.json");
        var t = JsonNode.Parse(SmallTokenizerJson)!.AsObject();
        string what;
        switch (c.Kind)
        {
            case 0: // any node of the tree gets an odd value
            case 1: // or goes away
                {
                    var nodes = new List<JsonNode>();
                    void Walk(JsonNode? n)
                    {
                        if (n is null)
                        {
                            return;
                        }
                        if (n != t)
                        {
                            nodes.Add(n);
                        }
                        if (n is JsonObject o)
                        {
                            // the big vocabulary would swamp the pick: sample a few of its entries only
                            foreach (var (_, v) in o.Where((_, i) => o != t["model"]!["vocab"] || i % 37 == 0))
                            {
                                Walk(v);
                            }
                        }
                        else if (n is JsonArray a)
                        {
                            foreach (var v in a)
                            {
                                Walk(v);
                            }
                        }
                    }
                    Walk(t);
                    var node = nodes[r.Next(nodes.Count)];
                    string at = node.GetPath();
                    var parent = node.Parent!;
                    if (c.Kind == 0)
                    {
                        var value = r.Next(3) == 0 ? JsonValue.Create(new[] { "", "x", "<0x41>", "Ġ", "\u0000", "<|endoftext|>" }[r.Next(6)]) : OddValue(r, AsLong(node));
                        if (parent is JsonObject po)
                        {
                            po[node.GetPropertyName()] = value;
                        }
                        else
                        {
                            parent.AsArray()[node.GetElementIndex()] = value;
                        }
                        what = $"{at} → {value?.ToJsonString() ?? "null"}";
                    }
                    else
                    {
                        if (parent is JsonObject po)
                        {
                            po.Remove(node.GetPropertyName());
                        }
                        else
                        {
                            parent.AsArray().RemoveAt(node.GetElementIndex());
                        }
                        what = $"{at} removed";
                    }
                    break;
                }
            case 2: // a section replaced by another kind, with odd settings
                {
                    string section = new[] { "normalizer", "pre_tokenizer", "decoder", "post_processor" }[r.Next(4)];
                    t[section] = JsonNode.Parse(TokenizerSections[r.Next(TokenizerSections.Length)]);
                    what = $"{section} → {t[section]!.ToJsonString()}";
                    break;
                }
            case 3: // ids
                {
                    var vocab = t["model"]!["vocab"]!.AsObject();
                    int[] odd = [-1, 0, 255, 320, 321, 4096, 1 << 22, int.MaxValue];
                    int id = odd[r.Next(odd.Length)];
                    if (r.Next(2) == 0)
                    {
                        string token = vocab.ElementAt(r.Next(vocab.Count)).Key;
                        vocab[token] = id;
                        what = $"vocab id of {JsonValue.Create(token)!.ToJsonString()} → {id}";
                    }
                    else
                    {
                        t["added_tokens"]![0]!["id"] = id;
                        what = $"added token id → {id}";
                    }
                    break;
                }
            case 4: // merges
                {
                    var merges = t["model"]!["merges"]!.AsArray();
                    int m = r.Next(merges.Count);
                    JsonNode?[] odd = ["a", "", " x", "x ", "Ġ t", new JsonArray("a"), new JsonArray(1, 2), new JsonArray(null, "a"), null, 5];
                    merges[m] = odd[r.Next(odd.Length)]?.DeepClone();
                    what = $"merge {m} → {merges[m]?.ToJsonString() ?? "null"}";
                    break;
                }
            default: // bytes
                {
                    byte[] bytes = Encoding.UTF8.GetBytes(t.ToJsonString());
                    File.WriteAllBytes(path, bytes);
                    return r.Next(2) == 0 ? Resize(r, path) : WriteBack(path, bytes, FlipBytes(r, bytes, 0, bytes.Length));
                }
        }
        File.WriteAllText(path, t.ToJsonString());
        return what;
    }

    private static string WriteBack(string path, byte[] bytes, string what)
    {
        File.WriteAllBytes(path, bytes);
        return what;
    }

    // ---------------------------------------------------------------- llama2.c checkpoint and tokenizer.bin

    /// <summary>The size a llama2.c file with this header has (the loader's formula, written out independently).</summary>
    private static long Llama2cBytes(int[] h)
    {
        long dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv = h[4], vocab = Math.Abs((long)h[5]), seq = h[6];
        if (heads <= 0 || dim % heads != 0)
        {
            return -1;
        }
        long headSize = dim / heads, kvDim = dim * kv / heads;
        long perLayer = 2 * dim + dim * dim * 2 + 2 * kvDim * dim + 3 * hidden * dim;
        return 28 + 4 * (vocab * dim + layers * perLayer + dim + 2 * seq * (headSize / 2) + (h[5] < 0 ? vocab * dim : 0));
    }

    [Fact]
    public void MutatedLlama2cCheckpointsLoadOrAreRefused()
    {
        byte[] original = File.ReadAllBytes(Path.Combine(TestPaths.RequireStories260K(), "stories260K.bin"));
        Run("llama2.c checkpoint", Cases(1, 4), 250, (c, r, dir) => MutateLlama2c(c, r, dir, original), dir => LoadAndRun(Path.Combine(dir, "model.bin")));
    }

    private static string MutateLlama2c(Case c, Random r, string dir, byte[] original)
    {
        string path = Path.Combine(dir, "model.bin");
        int[] h = new int[7];
        for (int i = 0; i < 7; i++)
        {
            h[i] = BinaryPrimitives.ReadInt32LittleEndian(original.AsSpan(4 * i));
        }
        string[] names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
        int field = r.Next(7);
        string what;
        switch (c.Kind)
        {
            case 0: // one header field, the file as it was
            case 1: // one header field, the file resized to what the new header implies
                h[field] = OddInt(r, h[field]);
                what = $"{names[field]} → {h[field]}";
                break;
            case 2: // an unshared classifier (negative vocab_size), the file as it was or with room for it
                h[5] = -h[5];
                what = "vocab_size negated (unshared classifier)";
                break;
            default:
                File.WriteAllBytes(path, original);
                return Resize(r, path);
        }
        var bytes = (byte[])original.Clone();
        for (int i = 0; i < 7; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), h[i]);
        }
        long size = Llama2cBytes(h);
        if (c.Kind != 0 && r.Next(3) != 0 && size >= 28 && size <= 64L << 20)
        {
            Array.Resize(ref bytes, (int)size); // new room is zeros, so a model that loads runs on zero weights there
            what += $", file resized to {size} bytes";
        }
        File.WriteAllBytes(path, bytes);
        return what;
    }

    [Fact]
    public void MutatedLlama2cTokenizersLoadOrAreRefused()
    {
        byte[] original = File.ReadAllBytes(Path.Combine(TestPaths.RequireStories260K(), "tok512.bin"));
        Run("llama2.c tokenizer.bin", Cases(1, 5), 250, (c, r, dir) => MutateTokenizerBin(c, r, dir, original), dir =>
        {
            string path = Path.Combine(dir, "tok.bin");
            try
            {
                EncodeAndDecode(TokenizerLoader.LoadLlama2c(path, 512));
            }
            finally
            {
                EncodeAndDecode(TokenizerLoader.Load(path)); // the vocabulary size inferred from the records
            }
        });
    }

    private static string MutateTokenizerBin(Case c, Random r, string dir, byte[] original)
    {
        string path = Path.Combine(dir, "tok.bin");
        var bytes = (byte[])original.Clone();
        // record offsets: int32 max_token_length, then per token float32 score, int32 length, bytes
        var records = new List<int>();
        for (int pos = 4; pos < bytes.Length; pos += 8 + BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(pos + 4)))
        {
            records.Add(pos);
        }
        int k = r.Next(records.Count), at = records[k];
        string what;
        switch (c.Kind)
        {
            case 0:
                int maxLen = OddInt(r, BinaryPrimitives.ReadInt32LittleEndian(bytes));
                BinaryPrimitives.WriteInt32LittleEndian(bytes, maxLen);
                what = $"max_token_length → {maxLen}";
                break;
            case 1:
                int len = OddInt(r, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at + 4)));
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(at + 4), len);
                what = $"length of token {k} → {len}";
                break;
            case 2:
                float[] scores = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0, -0f, float.MaxValue, 1e-45f];
                float score = scores[r.Next(scores.Length)];
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(at), score);
                what = $"score of token {k} → {score}";
                break;
            case 3:
                int n = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at + 4));
                what = $"token {k}: " + FlipBytes(r, bytes, at + 8, at + 8 + n);
                break;
            default:
                File.WriteAllBytes(path, bytes);
                return Resize(r, path);
        }
        File.WriteAllBytes(path, bytes);
        return what;
    }
}
