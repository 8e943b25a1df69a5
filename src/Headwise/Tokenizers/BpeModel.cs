using System.Text;

namespace Headwise.Tokenizers;

/// <summary>A Hugging Face style BPE model: vocabulary, ranked merges, optional byte fallback and unknown token.</summary>
internal sealed class BpeModel
{
    private readonly Dictionary<long, (int Rank, int Merged)> _merges;
    private readonly int[] _byteTokens; // id of <0xNN> per byte, -1 when absent

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string source,
        bool byteFallback = false, string? unkToken = null, bool fuseUnk = false, bool ignoreMerges = false)
    {
        Vocab = vocab;
        ByteFallback = byteFallback;
        FuseUnk = fuseUnk;
        IgnoreMerges = ignoreMerges;
        UnkId = unkToken is not null && vocab.TryGetValue(unkToken, out int u) ? u : null;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (l, r) = merges[rank];
            if (!vocab.TryGetValue(l, out int li) || !vocab.TryGetValue(r, out int ri))
            {
                throw new ModelFormatException($"{source}: merge {rank} \"{l} {r}\" uses a token that is not in the vocabulary.");
            }

            if (!vocab.TryGetValue(l + r, out int mi))
            {
                throw new ModelFormatException($"{source}: merge {rank} \"{l} {r}\" produces \"{l + r}\", which is not in the vocabulary.");
            }

            _merges.TryAdd(Key(li, ri), (rank, mi));
        }

        _byteTokens = new int[256];
        for (int b = 0; b < 256; b++)
        {
            _byteTokens[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }
    }

    public Dictionary<string, int> Vocab { get; }

    public bool ByteFallback { get; }

    public bool FuseUnk { get; }

    public bool IgnoreMerges { get; }

    public int? UnkId { get; }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    private bool Lookup(int left, int right, out double priority, out int merged)
    {
        if (_merges.TryGetValue(Key(left, right), out var m))
        {
            priority = m.Rank;
            merged = m.Merged;
            return true;
        }

        priority = 0;
        merged = -1;
        return false;
    }

    /// <summary>Encodes one pre-tokenized word, appending ids.</summary>
    public void EncodeWord(string word, List<int> output)
    {
        if (word.Length == 0)
        {
            return;
        }

        if (IgnoreMerges && Vocab.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }

        var symbols = new List<int>(word.Length);
        Span<byte> utf8 = stackalloc byte[4];
        bool lastWasUnk = false;
        foreach (Rune rune in word.EnumerateRunes())
        {
            string s = rune.ToString();
            if (Vocab.TryGetValue(s, out int id))
            {
                symbols.Add(id);
                lastWasUnk = false;
                continue;
            }

            int n = rune.EncodeToUtf8(utf8);
            bool allBytes = ByteFallback;
            for (int k = 0; k < n && allBytes; k++)
            {
                allBytes = _byteTokens[utf8[k]] >= 0;
            }

            if (allBytes)
            {
                for (int k = 0; k < n; k++)
                {
                    symbols.Add(_byteTokens[utf8[k]]);
                }

                lastWasUnk = false;
            }
            else if (UnkId is int unk)
            {
                if (!(FuseUnk && lastWasUnk))
                {
                    symbols.Add(unk);
                }

                lastWasUnk = true;
            }
        }

        BpeMerger.Merge(symbols, Lookup, output);
    }
}
