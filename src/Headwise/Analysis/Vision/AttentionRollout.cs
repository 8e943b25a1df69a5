namespace Headwise.Analysis.Vision;

/// <summary>
/// Attention rollout (Abnar &amp; Zuidema 2020, "Quantifying Attention Flow in Transformers"): how much each input token
/// reaches each position after the layers, following attention and the residual stream together. Per layer,
/// Â_l = (mean over heads of A_l + I) / 2 with each row renormalised to sum to 1 (the residual counted as attention to
/// oneself), then R_l = Â_l · R_{l−1}, R_0 = Â_0. On a ViT, row 0 of the result is the CLS's rollout over the image
/// (position 1 + r·columns + c is the patch in row r, column c).
/// </summary>
public static class AttentionRollout
{
    /// <summary>R after layer <paramref name="throughLayer"/> (default: the last), a T × T row-major matrix: row q is how
    /// much of each input position reaches position q.</summary>
    public static float[] Compute(AttentionPatterns patterns, int throughLayer = -1)
    {
        int L = patterns.Layers, NH = patterns.Heads, T = patterns.Length;
        int last = throughLayer < 0 ? L - 1 : throughLayer;
        if (L == 0 || last >= L)
        {
            throw new InvalidInputException($"rollout through layer {last}: the patterns have {L} layers");
        }
        var rollout = Identity(T);
        var layer = new double[T * T];
        var next = new double[T * T];
        for (int l = 0; l <= last; l++)
        {
            // Â_l = rownorm((mean_h A_l,h + I) / 2)
            Array.Clear(layer);
            foreach (var a in patterns.Patterns[l]) // (T, T) per head
            {
                for (int i = 0; i < T * T; i++)
                {
                    layer[i] += a[i] / (2.0 * NH);
                }
            }
            for (int q = 0; q < T; q++)
            {
                layer[q * T + q] += 0.5;
                var row = layer.AsSpan(q * T, T);
                double sum = 0;
                foreach (double x in row)
                {
                    sum += x;
                }
                for (int k = 0; k < T; k++)
                {
                    row[k] /= sum;
                }
            }
            // R_l = Â_l · R_{l−1}
            Array.Clear(next);
            for (int q = 0; q < T; q++)
            {
                for (int m = 0; m < T; m++)
                {
                    double w = layer[q * T + m];
                    for (int k = 0; k < T; k++)
                    {
                        next[q * T + k] += w * rollout[m * T + k];
                    }
                }
            }
            (rollout, next) = (next, rollout);
        }
        return [.. rollout.Select(x => (float)x)];
    }

    private static double[] Identity(int T)
    {
        var m = new double[T * T];
        for (int i = 0; i < T; i++)
        {
            m[i * T + i] = 1;
        }
        return m;
    }
}
