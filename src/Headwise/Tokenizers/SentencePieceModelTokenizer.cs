using Microsoft.ML.Tokenizers;

namespace Headwise.Tokenizers;

/// <summary>SentencePiece <c>tokenizer.model</c> (protobuf), encoded and decoded by Microsoft.ML.Tokenizers' SentencePiece support.</summary>
internal sealed class SentencePieceModelTokenizer : TextTokenizer
{
    private const int StreamWindow = 8;

    private readonly SentencePieceTokenizer _sp;
    private readonly string[] _tokens;
    private readonly HashSet<int> _special;
    private readonly int[] _byteValue; // the byte of a <0xNN> piece, else -1

    private SentencePieceModelTokenizer(SentencePieceTokenizer sp)
    {
        _sp = sp;
        int size = 0;
        foreach (int id in sp.Vocabulary.Values)
        {
            size = Math.Max(size, id + 1);
        }

        _tokens = new string[size];
        foreach (var (token, id) in sp.Vocabulary)
        {
            _tokens[id] = token;
        }

        _byteValue = new int[size];
        for (int i = 0; i < size; i++)
        {
            _tokens[i] ??= "";
            string t = _tokens[i];
            _byteValue[i] = t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b) ? b : -1;
        }

        _special = [sp.BeginningOfSentenceId, sp.EndOfSentenceId, sp.UnknownId];
        if (sp.SpecialTokens is not null)
        {
            _special.UnionWith(sp.SpecialTokens.Values);
        }
    }

    public static SentencePieceModelTokenizer Load(string path, int? bosId, int? eosId, bool? addBos)
    {
        if (!File.Exists(path))
        {
            throw new ModelFormatException($"{path}: SentencePiece tokenizer.model not found.");
        }

        SentencePieceTokenizer sp;
        try
        {
            using var stream = File.OpenRead(path);
            sp = LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not HeadwiseException)
        {
            throw new ModelFormatException($"{path}: not a usable SentencePiece tokenizer.model (expected a protobuf ModelProto of a BPE model; {e.GetType().Name}: {e.Message}).", e);
        }

        return new SentencePieceModelTokenizer(sp)
        {
            BosId = bosId ?? sp.BeginningOfSentenceId,
            EosId = eosId ?? sp.EndOfSentenceId,
            AddsBos = addBos ?? true,
        };
    }

    public override int VocabSize => _tokens.Length;

    public override int[] Encode(string text, bool addSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = _sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        return addSpecial && AddsBos && BosId is int bos ? [bos, .. ids] : [.. ids];
    }

    public override string Decode(ReadOnlySpan<int> ids)
    {
        var kept = new List<int>(ids.Length);
        foreach (int id in ids)
        {
            Check(id);
            if (!_special.Contains(id) && id != BosId && id != EosId)
            {
                kept.Add(id);
            }
        }

        return _sp.Decode(kept, considerSpecialTokens: false);
    }

    /// <summary>Decodes a short window before and after <paramref name="id"/>; byte tokens that end in half a character are held back.</summary>
    public override string DecodeNext(ReadOnlySpan<int> previous, int id)
    {
        Check(id);
        int[] window = [.. previous[Math.Max(0, previous.Length - StreamWindow)..], id];
        string before = Decode(window.AsSpan(0, StableLength(window.AsSpan(0, window.Length - 1))));
        string after = Decode(window.AsSpan(0, StableLength(window)));
        return after.StartsWith(before, StringComparison.Ordinal) ? after[before.Length..] : "";
    }

    /// <summary>Number of leading ids that do not end in an unfinished UTF-8 sequence of byte tokens.</summary>
    private int StableLength(ReadOnlySpan<int> ids)
    {
        for (int back = 1; back <= 4 && back <= ids.Length; back++)
        {
            int b = _byteValue[ids[^back]];
            if (b < 0)
            {
                return ids.Length; // a text piece: everything before it is whole
            }

            if ((b & 0xC0) == 0x80)
            {
                continue;
            }

            int need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
            return need > back ? ids.Length - back : ids.Length;
        }

        return ids.Length;
    }

    public override string TokenText(int id)
    {
        Check(id);
        return _tokens[id].Replace('▁', ' ');
    }

    private void Check(int id)
    {
        if ((uint)id >= (uint)_tokens.Length)
        {
            throw new InvalidInputException($"Token id {id} is outside the vocabulary (0..{_tokens.Length - 1}).");
        }
    }
}
