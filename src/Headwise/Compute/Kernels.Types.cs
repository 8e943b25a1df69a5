namespace Headwise.Compute;

/// <summary>Which pairs of dimensions RoPE rotates together.</summary>
public enum RopeLayout
{
    /// <summary>Hugging Face "rotate half": pairs (i, i + R/2) — Llama, Mistral, Qwen2, GPT-NeoX checkpoints.</summary>
    RotateHalf,
    /// <summary>Adjacent pairs (2i, 2i + 1) — llama2.c, GPT-J, Meta's original Llama code.</summary>
    Interleaved,
}

public static partial class Kernels
{
    /// <summary>The attention mask rule shared by every attention kernel: causal in key-index space, padding, sliding window.</summary>
    public static bool IsVisible(int t, int j, int pastLen, ReadOnlySpan<byte> keyMask, int window)
    {
        int qIndex = pastLen + t;
        return j <= qIndex && (keyMask.IsEmpty || keyMask[j] != 0) && (window <= 0 || qIndex - j < window);
    }

    /// <summary>cos/sin tables for RoPE: (maxPos, R/2), θ_i = pos · base^(−2i/R), computed in float32 like the reference code.</summary>
    public static (float[] Cos, float[] Sin) RopeTables(int maxPos, int rotaryDims, double theta) =>
        RopeTables(maxPos, [.. Enumerable.Range(0, rotaryDims / 2)], rotaryDims, theta);

    /// <summary>cos/sin tables (maxPos, pairs) whose column i holds frequency <paramref name="frequencies"/>[i] of a
    /// <paramref name="rotaryDims"/>-dim table: θ_i = pos · base^(−2f/R). An MLA conversion's shared rotary key gathers
    /// the source heads' pairs this way (several pairs may share a frequency).</summary>
    public static (float[] Cos, float[] Sin) RopeTables(int maxPos, int[] frequencies, int rotaryDims, double theta)
    {
        int half = frequencies.Length;
        var cos = new float[maxPos * half];
        var sin = new float[maxPos * half];
        for (int i = 0; i < half; i++)
        {
            // HF: inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)) — float32
            float invFreq = (float)(1.0 / Math.Pow(theta, (float)(2 * frequencies[i]) / rotaryDims));
            for (int p = 0; p < maxPos; p++)
            {
                float angle = p * invFreq; // float32 product, as torch.outer(t, inv_freq)
                cos[p * half + i] = MathF.Cos(angle);
                sin[p * half + i] = MathF.Sin(angle);
            }
        }
        return (cos, sin);
    }
}
