namespace Headwise.Training.Layers;

/// <summary>
/// Distillation loss, KL(teacher ‖ student) of next-token distributions averaged over rows:
/// loss = mean_n Σ_v p_t[n,v]·(log p_t[n,v] − log softmax(logits)[n,v]), with the teacher given as log-probabilities
/// (temperature 1). Its gradient with respect to the student's logits is (softmax(logits) − p_t) / N: the cross-entropy's
/// with a soft target, since the teacher's entropy does not depend on the student.
/// </summary>
public static class KlDivergence
{
    // logits: (N, V)  logProbs: (N, V) ← log softmax(logits) per row, computed in double and stored as float
    public static void LogSoftmax(ReadOnlySpan<float> logits, Span<float> logProbs, int N, int V)
    {
        for (int n = 0; n < N; n++)
        {
            var row = logits.Slice(n * V, V);
            var o = logProbs.Slice(n * V, V);
            double lse = LogSumExp(row);
            for (int i = 0; i < V; i++) o[i] = (float)(row[i] - lse);
        }
    }

    // logits: (N, V) the student's  teacherLogProbs: (N, V)  probs: (N, V) ← the student's softmax, saved for the backward
    // losses: (N) ← KL per row  returns the mean over rows
    public static float Forward(ReadOnlySpan<float> logits, ReadOnlySpan<float> teacherLogProbs, Span<float> probs, Span<float> losses, int N, int V)
    {
        double total = 0;
        for (int n = 0; n < N; n++)
        {
            var row = logits.Slice(n * V, V);
            var t = teacherLogProbs.Slice(n * V, V);
            var p = probs.Slice(n * V, V);
            double lse = LogSumExp(row);
            // KL = Σ p_t (log p_t − log p_s), in double and in index order
            double kl = 0;
            for (int i = 0; i < V; i++)
            {
                double logS = row[i] - lse;
                p[i] = (float)Math.Exp(logS);
                double pt = Math.Exp(t[i]);
                kl += pt * (t[i] - logS);
            }
            losses[n] = (float)kl;
            total += kl;
        }
        return N == 0 ? 0f : (float)(total / N);
    }

    // probs: (N, V) the student's softmax → dlogits in place, scaled by dloss (1/N for the mean times any outer factor)
    public static void Backward(Span<float> probs, ReadOnlySpan<float> teacherLogProbs, int N, int V, float dloss)
    {
        for (int n = 0; n < N; n++)
        {
            var p = probs.Slice(n * V, V);
            var t = teacherLogProbs.Slice(n * V, V);
            // undoes: loss = Σ p_t log p_t − Σ p_t (l − lse(l)):  dl = softmax(l) − p_t  (Σ p_t = 1)
            for (int i = 0; i < V; i++) p[i] = (p[i] - MathF.Exp(t[i])) * dloss;
        }
    }

    private static double LogSumExp(ReadOnlySpan<float> row)
    {
        float max = float.NegativeInfinity;
        foreach (float x in row) max = MathF.Max(max, x);
        double sum = 0;
        foreach (float x in row) sum += Math.Exp(x - max);
        return max + Math.Log(sum);
    }
}
