using System.Text;

namespace Headwise.Tokenizers;

/// <summary>
/// llama2.c's <c>tokenizer.bin</c>: int32 max_token_length, then per token float32 score, int32 length, bytes.
/// Encodes exactly as llama2.c's <c>encode</c>: dummy-prefix space, one token per UTF-8 character (or byte tokens
/// &lt;0xNN&gt; = id 3 + byte), then repeatedly the adjacent pair whose concatenation is a token with the highest score.
/// </summary>
internal sealed class Llama2cTokenizer : PieceTokenizer
{
    private readonly string[] _tokens; // raw bytes as Latin-1 strings, so byte strings can key a dictionary
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _lookup;

    private Llama2cTokenizer(string[] tokens, float[] scores, byte[][] pieces, bool[] special)
    {
        _tokens = tokens;
        _scores = scores;
        _lookup = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
        {
            _lookup.TryAdd(tokens[i], i); // duplicates (none in practice): keep the lowest id
        }

        Pieces = pieces;
        Special = special;
        SpaceRule = LeadingSpaceRule.StripAfterBos;
    }

    public static Llama2cTokenizer Load(string path, int vocabSize, int? bosId = null, int? eosId = null)
    {
        if (vocabSize <= 0)
        {
            throw new ModelFormatException($"{path}: vocabulary size must be positive, got {vocabSize}.");
        }

        if (!File.Exists(path))
        {
            throw new ModelFormatException($"{path}: llama2.c tokenizer file not found.");
        }

        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read llama2.c tokenizer file ({e.Message}).", e);
        }

        int pos = 0;
        int ReadInt(string what)
        {
            if (data.Length - pos < 4)
            {
                throw new ModelFormatException($"{path}: truncated llama2.c tokenizer: expected {what} at byte {pos}, file has {data.Length} bytes.");
            }

            int v = BitConverter.ToInt32(data, pos);
            pos += 4;
            return v;
        }

        int maxLen = ReadInt("int32 max_token_length");
        if (maxLen <= 0 || maxLen > 1 << 16)
        {
            throw new ModelFormatException($"{path}: max_token_length {maxLen} is not plausible for a llama2.c tokenizer.");
        }

        var tokens = new string[vocabSize];
        var scores = new float[vocabSize];
        var pieces = new byte[vocabSize][];
        for (int i = 0; i < vocabSize; i++)
        {
            int scoreBits = ReadInt($"float32 score of token {i} of {vocabSize}");
            scores[i] = BitConverter.Int32BitsToSingle(scoreBits);
            int len = ReadInt($"int32 length of token {i} of {vocabSize}");
            if (len < 0 || len > maxLen)
            {
                throw new ModelFormatException($"{path}: token {i} has length {len}, outside 0..{maxLen} (max_token_length).");
            }

            if (data.Length - pos < len)
            {
                throw new ModelFormatException($"{path}: truncated llama2.c tokenizer: token {i} of {vocabSize} needs {len} bytes at byte {pos}, file has {data.Length} bytes.");
            }

            tokens[i] = Encoding.Latin1.GetString(data, pos, len);
            pos += len;
        }

        if (pos != data.Length)
        {
            throw new ModelFormatException($"{path}: {data.Length - pos} unexpected trailing bytes after {vocabSize} tokens (is the vocabulary size right?).");
        }

        var special = new bool[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            byte[] raw = Encoding.Latin1.GetBytes(tokens[i]);
            pieces[i] = TryParseByteToken(tokens[i], out byte b) ? [b] : raw;
        }

        int bos = bosId ?? 1;
        int eos = eosId ?? 2;
        foreach (int s in new[] { 0, bos, eos })
        {
            if ((uint)s < (uint)vocabSize)
            {
                special[s] = true;
            }
        }

        return new Llama2cTokenizer(tokens, scores, pieces, special) { BosId = bos, EosId = eos, AddsBos = true };
    }

    private static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
    }

    public override int[] Encode(string text, bool addSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new List<int>(text.Length + 2);
        if (addSpecial && AddsBos && BosId is int bos)
        {
            result.Add(bos);
        }

        if (text.Length == 0)
        {
            return [.. result];
        }

        var symbols = new List<int>(text.Length + 1);
        if (_lookup.TryGetValue(" ", out int space))
        {
            symbols.Add(space);
        }

        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        int i = 0;
        while (i < utf8.Length)
        {
            // llama2.c groups a byte with up to three following continuation bytes.
            int end = i + 1;
            while (end < utf8.Length && (utf8[end] & 0xC0) == 0x80 && end - i < 4)
            {
                end++;
            }

            if (_lookup.TryGetValue(Encoding.Latin1.GetString(utf8, i, end - i), out int id))
            {
                symbols.Add(id);
            }
            else
            {
                for (int k = i; k < end; k++)
                {
                    symbols.Add(utf8[k] + 3);
                }
            }

            i = end;
        }

        BpeMerger.Merge(symbols, LookupPair, result);
        return [.. result];
    }

    private bool LookupPair(int left, int right, out double priority, out int merged)
    {
        if (_lookup.TryGetValue(string.Concat(_tokens[left], _tokens[right]), out merged))
        {
            priority = -_scores[merged];
            return true;
        }

        priority = 0;
        return false;
    }

    public override string TokenText(int id)
    {
        if ((uint)id >= (uint)_tokens.Length)
        {
            throw new InvalidInputException($"Token id {id} is outside the vocabulary (0..{_tokens.Length - 1}).");
        }

        return TryParseByteToken(_tokens[id], out _) ? _tokens[id] : DisplayBytes(Encoding.Latin1.GetBytes(_tokens[id]));
    }
}
