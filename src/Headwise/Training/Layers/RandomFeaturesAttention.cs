namespace Headwise.Training.Layers;

/// <summary>
/// random_features — "What can a Single Attention Layer Learn? A Study Through the Random Features Lens" (Fu et al., 2023):
/// the query/key projections are random and frozen, only the value/output projections (and the rest of the model) train.
/// The attention itself is ordinary softmax attention, att = softmax(q·kᵀ/√HD), with q = x·W_Qᵀ, k = x·W_Kᵀ drawn once:
/// every entry of W_Q, W_K i.i.d. N(0, 1/C) (so a q or k entry of a LayerNorm'ed x has variance ≈ 1), in the order
/// layer 0's q rows, its k rows, layer 1's …, from <see cref="TrainingRng"/> seeded with the config's FeatureSeed.
/// They are not parameters: AdamW never sees them (no gradient, no weight decay), a checkpoint stores the seed, and the
/// export writes them as ordinary W_Q, W_K (zero q/k biases).
/// </summary>
public static class RandomFeaturesAttention
{
    /// <summary>The frozen W_Q | W_K of every layer: L matrices of ((NH + NKV)·HD, C), nn.Linear layout.</summary>
    public static float[][] Draw(ulong seed, int L, int NH, int NKV, int HD, int C)
    {
        var rng = new TrainingRng(seed);
        double std = 1.0 / Math.Sqrt(C);
        var w = new float[L][];
        for (int l = 0; l < L; l++)
        {
            w[l] = new float[(NH + NKV) * HD * C];
            for (int i = 0; i < w[l].Length; i++) w[l][i] = (float)(std * rng.NextGaussian());
        }
        return w;
    }
}
