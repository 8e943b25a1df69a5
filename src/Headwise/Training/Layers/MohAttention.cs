namespace Headwise.Training.Layers;

/// <summary>
/// moh — "MoH: Multi-Head Attention as Head-Routing Mixture-of-Experts" (Jin et al., 2024). Heads 0 .. S−1 are shared
/// (always on), heads S .. NH−1 are routed; a router W_r ((NH + 2), C) on the block's normalised input x gives, per token,
/// logits l = x·W_rᵀ and the head gates
///   g_i = α₀ · softmax(l[0..S))_i                                   for a shared head i < S
///   g_i = α₁ · softmax(l[S..NH))_i  if i is among the top-k of l[S..NH), else 0   for a routed head
///   (α₀, α₁) = softmax(l[NH], l[NH+1])                               (the paper's two-stage shared/routed balance)
/// and the attention output of head i is scaled by g_i before W_O: z'_i = g_i · z_i. As in the paper the routed softmax runs
/// over all routed heads (no renormalisation over the top-k). The top-k choice itself is not differentiable: the gradient
/// flows through the gates of the selected heads (and through the softmax normalisers, which include the unselected
/// logits), never through the selection. Ties go to the lower head index. The paper's load-balance loss is left out.
/// Every head's attention is still computed (training sizes); the saving the paper reports is not realised here.
/// </summary>
public static class MohAttention
{
    /// <summary>Router logits per token: the NH head logits, then the two α logits.</summary>
    public static int RouterWidth(int NH) => NH + 2;

    // logits: (N, NH + 2)  gates: (N, NH) out  zRaw: (N, NH, HDV)  z: (N, NH, HDV) out, z = gate · zRaw
    public static void Forward(ReadOnlySpan<float> logits, Span<float> gates, ReadOnlySpan<float> zRaw, Span<float> z,
        int N, int NH, int HDV, int S, int topK)
    {
        int W = NH + 2;
        Span<bool> chosen = stackalloc bool[NH];
        for (int n = 0; n < N; n++)
        {
            var l = logits.Slice(n * W, W);
            var g = gates.Slice(n * NH, NH);
            float a0 = MathF.Exp(l[NH] - MathF.Max(l[NH], l[NH + 1])), a1 = MathF.Exp(l[NH + 1] - MathF.Max(l[NH], l[NH + 1]));
            float alphaShared = a0 / (a0 + a1), alphaRouted = a1 / (a0 + a1);
            Softmax(l[..S], g[..S], alphaShared);
            Softmax(l[S..NH], g[S..NH], alphaRouted);
            SelectTopK(l[S..NH], chosen[..(NH - S)], topK);
            for (int i = S; i < NH; i++)
            {
                if (!chosen[i - S]) g[i] = 0;
            }
            for (int h = 0; h < NH; h++)
            {
                var zr = zRaw.Slice((n * NH + h) * HDV, HDV);
                var zo = z.Slice((n * NH + h) * HDV, HDV);
                for (int d = 0; d < HDV; d++) zo[d] = g[h] * zr[d];
            }
        }
    }

    // dz: (N, NH, HDV) → dzRaw (N, NH, HDV) overwritten, dLogits (N, NH + 2) overwritten
    public static void Backward(ReadOnlySpan<float> dz, ReadOnlySpan<float> logits, ReadOnlySpan<float> gates, ReadOnlySpan<float> zRaw,
        Span<float> dzRaw, Span<float> dLogits, int N, int NH, int HDV, int S, int topK)
    {
        int W = NH + 2;
        Span<float> dg = stackalloc float[NH];
        Span<float> p = stackalloc float[NH];
        Span<bool> chosen = stackalloc bool[NH];
        for (int n = 0; n < N; n++)
        {
            var l = logits.Slice(n * W, W);
            var g = gates.Slice(n * NH, NH);
            var dl = dLogits.Slice(n * W, W);
            // undoes z = g·zRaw:  dzRaw = g·dz,  dg = dz·zRaw
            for (int h = 0; h < NH; h++)
            {
                var dzh = dz.Slice((n * NH + h) * HDV, HDV);
                var zr = zRaw.Slice((n * NH + h) * HDV, HDV);
                var dzr = dzRaw.Slice((n * NH + h) * HDV, HDV);
                float s = 0;
                for (int d = 0; d < HDV; d++)
                {
                    dzr[d] = g[h] * dzh[d];
                    s += dzh[d] * zr[d];
                }
                dg[h] = s;
            }
            float m = MathF.Max(l[NH], l[NH + 1]);
            float e0 = MathF.Exp(l[NH] - m), e1 = MathF.Exp(l[NH + 1] - m);
            float alpha0 = e0 / (e0 + e1), alpha1 = e1 / (e0 + e1);
            // undoes g_i = α·p_i per group (p = the group's softmax, the gate 0 for unselected heads):
            // dα = Σ_i dg_i·p_i over the group's nonzero gates, dp_i = α·dg_i, dl = p ⊙ (dp − p·dp)
            chosen[..S].Fill(true);
            SelectTopK(l[S..NH], chosen[S..NH], topK);
            float dAlpha0 = GroupBackward(l[..S], chosen[..S], dg[..S], p[..S], dl[..S], alpha0);
            float dAlpha1 = GroupBackward(l[S..NH], chosen[S..NH], dg[S..NH], p[S..NH], dl[S..NH], alpha1);
            float dot = alpha0 * dAlpha0 + alpha1 * dAlpha1;
            dl[NH] = alpha0 * (dAlpha0 - dot);
            dl[NH + 1] = alpha1 * (dAlpha1 - dot);
        }
    }

    private static float GroupBackward(ReadOnlySpan<float> l, ReadOnlySpan<bool> chosen, ReadOnlySpan<float> dg, Span<float> p,
        Span<float> dl, float alpha)
    {
        if (l.IsEmpty) return 0;
        Softmax(l, p, 1f);
        float dAlpha = 0, dot = 0;
        for (int i = 0; i < l.Length; i++)
        {
            // an unselected head's gate is 0 whatever its p: no gradient reaches p_i (the selection is not differentiable)
            float dp = chosen[i] ? alpha * dg[i] : 0;
            if (chosen[i]) dAlpha += dg[i] * p[i];
            dl[i] = dp;
            dot += p[i] * dp;
        }
        for (int i = 0; i < l.Length; i++) dl[i] = p[i] * (dl[i] - dot);
        return dAlpha;
    }

    // out = scale · softmax(l)
    private static void Softmax(ReadOnlySpan<float> l, Span<float> output, float scale)
    {
        if (l.IsEmpty) return;
        float m = float.NegativeInfinity;
        foreach (float v in l) m = MathF.Max(m, v);
        float sum = 0;
        for (int i = 0; i < l.Length; i++) sum += output[i] = MathF.Exp(l[i] - m);
        for (int i = 0; i < l.Length; i++) output[i] = output[i] / sum * scale;
    }

    /// <summary>Marks the k largest of <paramref name="l"/> (ties: lower index first).</summary>
    public static void SelectTopK(ReadOnlySpan<float> l, Span<bool> chosen, int k)
    {
        chosen.Clear();
        for (int r = 0; r < k; r++)
        {
            int best = -1;
            for (int i = 0; i < l.Length; i++)
            {
                if (!chosen[i] && (best < 0 || l[i] > l[best])) best = i;
            }
            chosen[best] = true;
        }
    }
}
