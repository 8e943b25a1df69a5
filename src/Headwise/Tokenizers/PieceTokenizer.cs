using System.Text;

namespace Headwise.Tokenizers;

/// <summary>How a decoder treats the space that an encoder's dummy prefix / leading ▁ put in front of the text.</summary>
internal enum LeadingSpaceRule
{
    /// <summary>Keep every byte (byte-level BPE).</summary>
    Keep,

    /// <summary>Drop one leading space of the decoded text (Hugging Face <c>Strip</c> / <c>Metaspace</c> decoders).</summary>
    StripAtStart,

    /// <summary>Drop a token's leading space when the token right before it is BOS (llama2.c).</summary>
    StripAfterBos,
}

/// <summary>
/// A tokenizer whose every id stands for a fixed byte string, so decoding is concatenation followed by UTF-8 decoding.
/// Gives exact streaming (<see cref="DecodeNext"/>) that looks only at a short window of previous ids and never emits half a character.
/// </summary>
internal abstract class PieceTokenizer : TextTokenizer
{
    private const int StreamWindow = 8;

    /// <summary>Bytes each id decodes to.</summary>
    protected byte[][] Pieces { get; init; } = [];

    /// <summary>Ids that Decode skips (BOS, EOS, added special tokens, unk of llama2.c).</summary>
    protected bool[] Special { get; init; } = [];

    protected LeadingSpaceRule SpaceRule { get; init; }

    public override int VocabSize => Pieces.Length;

    public override string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        AppendBytes(ids, 0, -1, bytes);
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    public override string DecodeNext(ReadOnlySpan<int> previous, int id)
    {
        int from = Math.Max(0, previous.Length - StreamWindow);
        var bytes = new List<byte>();
        AppendBytes(previous, from, -1, bytes);
        int beforeLength = bytes.Count;
        AppendBytes(previous, previous.Length, id, bytes);
        var all = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes);
        int completeBefore = CompletePrefixLength(all[..beforeLength]);
        int completeAfter = CompletePrefixLength(all);
        string before = Encoding.UTF8.GetString(all[..completeBefore]);
        string after = Encoding.UTF8.GetString(all[..completeAfter]);
        return after.StartsWith(before, StringComparison.Ordinal) ? after[before.Length..] : after;
    }

    /// <summary>
    /// Appends the bytes of <paramref name="ids"/>[<paramref name="from"/>..] and then of <paramref name="extra"/> (when ≥ 0),
    /// treating the whole of <paramref name="ids"/> as context for the leading-space rule.
    /// </summary>
    private void AppendBytes(ReadOnlySpan<int> ids, int from, int extra, List<byte> sink)
    {
        bool emitted = false;
        if (SpaceRule == LeadingSpaceRule.StripAtStart)
        {
            for (int i = 0; i < from && !emitted; i++)
            {
                int id = Check(ids[i]);
                emitted = !Special[id] && Pieces[id].Length > 0;
            }
        }

        int count = ids.Length + (extra >= 0 ? 1 : 0);
        for (int i = from; i < count; i++)
        {
            int id = Check(i < ids.Length ? ids[i] : extra);
            if (Special[id])
            {
                continue;
            }

            byte[] piece = Pieces[id];
            int skip = 0;
            if (piece.Length > 0 && piece[0] == (byte)' ')
            {
                if (SpaceRule == LeadingSpaceRule.StripAtStart && !emitted)
                {
                    skip = 1;
                }
                else if (SpaceRule == LeadingSpaceRule.StripAfterBos && i > 0 && ids[i - 1] == BosId)
                {
                    skip = 1;
                }
            }

            for (int k = skip; k < piece.Length; k++)
            {
                sink.Add(piece[k]);
            }

            emitted |= piece.Length > 0;
        }
    }

    private int Check(int id) =>
        (uint)id < (uint)Pieces.Length ? id : throw new InvalidInputException($"Token id {id} is outside the vocabulary (0..{Pieces.Length - 1}).");

    /// <summary>Length of the longest prefix that does not end inside an unfinished UTF-8 sequence.</summary>
    private static int CompletePrefixLength(ReadOnlySpan<byte> bytes)
    {
        for (int back = 1; back <= 3 && back <= bytes.Length; back++)
        {
            byte b = bytes[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue; // continuation byte: keep looking for the lead
            }

            int need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
            return need > back ? bytes.Length - back : bytes.Length;
        }

        return bytes.Length;
    }

    /// <summary>Display text for a byte string: the text itself when it is valid UTF-8, else each byte as &lt;0xNN&gt;.</summary>
    protected static string DisplayBytes(byte[] bytes)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return string.Concat(bytes.Select(b => $"<0x{b:X2}>"));
        }
    }
}
