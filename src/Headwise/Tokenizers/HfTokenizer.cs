using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace Headwise.Tokenizers;

/// <summary>A token matched in the raw text before normalization and never split (Hugging Face <c>added_tokens</c>).</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip);

/// <summary>Everything read from a <c>tokenizer.json</c> (or vocab.json + merges.txt), before BOS/EOS settings are applied.</summary>
internal sealed class HfTokenizerData
{
    public required string Source { get; init; }

    public required BpeModel Model { get; init; }

    public List<AddedToken> Added { get; init; } = [];

    /// <summary>Normalizer steps, applied to each segment between added tokens.</summary>
    public List<Func<string, string>> Normalizers { get; init; } = [];

    /// <summary>Pre-tokenizer steps; the flag says whether the segment starts the text.</summary>
    public List<Func<List<string>, bool, List<string>>> PreTokenizers { get; init; } = [];

    public TokenDecoding Decoding { get; init; }

    public List<int> TemplatePrefix { get; init; } = [];

    public List<int> TemplateSuffix { get; init; } = [];
}

/// <summary>How token strings turn back into bytes.</summary>
internal readonly record struct TokenDecoding(bool ByteLevel, bool Metaspace, bool ByteFallback, bool StripLeadingSpace);

/// <summary>Hugging Face BPE tokenizer (byte-level as GPT-2 / Llama-3 / Qwen2, or SentencePiece-style with byte fallback as Llama-2 / Mistral).</summary>
internal sealed class HfTokenizer : PieceTokenizer
{
    private const int MaxCachedWords = 100_000;
    private const int MaxCachedWordLength = 64;

    /// <summary>Ids above this are refused: each id up to the largest costs a table slot, and no real vocabulary comes near.</summary>
    private const int MaxId = (1 << 22) - 1;

    private readonly HfTokenizerData _data;
    private readonly int[] _prefix;
    private readonly int[] _suffix;
    private readonly string[] _tokenStrings;
    private readonly Dictionary<char, AddedToken[]> _addedByFirstChar;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public HfTokenizer(HfTokenizerData data, int[] prefix, int[] suffix)
    {
        _data = data;
        _prefix = prefix;
        _suffix = suffix;
        int CheckedId(int id, string token) => id is >= 0 and <= MaxId ? id
            : throw new ModelFormatException($"{data.Source}: token \"{token}\" has id {id}, outside 0..{MaxId}.");
        int size = 0;
        foreach (var (token, id) in data.Model.Vocab)
        {
            size = Math.Max(size, CheckedId(id, token) + 1);
        }

        foreach (var a in data.Added)
        {
            size = Math.Max(size, CheckedId(a.Id, a.Content) + 1);
        }

        foreach (int id in data.TemplatePrefix.Concat(data.TemplateSuffix))
        {
            if ((uint)id >= (uint)size)
            {
                throw new ModelFormatException($"{data.Source}: the post-processor adds id {id}, outside the vocabulary of {size} tokens.");
            }
        }

        _tokenStrings = new string[size];
        var pieces = new byte[size][];
        var special = new bool[size];
        foreach (var (token, id) in data.Model.Vocab)
        {
            _tokenStrings[id] = token;
            pieces[id] = TokenBytes(token, data.Decoding);
        }

        foreach (var a in data.Added)
        {
            _tokenStrings[a.Id] = a.Content;
            pieces[a.Id] = Encoding.UTF8.GetBytes(a.Content);
            special[a.Id] = a.Special;
        }

        for (int i = 0; i < size; i++)
        {
            _tokenStrings[i] ??= "";
            pieces[i] ??= [];
        }

        Pieces = pieces;
        Special = special;
        SpaceRule = data.Decoding.StripLeadingSpace ? LeadingSpaceRule.StripAtStart : LeadingSpaceRule.Keep;
        _addedByFirstChar = data.Added
            .Where(a => a.Content.Length > 0)
            .GroupBy(a => a.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(a => a.Content.Length).ToArray());
    }

    private static byte[] TokenBytes(string token, TokenDecoding decoding)
    {
        if (decoding.ByteFallback && token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b))
        {
            return [b];
        }

        if (decoding.ByteLevel)
        {
            return ByteLevelAlphabet.Decode(token);
        }

        return Encoding.UTF8.GetBytes(decoding.Metaspace ? token.Replace('▁', ' ') : token);
    }

    public override int[] Encode(string text, bool addSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecial)
        {
            ids.AddRange(_prefix);
        }

        int start = 0; // start of the pending plain-text segment
        int i = 0;
        while (i < text.Length)
        {
            var match = MatchAdded(text, i);
            if (match is null)
            {
                i++;
                continue;
            }

            int segEnd = i;
            if (match.LStrip)
            {
                while (segEnd > start && char.IsWhiteSpace(text[segEnd - 1]))
                {
                    segEnd--;
                }
            }

            EncodeSegment(text, start, segEnd, ids);
            ids.Add(match.Id);
            i += match.Content.Length;
            if (match.RStrip)
            {
                while (i < text.Length && char.IsWhiteSpace(text[i]))
                {
                    i++;
                }
            }

            start = i;
        }

        EncodeSegment(text, start, text.Length, ids);
        if (addSpecial)
        {
            ids.AddRange(_suffix);
        }

        return [.. ids];
    }

    private AddedToken? MatchAdded(string text, int pos)
    {
        if (!_addedByFirstChar.TryGetValue(text[pos], out var candidates))
        {
            return null;
        }

        foreach (var a in candidates)
        {
            if (string.CompareOrdinal(text, pos, a.Content, 0, a.Content.Length) == 0)
            {
                return a;
            }
        }

        return null;
    }

    private void EncodeSegment(string text, int start, int end, List<int> ids)
    {
        if (end <= start)
        {
            return;
        }

        string s = text[start..end];
        foreach (var n in _data.Normalizers)
        {
            s = n(s);
        }

        var pieces = new List<string> { s };
        foreach (var p in _data.PreTokenizers)
        {
            pieces = p(pieces, start == 0);
        }

        foreach (string piece in pieces)
        {
            if (piece.Length == 0)
            {
                continue;
            }

            if (_cache.TryGetValue(piece, out int[]? cached))
            {
                ids.AddRange(cached);
                continue;
            }

            var word = new List<int>();
            _data.Model.EncodeWord(piece, word);
            if (piece.Length <= MaxCachedWordLength && _cache.Count < MaxCachedWords)
            {
                _cache.TryAdd(piece, [.. word]);
            }

            ids.AddRange(word);
        }
    }

    public override string TokenText(int id)
    {
        if ((uint)id >= (uint)_tokenStrings.Length)
        {
            throw new InvalidInputException($"Token id {id} is outside the vocabulary (0..{_tokenStrings.Length - 1}).");
        }

        string token = _tokenStrings[id];
        if (Special[id] || (_data.Decoding.ByteFallback && Pieces[id].Length == 1 && token.StartsWith("<0x", StringComparison.Ordinal)))
        {
            return token;
        }

        return DisplayBytes(Pieces[id]);
    }
}
