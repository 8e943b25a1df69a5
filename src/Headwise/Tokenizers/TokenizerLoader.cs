using System.Text.Json;

namespace Headwise.Tokenizers;

/// <summary>
/// Loads a <see cref="TextTokenizer"/> from a model directory or a tokenizer file.
/// A directory is searched for <c>tokenizer.json</c>, then <c>vocab.json</c> + <c>merges.txt</c>, then <c>tokenizer.model</c>;
/// BOS/EOS come from <c>config.json</c> (bos_token_id, eos_token_id) and <c>tokenizer_config.json</c> (bos_token, eos_token,
/// add_bos_token, add_eos_token) when present, else from the tokenizer file itself.
/// </summary>
public static class TokenizerLoader
{
    private static readonly string[] BosNames = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] EosNames = ["</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|im_end|>"];

    /// <summary>Loads from a model directory or a tokenizer file (.json, .model, or llama2.c .bin with its 512-or-more vocabulary inferred).</summary>
    public static TextTokenizer Load(string path) => Load(path, null, null);

    /// <summary>As <see cref="Load(string)"/>, with BOS/EOS ids that override whatever the files say (null: keep the files' choice).</summary>
    public static TextTokenizer Load(string path, int? bosId, int? eosId)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            var settings = DirectorySettings.Read(path);
            string json = Path.Combine(path, "tokenizer.json");
            string vocab = Path.Combine(path, "vocab.json");
            string merges = Path.Combine(path, "merges.txt");
            string model = Path.Combine(path, "tokenizer.model");
            if (File.Exists(json))
            {
                return FromHf(HfTokenizerJson.Parse(json), settings, bosId, eosId);
            }

            if (File.Exists(vocab) && File.Exists(merges))
            {
                return FromHf(HfTokenizerJson.FromVocabAndMerges(vocab, merges), settings, bosId, eosId);
            }

            if (File.Exists(model))
            {
                return LoadSentencePiece(model, settings, bosId, eosId);
            }

            throw new ModelFormatException($"{path}: no tokenizer found; expected tokenizer.json, vocab.json + merges.txt, or tokenizer.model in this directory.");
        }

        if (!File.Exists(path))
        {
            throw new ModelFormatException($"{path}: tokenizer file or model directory not found.");
        }

        string ext = Path.GetExtension(path).ToLowerInvariant();
        DirectorySettings Settings() => DirectorySettings.Read(Path.GetDirectoryName(Path.GetFullPath(path))!);
        return ext switch
        {
            ".json" when Path.GetFileName(path).Equals("vocab.json", StringComparison.OrdinalIgnoreCase)
                && File.Exists(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "merges.txt")) =>
                FromHf(HfTokenizerJson.FromVocabAndMerges(path, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "merges.txt")), Settings(), bosId, eosId),
            ".json" => FromHf(HfTokenizerJson.Parse(path), Settings(), bosId, eosId),
            ".model" => LoadSentencePiece(path, Settings(), bosId, eosId),
            ".bin" => Llama2cTokenizer.Load(path, InferLlama2cVocabSize(path), bosId, eosId),
            _ => throw new ModelFormatException($"{path}: unknown tokenizer file type \"{ext}\"; expected tokenizer.json (.json), SentencePiece (.model) or llama2.c tokenizer (.bin)."),
        };
    }

    /// <summary>Loads a llama2.c <c>tokenizer.bin</c> holding <paramref name="vocabSize"/> tokens (BOS 1, EOS 2).</summary>
    public static TextTokenizer LoadLlama2c(string tokenizerBin, int vocabSize) => Llama2cTokenizer.Load(tokenizerBin, vocabSize);

    /// <summary>As <see cref="LoadLlama2c(string, int)"/> with explicit BOS/EOS ids.</summary>
    public static TextTokenizer LoadLlama2c(string tokenizerBin, int vocabSize, int bosId, int eosId) =>
        Llama2cTokenizer.Load(tokenizerBin, vocabSize, bosId, eosId);

    private static SentencePieceModelTokenizer LoadSentencePiece(string path, DirectorySettings settings, int? bosId, int? eosId) =>
        SentencePieceModelTokenizer.Load(path, bosId ?? settings.BosId, eosId ?? settings.EosId, settings.AddBos);

    /// <summary>The llama2.c format does not store its size: count the records until the file ends.</summary>
    private static int InferLlama2cVocabSize(string path)
    {
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read llama2.c tokenizer file ({e.Message}).", e);
        }

        if (data.Length < 4)
        {
            throw new ModelFormatException($"{path}: truncated llama2.c tokenizer: {data.Length} bytes, expected at least the int32 max_token_length.");
        }

        long pos = 4;
        int count = 0;
        while (pos < data.Length)
        {
            if (data.Length - pos < 8)
            {
                throw new ModelFormatException($"{path}: truncated llama2.c tokenizer: record {count} starts at byte {pos} but the file has {data.Length} bytes.");
            }

            int len = BitConverter.ToInt32(data, (int)pos + 4);
            if (len < 0 || data.Length - pos - 8 < len)
            {
                throw new ModelFormatException($"{path}: truncated or corrupt llama2.c tokenizer: record {count} at byte {pos} claims {len} bytes.");
            }

            pos += 8 + len;
            count++;
        }

        return count > 0 ? count : throw new ModelFormatException($"{path}: llama2.c tokenizer file holds no tokens.");
    }

    private static HfTokenizer FromHf(HfTokenizerData data, DirectorySettings settings, int? bosOverride, int? eosOverride)
    {
        int? Resolve(string? name) => name is null ? null
            : data.Added.FirstOrDefault(a => a.Content == name)?.Id ?? (data.Model.Vocab.TryGetValue(name, out int id) ? id : null);

        int? FirstKnown(string[] names)
        {
            foreach (string n in names)
            {
                if (Resolve(n) is int id)
                {
                    return id;
                }
            }

            return null;
        }

        int? bos = bosOverride ?? settings.BosId ?? Resolve(settings.BosToken)
            ?? (data.TemplatePrefix.Count > 0 ? data.TemplatePrefix[0] : FirstKnown(BosNames));
        int? eos = eosOverride ?? settings.EosId ?? Resolve(settings.EosToken)
            ?? (data.TemplateSuffix.Count > 0 ? data.TemplateSuffix[^1] : FirstKnown(EosNames));

        var prefix = new List<int>(data.TemplatePrefix);
        var suffix = new List<int>(data.TemplateSuffix);
        if (settings.AddBos is bool addBos && bos is int b)
        {
            prefix.RemoveAll(x => x == b);
            if (addBos)
            {
                prefix.Insert(0, b);
            }
        }

        if (settings.AddEos is bool addEos && eos is int e)
        {
            suffix.RemoveAll(x => x == e);
            if (addEos)
            {
                suffix.Add(e);
            }
        }

        return new HfTokenizer(data, [.. prefix], [.. suffix])
        {
            BosId = bos,
            EosId = eos,
            AddsBos = bos is int bb && prefix.Contains(bb),
        };
    }

    /// <summary>BOS/EOS settings from config.json and tokenizer_config.json next to the tokenizer.</summary>
    private sealed record DirectorySettings(int? BosId, int? EosId, string? BosToken, string? EosToken, bool? AddBos, bool? AddEos)
    {
        public static DirectorySettings Read(string dir)
        {
            int? bosId = null, eosId = null;
            string? bosToken = null, eosToken = null;
            bool? addBos = null, addEos = null;
            string config = Path.Combine(dir, "config.json");
            if (File.Exists(config))
            {
                using var doc = ParseJson(config);
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object)
                {
                    bosId = IdOf(root, "bos_token_id");
                    eosId = IdOf(root, "eos_token_id");
                }
            }

            string tokConfig = Path.Combine(dir, "tokenizer_config.json");
            if (File.Exists(tokConfig))
            {
                using var doc = ParseJson(tokConfig);
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object)
                {
                    bosToken = TokenOf(root, "bos_token");
                    eosToken = TokenOf(root, "eos_token");
                    addBos = BoolOf(root, "add_bos_token");
                    addEos = BoolOf(root, "add_eos_token");
                }
            }

            return new DirectorySettings(bosId, eosId, bosToken, eosToken, addBos, addEos);
        }

        private static JsonDocument ParseJson(string path)
        {
            try
            {
                return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            }
            catch (JsonException e)
            {
                throw new ModelFormatException($"{path}: not valid JSON ({e.Message}).", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ModelFormatException($"{path}: cannot read ({e.Message}).", e);
            }
        }

        private static int? IdOf(JsonElement e, string name)
        {
            if (!e.TryGetProperty(name, out var v))
            {
                return null;
            }

            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id))
            {
                return id;
            }

            // Some configs list several EOS ids; the first is the canonical one.
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0 && v[0].ValueKind == JsonValueKind.Number)
            {
                return v[0].GetInt32();
            }

            return null;
        }

        private static string? TokenOf(JsonElement e, string name)
        {
            if (!e.TryGetProperty(name, out var v))
            {
                return null;
            }

            return v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                _ => null,
            };
        }

        private static bool? BoolOf(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && (v.ValueKind is JsonValueKind.True or JsonValueKind.False) ? v.GetBoolean() : null;
    }
}
