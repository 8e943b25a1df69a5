using Microsoft.ML.Tokenizers;

namespace Headwise.Tokenizers;

/// <summary>SentencePiece <c>tokenizer.model</c> (protobuf), encoded and decoded by Microsoft.ML.Tokenizers' SentencePiece support.</summary>
internal sealed class SentencePieceModelTokenizer : TextTokenizer
{
    private const int StreamWindow = 8;

    private readonly SentencePieceTokenizer _sp;
    private readonly string[] _tokens;
    private readonly HashSet<int> _special;

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

        for (int i = 0; i < size; i++)
        {
            _tokens[i] ??= "";
        }

        _special = [sp.BeginningOfSentenceId, sp.EndOfSentenceId, sp.UnknownId];
        if (sp.SpecialTokens is not null)
        {
            _special.UnionWith(sp.SpecialTokens.Values);
        }
    }

    public static SentencePieceModelTokenizer Load(string path, int? bosId, int? eosId, bool? addBos)
    {
        SentencePieceTokenizer sp;
        try
        {
            using var stream = File.OpenRead(path);
            sp = LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read SentencePiece model ({e.Message}).", e);
        }
        catch (Exception e) when (e is not HeadwiseException)
        {
            throw new ModelFormatException($"{path}: not a usable SentencePiece tokenizer.model ({e.GetType().Name}: {e.Message}).", e);
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

    public override string DecodeNext(ReadOnlySpan<int> previous, int id) =>
        base.DecodeNext(previous[Math.Max(0, previous.Length - StreamWindow)..], id);

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
