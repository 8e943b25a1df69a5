using System.Numerics;

namespace Headwise.Training.Layers;

/// <summary>
/// Softmax cross-entropy averaged over rows: loss = mean_n (log Σ_v e^{logits[n,v]} − logits[n, target[n]]). Rows whose
/// target is <see cref="Ignore"/> (−1) have loss 0 and gradient 0 and do not count in the mean (PyTorch's ignore_index).
/// </summary>
public static class CrossEntropy
{
    /// <summary>The target id of a position without a loss.</summary>
    public const int Ignore = -1;

    /// <summary>Number of rows that count in the mean (targets other than <see cref="Ignore"/>).</summary>
    public static int Counted(ReadOnlySpan<int> targets, int N)
    {
        int c = 0;
        for (int n = 0; n < N; n++) c += targets[n] != Ignore ? 1 : 0;
        return c;
    }

    // logits: (N, V)  targets: (N)  probs: (N, V) saved for the backward  losses: (N)  returns the mean loss over the
    // counted rows (0 when none counts)
    public static unsafe float Forward(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, Span<float> probs, Span<float> losses, int N, int V)
    {
        for (int n = 0; n < N; n++)
        {
            if ((uint)targets[n] >= (uint)V && targets[n] != Ignore)
            {
                throw new InvalidInputException($"target id {targets[n]} at position {n} is outside the vocabulary (0..{V - 1})");
            }
        }
        fixed (float* pl = logits, pp = probs, ploss = losses)
        fixed (int* pt = targets)
        {
            float* L = pl, P = pp, LS = ploss;
            int* TG = pt;
            Par.For(N, V, n =>
            {
                var row = new ReadOnlySpan<float>(L + (long)n * V, V);
                var pr = new Span<float>(P + (long)n * V, V);
                float max = float.NegativeInfinity;
                for (int i = 0; i < V; i++) max = MathF.Max(max, row[i]);
                // e^{l − max}, vectorized; the sum in double, in index order
                int i0 = 0, W = Vector<float>.Count;
                var vmax = new Vector<float>(max);
                for (; i0 + W <= V; i0 += W) Vector.Exp(new Vector<float>(row[i0..]) - vmax).CopyTo(pr[i0..]);
                for (; i0 < V; i0++) pr[i0] = MathF.Exp(row[i0] - max);
                double sum = 0;
                for (int i = 0; i < V; i++) sum += pr[i];
                float inv = (float)(1.0 / sum);
                for (int i = 0; i < V; i++) pr[i] *= inv;
                LS[n] = TG[n] == Ignore ? 0f : (float)(Math.Log(sum) + max - row[TG[n]]);
            });
        }
        double total = 0;
        for (int n = 0; n < N; n++) total += losses[n]; // fixed order
        int counted = Counted(targets, N);
        return counted == 0 ? 0f : (float)(total / counted);
    }

    // probs: (N, V) → dlogits in place, scaled by dloss (1/counted rows for the mean times any outer factor)
    public static void Backward(Span<float> probs, ReadOnlySpan<int> targets, int N, int V, float dloss)
    {
        for (int n = 0; n < N; n++)
        {
            var row = probs.Slice(n * V, V);
            if (targets[n] == Ignore)
            {
                // an ignored row contributes nothing to the loss
                row.Clear();
                continue;
            }
            // undoes: loss = log Σ e^l − l[target]:  dl = softmax(l) − onehot(target)
            row[targets[n]] -= 1f;
            for (int i = 0; i < V; i++) row[i] *= dloss;
        }
    }
}
