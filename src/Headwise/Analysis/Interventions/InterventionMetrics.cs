using System.Numerics;
using Headwise.Compute;

namespace Headwise.Analysis.Interventions;

/// <summary>What an intervention is measured by.</summary>
public enum MetricKind
{
    /// <summary>Mean next-token NLL over the sequence (nats).</summary>
    Loss,

    /// <summary>Mean over positions of KL(clean ‖ intervened) of the next-token distributions (nats).</summary>
    Kl,

    /// <summary>The task's own metric (logit difference, probability difference or second-half loss; see TaskMetric).</summary>
    Task,
}

/// <summary>The numbers interventions are scored by, from logits [pos, vocab] (row-major). Vectorized: a GPT-2 vocabulary over
/// a thousand positions is fifty million exponentials per call.</summary>
public static class InterventionMetrics
{
    /// <summary>Mean over target positions t in [<paramref name="from"/>, <paramref name="to"/>) of −log softmax(logits[t − 1])[tokens[t]].</summary>
    public static double MeanNll(ReadOnlySpan<float> logits, int[] tokens, int vocab, int from, int to)
    {
        from = Math.Max(from, 1);
        if (to <= from)
        {
            throw new InvalidInputException($"no tokens to score between positions {from} and {to}");
        }
        int vocabSize = vocab;
        double total = SumRows(to - from, vocab, (r, rows, _) =>
        {
            int t = from + r;
            var row = rows.Slice((t - 1) * vocabSize, vocabSize);
            return Kernels.LogSumExp(row) - row[tokens[t]];
        }, logits, default);
        return total / (to - from);
    }

    private delegate double RowTerm(int r, ReadOnlySpan<float> a, ReadOnlySpan<float> b);

    // Σ_r term(r) over R rows, split across threads when the rows are many (each thread sums a contiguous block; the blocks
    // are added in order, so the result does not depend on the thread count's timing)
    private static unsafe double SumRows(int R, int vocab, RowTerm term, ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int threads = (long)R * vocab < (1L << 20) ? 1 : Math.Min(Kernels.MaxThreads, R);
        var partial = new double[Math.Max(threads, 1)];
        fixed (float* pa = a, pb = b)
        {
            nint ia = (nint)pa, ib = (nint)pb;
            int la = a.Length, lb = b.Length;
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, k =>
            {
                var sa = new ReadOnlySpan<float>((float*)ia, la);
                var sb = new ReadOnlySpan<float>((float*)ib, lb);
                int r0 = (int)((long)R * k / threads), r1 = (int)((long)R * (k + 1) / threads);
                double sum = 0;
                for (int r = r0; r < r1; r++)
                {
                    sum += term(r, sa, sb);
                }
                partial[k] = sum;
            });
        }
        double total = 0;
        foreach (double p in partial)
        {
            total += p;
        }
        return total;
    }

    /// <summary>Mean over positions of KL(p ‖ q) = Σ p·(log p − log q), p = softmax(<paramref name="reference"/>), q = softmax(<paramref name="logits"/>).</summary>
    public static double MeanKl(ReadOnlySpan<float> reference, ReadOnlySpan<float> logits, int vocab)
    {
        if (reference.Length != logits.Length || logits.Length % vocab != 0 || logits.Length == 0)
        {
            throw new InvalidInputException($"KL needs two logit arrays of the same [pos, {vocab}] shape ({reference.Length} and {logits.Length} values)");
        }
        int T = logits.Length / vocab, W = Vector<float>.Count;
        double total = SumRows(T, vocab, (t, reference, logits) =>
        {
            var p = reference.Slice(t * vocab, vocab);
            var q = logits.Slice(t * vocab, vocab);
            double lseP = Kernels.LogSumExp(p), lseQ = Kernels.LogSumExp(q);
            // Σ exp(p − lseP)·(p − q) − (lseP − lseQ)·Σ exp(p − lseP), the last sum being 1
            double s = 0;
            int i = 0;
            if (vocab >= W)
            {
                var vl = new Vector<float>((float)lseP);
                var acc = Vector<float>.Zero;
                for (; i <= vocab - W; i += W)
                {
                    var vp = new Vector<float>(p.Slice(i, W));
                    acc += Vector.Exp(vp - vl) * (vp - new Vector<float>(q.Slice(i, W)));
                }
                for (int k = 0; k < W; k++)
                {
                    s += acc[k];
                }
            }
            for (; i < vocab; i++)
            {
                s += Math.Exp(p[i] - lseP) * (p[i] - q[i]);
            }
            return Math.Max(0, s - (lseP - lseQ));
        }, reference, logits);
        return total / T;
    }
}
