namespace Headwise.Tokenizers;

/// <summary>
/// Text ↔ token ids for one model. Implementations: Hugging Face <c>tokenizer.json</c> (byte-level BPE, SentencePiece-style BPE with byte fallback),
/// <c>vocab.json</c> + <c>merges.txt</c>, SentencePiece <c>tokenizer.model</c>, and llama2.c <c>tokenizer.bin</c>.
/// Load one with <see cref="TokenizerLoader"/>.
/// </summary>
public abstract class TextTokenizer
{
    /// <summary>Number of ids the tokenizer can produce (including added/special tokens).</summary>
    public abstract int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, if the model has one.</summary>
    public int? BosId { get; init; }

    /// <summary>End-of-sequence id, if the model has one.</summary>
    public int? EosId { get; init; }

    /// <summary>Whether <see cref="Encode"/> with <c>addSpecial: true</c> prepends BOS (Llama-2, llama2.c: yes; GPT-2: no).</summary>
    public bool AddsBos { get; init; }

    /// <summary>Encodes text to ids. With <paramref name="addSpecial"/>, prepends BOS when this tokenizer adds one.</summary>
    public abstract int[] Encode(string text, bool addSpecial = true);

    /// <summary>Decodes ids to text (special tokens such as BOS/EOS are skipped).</summary>
    public abstract string Decode(ReadOnlySpan<int> ids);

    /// <summary>The token's own text for display (byte-level tokens shown as the text they stand for, e.g. " world"; raw bytes as &lt;0x0A&gt;).</summary>
    public abstract string TokenText(int id);

    /// <summary>
    /// Text of <paramref name="id"/> when it follows <paramref name="previous"/> in a stream, for printing generated text piece by piece.
    /// Default: Decode of the pair minus Decode of the prefix.
    /// </summary>
    public virtual string DecodeNext(ReadOnlySpan<int> previous, int id)
    {
        int[] all = [.. previous.ToArray(), id];
        string before = Decode(previous);
        string after = Decode(all);
        return after.StartsWith(before, StringComparison.Ordinal) ? after[before.Length..] : Decode([id]);
    }
}
