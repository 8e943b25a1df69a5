using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Headwise.Tokenizers;

/// <summary>Reads Hugging Face <c>tokenizer.json</c> and GPT-2 style <c>vocab.json</c> + <c>merges.txt</c>.</summary>
internal static class HfTokenizerJson
{
    /// <summary>GPT-2's pre-tokenization pattern (what ByteLevel with use_regex uses).</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Regex Gpt2Regex = new(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    public static HfTokenizerData Parse(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({e.Message}); expected a Hugging Face tokenizer.json.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read tokenizer file ({e.Message}).", e);
        }

        using (doc)
        {
            try
            {
                return ParseRoot(doc.RootElement, path);
            }
            catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or FormatException or ArgumentException or RegexParseException
                or IndexOutOfRangeException)
            {
                throw new ModelFormatException($"{path}: malformed tokenizer.json ({e.Message}).", e);
            }
        }
    }

    private static HfTokenizerData ParseRoot(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException($"{path}: expected a JSON object with a \"model\" section (Hugging Face tokenizer.json).");
        }

        string type = Str(model, "type") ?? (model.TryGetProperty("merges", out _) ? "BPE" : "(none)");
        if (type != "BPE")
        {
            throw new ModelFormatException($"{path}: tokenizer model type \"{type}\" is not supported; expected \"BPE\" (byte-level or SentencePiece-style).");
        }

        if (Str(model, "continuing_subword_prefix") is { Length: > 0 } || Str(model, "end_of_word_suffix") is { Length: > 0 })
        {
            throw new ModelFormatException($"{path}: BPE with continuing_subword_prefix / end_of_word_suffix is not supported.");
        }

        if (!model.TryGetProperty("vocab", out var vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException($"{path}: model.vocab must be an object mapping tokens to ids.");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject())
        {
            int id = p.Value.GetInt32();
            if (id < 0)
            {
                throw new ModelFormatException($"{path}: token \"{p.Name}\" has negative id {id}.");
            }

            vocab[p.Name] = id;
        }

        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesEl) && mergesEl.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in mergesEl.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.String)
                {
                    string s = m.GetString()!;
                    int sp = s.IndexOf(' ', 1);
                    if (sp < 0)
                    {
                        throw new ModelFormatException($"{path}: merge \"{s}\" is not two tokens separated by a space.");
                    }

                    merges.Add((s[..sp], s[(sp + 1)..]));
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                {
                    merges.Add((m[0].GetString()!, m[1].GetString()!));
                }
                else
                {
                    throw new ModelFormatException($"{path}: each merge must be \"a b\" or [\"a\", \"b\"].");
                }
            }
        }

        var bpe = new BpeModel(vocab, merges, path,
            byteFallback: Bool(model, "byte_fallback"),
            unkToken: Str(model, "unk_token"),
            fuseUnk: Bool(model, "fuse_unk"),
            ignoreMerges: Bool(model, "ignore_merges"));

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedEl) && addedEl.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedEl.EnumerateArray())
            {
                string content = a.GetProperty("content").GetString()
                    ?? throw new ModelFormatException($"{path}: an added token has a null \"content\".");
                added.Add(new AddedToken(a.GetProperty("id").GetInt32(), content,
                    Bool(a, "special"), Bool(a, "lstrip"), Bool(a, "rstrip")));
            }
        }

        var normalizers = new List<Func<string, string>>();
        if (root.TryGetProperty("normalizer", out var normEl))
        {
            AddNormalizer(normEl, normalizers, path);
        }

        var preTokenizers = new List<Func<List<string>, bool, List<string>>>();
        if (root.TryGetProperty("pre_tokenizer", out var preEl))
        {
            AddPreTokenizer(preEl, preTokenizers, path);
        }

        var decoding = new TokenDecoding(false, false, false, false);
        if (root.TryGetProperty("decoder", out var decEl))
        {
            decoding = ReadDecoder(decEl, decoding, path);
        }

        var prefix = new List<int>();
        var suffix = new List<int>();
        if (root.TryGetProperty("post_processor", out var postEl))
        {
            ReadPostProcessor(postEl, prefix, suffix, path);
        }

        return new HfTokenizerData
        {
            Source = path,
            Model = bpe,
            Added = added,
            Normalizers = normalizers,
            PreTokenizers = preTokenizers,
            Decoding = decoding,
            TemplatePrefix = prefix,
            TemplateSuffix = suffix,
        };
    }

    /// <summary>GPT-2 style files: byte-level BPE with GPT-2's regex, no BOS; &lt;|endoftext|&gt; is special when present.</summary>
    public static HfTokenizerData FromVocabAndMerges(string vocabPath, string mergesPath)
    {
        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(vocabPath))
                ?? throw new ModelFormatException($"{vocabPath}: expected a JSON object mapping tokens to ids.");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{vocabPath}: not a JSON object mapping tokens to ids ({e.Message}).", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{vocabPath}: cannot read ({e.Message}).", e);
        }

        var merges = new List<(string, string)>();
        string[] lines;
        try
        {
            lines = File.ReadAllLines(mergesPath, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{mergesPath}: cannot read ({e.Message}).", e);
        }

        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n];
            if (line.Length == 0 || (n == 0 && line.StartsWith("#version", StringComparison.Ordinal)))
            {
                continue;
            }

            int sp = line.IndexOf(' ', 1);
            if (sp < 0 || line.IndexOf(' ', sp + 1) >= 0)
            {
                throw new ModelFormatException($"{mergesPath}: line {n + 1} is not two tokens separated by one space.");
            }

            merges.Add((line[..sp], line[(sp + 1)..]));
        }

        var added = new List<AddedToken>();
        if (vocab.TryGetValue("<|endoftext|>", out int eot))
        {
            added.Add(new AddedToken(eot, "<|endoftext|>", true, false, false));
        }

        return new HfTokenizerData
        {
            Source = vocabPath,
            Model = new BpeModel(vocab, merges, mergesPath),
            Added = added,
            PreTokenizers = [ByteLevelStep(addPrefixSpace: false, useRegex: true)],
            Decoding = new TokenDecoding(ByteLevel: true, Metaspace: false, ByteFallback: false, StripLeadingSpace: false),
        };
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool Bool(JsonElement e, string name, bool fallback = false) =>
        e.TryGetProperty(name, out var v) && (v.ValueKind == JsonValueKind.True || v.ValueKind == JsonValueKind.False) ? v.GetBoolean() : fallback;

    private static string TypeOf(JsonElement e, string what, string path) =>
        e.ValueKind == JsonValueKind.Object ? Str(e, "type") ?? throw new ModelFormatException($"{path}: {what} has no \"type\".")
            : throw new ModelFormatException($"{path}: {what} must be an object.");

    private static Regex PatternRegex(JsonElement pattern, string path)
    {
        if (Str(pattern, "Regex") is string rx)
        {
            return new Regex(rx, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }

        if (Str(pattern, "String") is string s)
        {
            return new Regex(Regex.Escape(s), RegexOptions.CultureInvariant);
        }

        throw new ModelFormatException($"{path}: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}.");
    }

    private static void AddNormalizer(JsonElement e, List<Func<string, string>> steps, string path)
    {
        if (e.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        string type = TypeOf(e, "normalizer", path);
        switch (type)
        {
            case "Sequence":
                foreach (var n in e.GetProperty("normalizers").EnumerateArray())
                {
                    AddNormalizer(n, steps, path);
                }

                break;
            case "Prepend":
                string prepend = Str(e, "prepend") ?? "";
                steps.Add(s => s.Length == 0 ? s : prepend + s);
                break;
            case "Replace":
                var regex = PatternRegex(e.GetProperty("pattern"), path);
                string content = Str(e, "content") ?? "";
                steps.Add(s => regex.Replace(s, content.Replace("$", "$$", StringComparison.Ordinal)));
                break;
            case "NFC":
                steps.Add(s => s.Normalize(NormalizationForm.FormC));
                break;
            case "NFD":
                steps.Add(s => s.Normalize(NormalizationForm.FormD));
                break;
            case "NFKC":
                steps.Add(s => s.Normalize(NormalizationForm.FormKC));
                break;
            case "NFKD":
                steps.Add(s => s.Normalize(NormalizationForm.FormKD));
                break;
            case "Lowercase":
                steps.Add(s => s.ToLowerInvariant());
                break;
            case "Strip":
                bool left = Bool(e, "strip_left", true), right = Bool(e, "strip_right", true);
                steps.Add(s => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s);
                break;
            default:
                throw new ModelFormatException($"{path}: normalizer \"{type}\" is not supported.");
        }
    }

    private static void AddPreTokenizer(JsonElement e, List<Func<List<string>, bool, List<string>>> steps, string path)
    {
        if (e.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        string type = TypeOf(e, "pre_tokenizer", path);
        switch (type)
        {
            case "Sequence":
                foreach (var p in e.GetProperty("pretokenizers").EnumerateArray())
                {
                    AddPreTokenizer(p, steps, path);
                }

                break;
            case "ByteLevel":
                steps.Add(ByteLevelStep(Bool(e, "add_prefix_space"), Bool(e, "use_regex", true)));
                break;
            case "Split":
                if (Bool(e, "invert"))
                {
                    throw new ModelFormatException($"{path}: Split pre-tokenizer with invert=true is not supported.");
                }

                var regex = PatternRegex(e.GetProperty("pattern"), path);
                string behavior = Str(e, "behavior") ?? "Isolated";
                if (behavior is not ("Isolated" or "Removed" or "MergedWithPrevious" or "MergedWithNext"))
                {
                    throw new ModelFormatException($"{path}: Split behavior \"{behavior}\" is not supported.");
                }

                steps.Add((pieces, _) => [.. pieces.SelectMany(p => Split(p, regex, behavior))]);
                break;
            case "Metaspace":
                string replacement = Str(e, "replacement") ?? "▁";
                string scheme = Str(e, "prepend_scheme") ?? (Bool(e, "add_prefix_space", true) ? "always" : "never");
                bool split = Bool(e, "split", true);
                var splitRegex = new Regex(Regex.Escape(replacement), RegexOptions.CultureInvariant);
                steps.Add((pieces, first) =>
                {
                    var result = new List<string>();
                    for (int i = 0; i < pieces.Count; i++)
                    {
                        string s = pieces[i].Replace(" ", replacement, StringComparison.Ordinal);
                        bool prepend = scheme == "always" || (scheme == "first" && first && i == 0);
                        if (prepend && !s.StartsWith(replacement, StringComparison.Ordinal))
                        {
                            s = replacement + s;
                        }

                        if (split)
                        {
                            result.AddRange(Split(s, splitRegex, "MergedWithNext"));
                        }
                        else
                        {
                            result.Add(s);
                        }
                    }

                    return result;
                });
                break;
            case "Digits":
                var digits = new Regex(Bool(e, "individual_digits") ? @"\p{Nd}" : @"\p{Nd}+", RegexOptions.CultureInvariant);
                steps.Add((pieces, _) => [.. pieces.SelectMany(p => Split(p, digits, "Isolated"))]);
                break;
            default:
                throw new ModelFormatException($"{path}: pre_tokenizer \"{type}\" is not supported.");
        }
    }

    internal static Func<List<string>, bool, List<string>> ByteLevelStep(bool addPrefixSpace, bool useRegex) => (pieces, _) =>
    {
        var result = new List<string>(pieces.Count);
        foreach (string piece in pieces)
        {
            string p = addPrefixSpace && !piece.StartsWith(' ') ? " " + piece : piece;
            if (useRegex)
            {
                foreach (Match m in Gpt2Regex.Matches(p))
                {
                    result.Add(ByteLevelAlphabet.Encode(m.Value));
                }
            }
            else
            {
                result.Add(ByteLevelAlphabet.Encode(p));
            }
        }

        return result;
    };

    internal static IEnumerable<string> Split(string s, Regex regex, string behavior)
    {
        var parts = new List<string>();
        int last = 0;
        string pendingPrefix = "";
        foreach (Match m in regex.Matches(s))
        {
            if (m.Length == 0)
            {
                continue;
            }

            string gap = s[last..m.Index];
            switch (behavior)
            {
                case "Isolated":
                    if (gap.Length > 0)
                    {
                        parts.Add(gap);
                    }

                    parts.Add(m.Value);
                    break;
                case "Removed":
                    if (gap.Length > 0)
                    {
                        parts.Add(gap);
                    }

                    break;
                case "MergedWithPrevious":
                    if (gap.Length > 0 || parts.Count == 0)
                    {
                        parts.Add(gap + m.Value);
                    }
                    else
                    {
                        parts[^1] += m.Value;
                    }

                    break;
                case "MergedWithNext":
                    if (pendingPrefix.Length > 0 || gap.Length > 0)
                    {
                        parts.Add(pendingPrefix + gap);
                    }

                    pendingPrefix = m.Value;
                    break;
            }

            last = m.Index + m.Length;
        }

        string tail = pendingPrefix + s[last..];
        if (tail.Length > 0)
        {
            parts.Add(tail);
        }

        return parts;
    }

    private static TokenDecoding ReadDecoder(JsonElement e, TokenDecoding d, string path)
    {
        if (e.ValueKind == JsonValueKind.Null)
        {
            return d;
        }

        string type = TypeOf(e, "decoder", path);
        switch (type)
        {
            case "Sequence":
                foreach (var x in e.GetProperty("decoders").EnumerateArray())
                {
                    d = ReadDecoder(x, d, path);
                }

                return d;
            case "ByteLevel":
                return d with { ByteLevel = true };
            case "ByteFallback":
                return d with { ByteFallback = true };
            case "Fuse":
                return d;
            case "Replace":
                if (Str(e.GetProperty("pattern"), "String") == "▁" && Str(e, "content") == " ")
                {
                    return d with { Metaspace = true };
                }

                throw new ModelFormatException($"{path}: decoder Replace is supported only for \"▁\" → \" \".");
            case "Strip":
                if (Str(e, "content") == " " && e.TryGetProperty("start", out var start) && start.GetInt32() >= 1
                    && (!e.TryGetProperty("stop", out var stop) || stop.GetInt32() == 0))
                {
                    return d with { StripLeadingSpace = true };
                }

                throw new ModelFormatException($"{path}: decoder Strip is supported only as content \" \", start 1, stop 0.");
            case "Metaspace":
                string scheme = Str(e, "prepend_scheme") ?? (Bool(e, "add_prefix_space", true) ? "always" : "never");
                return d with { Metaspace = true, StripLeadingSpace = scheme != "never" };
            default:
                throw new ModelFormatException($"{path}: decoder \"{type}\" is not supported.");
        }
    }

    private static void ReadPostProcessor(JsonElement e, List<int> prefix, List<int> suffix, string path)
    {
        if (e.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        string type = TypeOf(e, "post_processor", path);
        switch (type)
        {
            case "Sequence":
                foreach (var p in e.GetProperty("processors").EnumerateArray())
                {
                    ReadPostProcessor(p, prefix, suffix, path);
                }

                break;
            case "ByteLevel":
                break;
            case "TemplateProcessing":
                var specials = e.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object ? st : default;
                bool seenSequence = false;
                foreach (var item in e.GetProperty("single").EnumerateArray())
                {
                    if (item.TryGetProperty("Sequence", out _))
                    {
                        seenSequence = true;
                        continue;
                    }

                    if (!item.TryGetProperty("SpecialToken", out var tok))
                    {
                        throw new ModelFormatException($"{path}: TemplateProcessing item must be SpecialToken or Sequence.");
                    }

                    string name = Str(tok, "id") ?? throw new ModelFormatException($"{path}: TemplateProcessing SpecialToken without id.");
                    if (specials.ValueKind != JsonValueKind.Object || !specials.TryGetProperty(name, out var spec))
                    {
                        throw new ModelFormatException($"{path}: TemplateProcessing uses \"{name}\", which is not in its special_tokens.");
                    }

                    foreach (var id in spec.GetProperty("ids").EnumerateArray())
                    {
                        (seenSequence ? suffix : prefix).Add(id.GetInt32());
                    }
                }

                break;
            case "RobertaProcessing":
            case "BertProcessing":
                prefix.Add(e.GetProperty("cls")[1].GetInt32());
                suffix.Add(e.GetProperty("sep")[1].GetInt32());
                break;
            default:
                throw new ModelFormatException($"{path}: post_processor \"{type}\" is not supported.");
        }
    }
}
