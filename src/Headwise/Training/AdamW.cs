namespace Headwise.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) with decoupled weight decay, written as torch.optim.AdamW computes it:
/// θ ← θ·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
/// Weight decay applies only to parameters with <see cref="ParameterInfo.Decay"/> (matrices and embeddings), never to
/// biases or norm weights — decaying a norm gain towards 0 would shrink the signal rather than regularise it.
/// </summary>
public sealed class AdamW(int count)
{
    /// <summary>First moments, laid out like the parameters.</summary>
    public float[] M { get; } = new float[count];

    /// <summary>Second moments, laid out like the parameters.</summary>
    public float[] V { get; } = new float[count];

    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Eps { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>One update with learning rate <paramref name="lr"/>; <paramref name="t"/> is the 1-based step number.</summary>
    public void Step(float[] parameters, float[] grads, IReadOnlyList<ParameterInfo> layout, float lr, int t)
    {
        float bc1 = 1f - MathF.Pow(Beta1, t);
        float bc2Sqrt = MathF.Sqrt(1f - MathF.Pow(Beta2, t));
        float stepSize = lr / bc1;
        float b1 = Beta1, b2 = Beta2, eps = Eps;
        foreach (var p in layout)
        {
            float decay = p.Decay ? 1f - lr * WeightDecay : 1f;
            int end = p.Offset + p.Length;
            for (int i = p.Offset; i < end; i++)
            {
                float g = grads[i];
                float m = M[i] = b1 * M[i] + (1 - b1) * g;
                float v = V[i] = b2 * V[i] + (1 - b2) * g * g;
                parameters[i] = parameters[i] * decay - stepSize * m / (MathF.Sqrt(v) / bc2Sqrt + eps);
            }
        }
    }

    /// <summary>‖g‖₂ over all gradients, summed in double in index order (deterministic).</summary>
    public static double GlobalNorm(float[] grads)
    {
        double s = 0;
        foreach (float g in grads) s += (double)g * g;
        return Math.Sqrt(s);
    }

    /// <summary>Scales the gradients so their global norm is at most <paramref name="maxNorm"/> (as torch's clip_grad_norm_).</summary>
    public static void ClipGradients(float[] grads, double norm, double maxNorm)
    {
        if (maxNorm <= 0 || norm <= maxNorm) return;
        float coef = (float)(maxNorm / (norm + 1e-6));
        for (int i = 0; i < grads.Length; i++) grads[i] *= coef;
    }
}
