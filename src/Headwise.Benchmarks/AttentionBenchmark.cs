using Headwise.Compute;
using K = Headwise.Compute.Kernels;

namespace Headwise.Benchmarks;

/// <summary>Attention alone at one shape, one length and one thread count: the fused kernel (Kernels.Attention, three
/// passes per row) against the blocked one (Kernels.BlockedAttention, query × key tiles with an online softmax), causal,
/// no padding. GFLOP/s count the causal pairs only: 4·NH·HD·T(T + 1)/2 (q·kᵀ and p·v, a multiply and an add each).</summary>
public sealed record AttentionTiming(string Shape, int NH, int NKV, int HD, int Tokens, int Threads, double FusedSeconds, double BlockedSeconds)
{
    public double Flops => 4.0 * NH * HD * (Tokens * (Tokens + 1.0) / 2);
    public double FusedGFlops => Flops / FusedSeconds / 1e9;
    public double BlockedGFlops => Flops / BlockedSeconds / 1e9;

    /// <summary>Fused time ÷ blocked time: above 1 the blocked kernel is faster.</summary>
    public double Speedup => FusedSeconds / BlockedSeconds;
}

/// <summary>The attention kernels side by side on a GPT-2-small head shape (NH 12, HD 64) and a Llama GQA shape
/// (NH 32, NKV 8, HD 128), prefill of T tokens from an empty cache, timed alternately (median of each).</summary>
public static class AttentionBenchmark
{
    /// <summary>(name, NH, NKV, HD) of the shapes measured.</summary>
    public static readonly (string Name, int NH, int NKV, int HD)[] Shapes = [("gpt2-small", 12, 12, 64), ("llama-gqa", 32, 8, 128)];

    /// <summary>Times both kernels at every shape, length and thread count; checks first that they agree (1e-5, else throws).</summary>
    public static IReadOnlyList<AttentionTiming> Run(int[] tokens, int[] threads, int reps = 3, CancellationToken cancel = default)
    {
        var rows = new List<AttentionTiming>();
        int saved = K.MaxThreads;
        try
        {
            foreach (var (name, NH, NKV, HD) in Shapes)
            {
                foreach (int T in tokens)
                {
                    var rng = new Random(7);
                    float[] q = Random(rng, T * NH * HD), k = Random(rng, T * NKV * HD), v = Random(rng, T * NKV * HD);
                    float[] zFused = new float[T * NH * HD], zBlocked = new float[T * NH * HD];
                    float scale = 1f / MathF.Sqrt(HD);
                    void Fused() => K.Attention(q, k, v, zFused, T, T, NH, NKV, HD, 0, scale, [], 0);
                    void Blocked() => K.BlockedAttention(q, k, v, zBlocked, T, T, NH, NKV, HD, 0, scale, [], AttentionSparsity.Dense);
                    K.MaxThreads = threads.Max();
                    Fused();
                    Blocked();
                    for (int i = 0; i < zFused.Length; i++)
                    {
                        if (Math.Abs(zFused[i] - zBlocked[i]) > 1e-5)
                        {
                            throw new InvalidOperationException($"attention benchmark: the kernels disagree at {name} T={T}, z[{i}]: {zFused[i]} vs {zBlocked[i]}");
                        }
                    }
                    foreach (int n in threads)
                    {
                        K.MaxThreads = n;
                        // alternate the two so that background load hits both alike
                        var fused = new double[reps];
                        var blocked = new double[reps];
                        Fused(); // warm-up at this thread count
                        Blocked();
                        for (int r = 0; r < reps; r++)
                        {
                            cancel.ThrowIfCancellationRequested();
                            fused[r] = GemmBenchmark.Seconds(Fused);
                            blocked[r] = GemmBenchmark.Seconds(Blocked);
                        }
                        rows.Add(new AttentionTiming(name, NH, NKV, HD, T, n, GemmBenchmark.MedianOf(fused), GemmBenchmark.MedianOf(blocked)));
                    }
                }
            }
        }
        finally
        {
            K.MaxThreads = saved;
        }
        return rows;
    }

    private static float[] Random(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}
