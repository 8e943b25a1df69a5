using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Headwise.Tokenizers;
using SharpToken;

namespace Headwise.Tests.Unit.Tokenizers;

/// <summary>
/// GPT-2's vocabulary is tiktoken's r50k_base (shipped inside SharpToken). The fixture turns those ranks into GPT-2's own
/// file formats (vocab.json in the byte alphabet, merges.txt, tokenizer.json), loads them, and compares with SharpToken.
/// </summary>
public sealed class Gpt2Fixture : IDisposable
{
    public Gpt2Fixture()
    {
        var sw = Stopwatch.StartNew();
        var ranks = ReadRanks();
        char[] alphabet = TokenizerTestFiles.Gpt2ByteAlphabet();
        var vocab = new Dictionary<string, int>(ranks.Count + 1, StringComparer.Ordinal);
        for (int r = 0; r < ranks.Count; r++)
        {
            vocab[TokenizerTestFiles.ToAlphabet(ranks[r], alphabet)] = r;
        }

        vocab["<|endoftext|>"] = ranks.Count;
        var merges = DeriveMerges(ranks, alphabet);

        PairsDir = TokenizerTestFiles.NewTempDir("gpt2-pairs");
        File.WriteAllText(Path.Combine(PairsDir, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllLines(Path.Combine(PairsDir, "merges.txt"), ["#version: 0.2", .. merges.Select(m => m.Left + " " + m.Right)]);

        JsonDir = TokenizerTestFiles.NewTempDir("gpt2-json");
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[] { new Dictionary<string, object> { ["id"] = ranks.Count, ["content"] = "<|endoftext|>", ["special"] = true } },
            ["normalizer"] = null,
            ["pre_tokenizer"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["byte_fallback"] = false,
                ["vocab"] = vocab,
                // Merges in the newer [a, b] form here; merges.txt above carries the "a b" form.
                ["merges"] = merges.Select(m => new[] { m.Left, m.Right }).ToArray(),
            },
        };
        File.WriteAllText(Path.Combine(JsonDir, "tokenizer.json"), JsonSerializer.Serialize(json));

        Reference = GptEncoding.GetEncoding("r50k_base");
        FromJson = TokenizerLoader.Load(JsonDir);
        FromPairs = TokenizerLoader.Load(PairsDir);
        SetupTime = sw.Elapsed;
    }

    public string PairsDir { get; }

    public string JsonDir { get; }

    public GptEncoding Reference { get; }

    public TextTokenizer FromJson { get; }

    public TextTokenizer FromPairs { get; }

    public TimeSpan SetupTime { get; }

    /// <summary>r50k_base.tiktoken: one "base64(bytes) rank" line per token, ranks 0..50255 in order.</summary>
    private static List<byte[]> ReadRanks()
    {
        var asm = typeof(GptEncoding).Assembly;
        string name = asm.GetManifestResourceNames().Single(n => n.EndsWith("r50k_base.tiktoken", StringComparison.Ordinal));
        using var reader = new StreamReader(asm.GetManifestResourceStream(name)!);
        var ranks = new List<byte[]>(50257);
        while (reader.ReadLine() is string line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            string[] parts = line.Split(' ');
            Assert.Equal(ranks.Count, int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
            ranks.Add(Convert.FromBase64String(parts[0]));
        }

        Assert.Equal(50256, ranks.Count);
        return ranks;
    }

    /// <summary>For each multi-byte token in rank order, its merge is the last split that rank-BPE over lower ranks reaches.</summary>
    private static List<(string Left, string Right)> DeriveMerges(List<byte[]> ranks, char[] alphabet)
    {
        var rankOf = new Dictionary<string, int>(ranks.Count, StringComparer.Ordinal);
        for (int r = 0; r < ranks.Count; r++)
        {
            rankOf[Encoding.Latin1.GetString(ranks[r])] = r;
        }

        var merges = new List<(string, string)>();
        for (int r = 0; r < ranks.Count; r++)
        {
            if (ranks[r].Length < 2)
            {
                continue;
            }

            var parts = ranks[r].Select(b => Encoding.Latin1.GetString([b])).ToList();
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (rankOf.TryGetValue(parts[i] + parts[i + 1], out int pr) && pr < r && pr < bestRank)
                    {
                        best = i;
                        bestRank = pr;
                    }
                }

                Assert.True(best >= 0, $"token {r} cannot be built from lower ranks");
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }

            merges.Add((TokenizerTestFiles.ToAlphabet(Encoding.Latin1.GetBytes(parts[0]), alphabet),
                TokenizerTestFiles.ToAlphabet(Encoding.Latin1.GetBytes(parts[1]), alphabet)));
        }

        return merges;
    }

    public void Dispose()
    {
        Directory.Delete(PairsDir, recursive: true);
        Directory.Delete(JsonDir, recursive: true);
    }
}

public sealed class Gpt2TokenizerTests(Gpt2Fixture gpt2, ITestOutputHelper output) : IClassFixture<Gpt2Fixture>
{
    [Fact]
    public void Hello_world_has_gpt2_ids()
    {
        output.WriteLine($"fixture setup {gpt2.SetupTime.TotalSeconds:F1} s");
        Assert.Equal([15496, 995], gpt2.FromJson.Encode("Hello world"));
        Assert.Equal([15496, 995], gpt2.FromPairs.Encode("Hello world"));
        Assert.Equal(50257, gpt2.FromJson.VocabSize);
        Assert.False(gpt2.FromJson.AddsBos);
        Assert.Equal(50256, gpt2.FromJson.EosId);
        Assert.Equal(" world", gpt2.FromJson.TokenText(995));
        Assert.Equal([15496, 50256, 995], gpt2.FromJson.Encode("Hello<|endoftext|> world"));
        Assert.Equal("Hello world", gpt2.FromJson.Decode([15496, 50256, 995]));
    }

    [Fact]
    public void Several_hundred_strings_match_sharptoken()
    {
        var sw = Stopwatch.StartNew();
        var strings = TestStrings();
        Assert.True(strings.Count >= 300);
        int checkedCount = 0;
        foreach (string s in strings)
        {
            int[] expected = [.. gpt2.Reference.Encode(s)];
            Assert.True(expected.SequenceEqual(gpt2.FromJson.Encode(s)), $"tokenizer.json differs from r50k_base on {JsonSerializer.Serialize(s)}");
            Assert.True(expected.SequenceEqual(gpt2.FromPairs.Encode(s)), $"vocab.json+merges.txt differs from r50k_base on {JsonSerializer.Serialize(s)}");
            Assert.Equal(s, gpt2.FromJson.Decode(expected));

            var streamed = new StringBuilder();
            for (int i = 0; i < expected.Length; i++)
            {
                streamed.Append(gpt2.FromJson.DecodeNext(expected.AsSpan(0, i), expected[i]));
            }

            Assert.Equal(s, streamed.ToString());
            checkedCount++;
        }

        output.WriteLine($"{checkedCount} strings match r50k_base in {sw.Elapsed.TotalSeconds:F2} s (fixture {gpt2.SetupTime.TotalSeconds:F1} s)");
    }

    [Fact]
    public void Agrees_with_microsoft_ml_codegen_bpe_on_the_same_files()
    {
        // A second, independent reading of vocab.json + merges.txt: Microsoft.ML.Tokenizers' GPT-2-style CodeGen BPE.
        // CodeGen adds its own ids 50257+ for runs of 2..n spaces/tabs, which GPT-2 lacks (GPT-2 spells "  " as 220 220),
        // so strings with whitespace runs are left to the r50k_base comparison above.
        using var vocab = File.OpenRead(Path.Combine(gpt2.PairsDir, "vocab.json"));
        using var merges = File.OpenRead(Path.Combine(gpt2.PairsDir, "merges.txt"));
        var ml = Microsoft.ML.Tokenizers.CodeGenTokenizer.Create(vocab, merges, addPrefixSpace: false, addBeginOfSentence: false, addEndOfSentence: false);
        var direct = TokenizerLoader.Load(Path.Combine(gpt2.PairsDir, "vocab.json"));
        var differ = new List<string>();
        int compared = 0;
        foreach (string s in TestStrings().Where(t => !System.Text.RegularExpressions.Regex.IsMatch(t, @"\s\s")))
        {
            compared++;
            var theirs = ml.EncodeToIds(s);
            if (!theirs.SequenceEqual(direct.Encode(s)))
            {
                differ.Add($"{JsonSerializer.Serialize(s)}: ML [{string.Join(",", theirs)}] ours [{string.Join(",", direct.Encode(s))}] r50k [{string.Join(",", gpt2.Reference.Encode(s))}]");
            }
        }

        output.WriteLine($"{compared} strings compared; differences:\n" + string.Join("\n", differ));
        Assert.True(compared >= 150);
        Assert.Empty(differ);
    }

    private static List<string> TestStrings()
    {
        var list = new List<string>
        {
            "Hello world", "", " ", "  ", "\n", "\n\n\n", "\t\tTabs\tand  spaces   ", "trailing space ", " leading space",
            "It's, we're, they've, I'm, you'll, he'd, don't", "IT'S LOUD", "rock'n'roll", "'quoted'",
            "1234567890", "3.14159 and 2,718", "Numbers: 42, 007, 1e10, -5", "1 2 3  4   5",
            "naïve café résumé", "Größe straße", "日本語のテキスト", "中文字符测试", "한국어", "Ελληνικά", "Русский текст", "עברית", "العربية",
            "emoji 🙂🙃 and 👍🏽 and 👨‍👩‍👧", "🚀", "math ∑∫√∞ ≠ ≤", "quotes “curly” ‘single’ — dash – en",
            "line one\nline two\r\nline three", "code: for (int i = 0; i < n; i++) { x += y; }", "<html><body>Hi</body></html>",
            "https://example.com/path?q=1&r=2#frag", "snake_case camelCase PascalCase kebab-case", "!!!???...,,,;;;", "a", "ab", "abc",
            "The quick brown fox jumps over the lazy dog.", "    indented code\n        more", "mixed\u00a0nbsp\u2009thin", "zero\u200bwidth",
            "Once upon a time, there was a little girl named Lily.",
        };

        string[] pieces =
        [
            "the", " The", "Hello", " world", "'s", "'ll", "n't", " 123", "4567", "  ", "\n", "\t", "é", "ñ", "ü", "中", "🙂", "👍🏽",
            ",", ".", "!", "?", " -", "--", "(x)", " [a]", "{b}", " \"q\"", "$9.99", "%", "@user", "#tag", " ", "\r\n", "ς", "ß", "Ω",
            "über", " naïve", "A", "Z", "ok", "OK", " 0", "99", "x²", "½", "™", "\u3000", "ー", "カタカナ",
        ];
        var rng = new Random(12345);
        while (list.Count < 320)
        {
            int n = rng.Next(1, 12);
            var sb = new StringBuilder();
            for (int i = 0; i < n; i++)
            {
                sb.Append(pieces[rng.Next(pieces.Length)]);
            }

            list.Add(sb.ToString());
        }

        return list;
    }
}
