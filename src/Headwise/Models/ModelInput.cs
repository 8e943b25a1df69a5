namespace Headwise.Models;

/// <summary>
/// Token ids [batch, pos] (row-major) and an optional attention mask [batch, pos] (1 = token, 0 = padding).
/// Padding may sit on the left or the right; position ids count only the real tokens, as Hugging Face's generate does.
/// A vision model's input is <see cref="Image"/>: the pixels, with placeholder ids (0) for its positions.
/// </summary>
public sealed record ModelInput(int[] Tokens, int Batch, int SeqLen, byte[]? AttentionMask = null)
{
    /// <summary>The images of a vision model's input (<see cref="Image"/>); null for token ids.</summary>
    public ImagePixels? Pixels { get; init; }

    /// <summary>Images for a vision model (<see cref="Loading.ModelConfig.Vision"/>): one position for the CLS and one per
    /// patch, SeqLen = 1 + (height / patch)·(width / patch). Refuses sizes that are not whole patches or channel counts
    /// the model does not read.</summary>
    public static ModelInput Image(ImagePixels pixels, Loading.VisionConfig vision)
    {
        pixels.Validate();
        int p = vision.PatchSize;
        if (pixels.Channels != vision.Channels)
        {
            throw new InvalidInputException($"images have {pixels.Channels} channels; the model reads {vision.Channels} (num_channels)");
        }
        if (pixels.Height % p != 0 || pixels.Width % p != 0)
        {
            throw new InvalidInputException($"an image of {pixels.Height}×{pixels.Width} pixels is not a whole number of {p}×{p} patches: "
                + $"the position embeddings cannot be interpolated to it (resize it to a multiple of {p}, e.g. {vision.ImageSize}×{vision.ImageSize})");
        }
        int T = 1 + pixels.Height / p * (pixels.Width / p);
        return new ModelInput(new int[pixels.Batch * T], pixels.Batch, T) { Pixels = pixels };
    }

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

/// <summary>Preprocessed images, pixel values [batch, channels, height, width] row-major: what a Hugging Face image
/// processor returns as <c>pixel_values</c> (Vision/ImagePreprocessor.cs makes them from files).</summary>
public sealed record ImagePixels(float[] Data, int Batch, int Channels, int Height, int Width)
{
    internal void Validate()
    {
        if (Batch <= 0 || Channels <= 0 || Height <= 0 || Width <= 0 || Data.LongLength != (long)Batch * Channels * Height * Width)
        {
            throw new InvalidInputException($"{Data.LongLength} pixel values do not fill [batch {Batch}, channels {Channels}, height {Height}, width {Width}]");
        }
    }
}
