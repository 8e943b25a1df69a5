using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Headwise.Tokenizers;

namespace Headwise.Training;

/// <summary>A trained byte-level BPE vocabulary: GPT-2's 256-character byte alphabet, then one token per merge, then specials.</summary>
public sealed record BpeVocabulary(IReadOnlyList<string> Tokens, IReadOnlyList<(string Left, string Right)> Merges, IReadOnlyList<string> Specials)
{
    /// <summary>Writes a Hugging Face <c>tokenizer.json</c> (BPE model, ByteLevel pre-tokenizer with GPT-2's regex, ByteLevel decoder).</summary>
    public void WriteTokenizerJson(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        for (int i = 0; i < Specials.Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("id", Tokens.Count + i);
            w.WriteString("content", Specials[i]);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", true);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteNull("normalizer");
        w.WriteStartObject("pre_tokenizer");
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", true);
        w.WriteEndObject();
        w.WriteNull("post_processor");
        w.WriteStartObject("decoder");
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", true);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", true);
        w.WriteEndObject();
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        w.WriteNull("unk_token");
        w.WriteNull("continuing_subword_prefix");
        w.WriteNull("end_of_word_suffix");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteStartObject("vocab");
        for (int i = 0; i < Tokens.Count; i++)
        {
            w.WriteNumber(Tokens[i], i);
        }

        for (int i = 0; i < Specials.Count; i++)
        {
            w.WriteNumber(Specials[i], Tokens.Count + i);
        }

        w.WriteEndObject();
        w.WriteStartArray("merges");
        foreach (var (l, r) in Merges)
        {
            w.WriteStringValue(l + " " + r);
        }

        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }
}

/// <summary>
/// Learns a GPT-2 style byte-level BPE from text: split with GPT-2's pre-tokenization regex, map each piece's UTF-8 bytes
/// to the printable byte alphabet, then repeatedly merge the most frequent adjacent pair (ties: the ordinally smallest
/// pair), never across pieces. Deterministic: the same text and size give the same merges.
/// </summary>
public static class BpeTrainer
{
    private static readonly Regex Pretokenizer = new(HfTokenizerJson.Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    /// <summary>Learns merges until the vocabulary (256 bytes + merges, specials not counted) has <paramref name="vocabSize"/> tokens or no pair occurs twice.</summary>
    public static BpeVocabulary Train(string text, int vocabSize, IReadOnlyList<string>? specials = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (vocabSize < 256)
        {
            throw new InvalidInputException($"--vocab-size: {vocabSize} is below the 256 byte tokens a byte-level BPE needs.");
        }

        // Unique pieces with their counts.
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match m in Pretokenizer.Matches(text))
        {
            string piece = ByteLevelAlphabet.Encode(m.Value);
            counts[piece] = counts.GetValueOrDefault(piece) + 1;
        }

        var tokens = new List<string>(vocabSize);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++)
        {
            string s = ByteLevelAlphabet.ByteToChar[b].ToString();
            ids[s] = tokens.Count;
            tokens.Add(s);
        }

        // Words as id sequences, in a fixed (ordinal) order for determinism.
        var keys = counts.Keys.ToArray();
        Array.Sort(keys, StringComparer.Ordinal);
        var words = new List<int>[keys.Length];
        var freq = new int[keys.Length];
        for (int w = 0; w < keys.Length; w++)
        {
            words[w] = [.. keys[w].Select(c => ids[c.ToString()])];
            freq[w] = counts[keys[w]];
        }

        var pairCount = new Dictionary<(int, int), long>();
        var pairWords = new Dictionary<(int, int), HashSet<int>>();
        for (int w = 0; w < words.Length; w++)
        {
            AddPairs(words[w], w, freq[w], +1, pairCount, pairWords);
        }

        var merges = new List<(string, string)>();
        while (tokens.Count < vocabSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            (int, int) best = default;
            long bestCount = 1;
            bool found = false;
            foreach (var (pair, c) in pairCount)
            {
                if (c > bestCount || (c == bestCount && found && ComparePairs(pair, best, tokens) < 0))
                {
                    best = pair;
                    bestCount = c;
                    found = true;
                }
            }

            if (!found)
            {
                break;
            }

            string merged = tokens[best.Item1] + tokens[best.Item2];
            merges.Add((tokens[best.Item1], tokens[best.Item2]));
            if (!ids.TryGetValue(merged, out int newId))
            {
                // Two merge paths can spell the same string: keep one token for it, as Hugging Face's trainer does.
                newId = tokens.Count;
                tokens.Add(merged);
                ids[merged] = newId;
            }

            foreach (int w in pairWords[best].ToArray())
            {
                var word = words[w];
                AddPairs(word, w, freq[w], -1, pairCount, pairWords);
                var next = new List<int>(word.Count);
                for (int i = 0; i < word.Count; i++)
                {
                    if (i + 1 < word.Count && word[i] == best.Item1 && word[i + 1] == best.Item2)
                    {
                        next.Add(newId);
                        i++;
                    }
                    else
                    {
                        next.Add(word[i]);
                    }
                }

                words[w] = next;
                AddPairs(next, w, freq[w], +1, pairCount, pairWords);
            }
        }

        return new BpeVocabulary(tokens, merges, specials ?? ["<|endoftext|>"]);
    }

    private static int ComparePairs((int, int) a, (int, int) b, List<string> tokens)
    {
        int c = string.CompareOrdinal(tokens[a.Item1], tokens[b.Item1]);
        return c != 0 ? c : string.CompareOrdinal(tokens[a.Item2], tokens[b.Item2]);
    }

    private static void AddPairs(List<int> word, int w, int f, int sign, Dictionary<(int, int), long> pairCount, Dictionary<(int, int), HashSet<int>> pairWords)
    {
        for (int i = 0; i + 1 < word.Count; i++)
        {
            var p = (word[i], word[i + 1]);
            long c = pairCount.GetValueOrDefault(p) + (sign * (long)f);
            if (c <= 0)
            {
                pairCount.Remove(p);
                pairWords.Remove(p);
                continue;
            }

            pairCount[p] = c;
            if (sign > 0)
            {
                if (!pairWords.TryGetValue(p, out var set))
                {
                    pairWords[p] = set = [];
                }

                set.Add(w);
            }
        }
    }
}
