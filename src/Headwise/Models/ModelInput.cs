namespace Headwise.Models;

/// <summary>
/// Token ids [batch, pos] (row-major) and an optional attention mask [batch, pos] (1 = token, 0 = padding).
/// Padding may sit on the left or the right; position ids count only the real tokens, as Hugging Face's generate does.
/// </summary>
public sealed record ModelInput(int[] Tokens, int Batch, int SeqLen, byte[]? AttentionMask = null)
{
    /// <summary>One unpadded sequence.</summary>
    public static ModelInput Single(params int[] tokens) => new(tokens, 1, tokens.Length);

    /// <summary>Several sequences of different lengths, padded to the longest (left padding for generation, right otherwise).</summary>
    public static ModelInput Padded(IReadOnlyList<int[]> sequences, bool padLeft, int padId = 0)
    {
        int T = sequences.Max(s => s.Length);
        int B = sequences.Count;
        var tokens = new int[B * T];
        var mask = new byte[B * T];
        for (int b = 0; b < B; b++)
        {
            var s = sequences[b];
            int start = padLeft ? T - s.Length : 0;
            for (int t = 0; t < T; t++)
            {
                bool real = t >= start && t < start + s.Length;
                tokens[b * T + t] = real ? s[t - start] : padId;
                mask[b * T + t] = real ? (byte)1 : (byte)0;
            }
        }
        return new ModelInput(tokens, B, T, mask);
    }

    internal void Validate(int vocabSize)
    {
        if (Batch <= 0 || SeqLen <= 0)
        {
            throw new InvalidInputException($"input must have at least one sequence and one position (got batch {Batch}, length {SeqLen})");
        }
        if (Tokens.Length != Batch * SeqLen)
        {
            throw new InvalidInputException($"{Tokens.Length} token ids do not fill [batch {Batch}, pos {SeqLen}]");
        }
        if (AttentionMask is not null && AttentionMask.Length != Tokens.Length)
        {
            throw new InvalidInputException($"attention mask has {AttentionMask.Length} entries; the tokens have {Tokens.Length}");
        }
        for (int i = 0; i < Tokens.Length; i++)
        {
            if ((uint)Tokens[i] >= (uint)vocabSize && (AttentionMask is null || AttentionMask[i] != 0))
            {
                throw new InvalidInputException($"token id {Tokens[i]} (batch {i / SeqLen}, position {i % SeqLen}) is outside the vocabulary [0, {vocabSize})");
            }
        }
    }
}
