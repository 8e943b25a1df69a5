using System.Runtime.CompilerServices;

namespace Headwise.Compute;

// Row-wise passes between the GEMMs (norms, the q|k|v split, the KV-cache append), split over rows on the worker team.
// x, out: (T, C) — rows independent, so a row's result does not depend on which thread runs it or how rows are grouped.
//
// Serial, these passes cost 2–3% of a 2-thread prefill (the second thread spinning idle meanwhile); through Parallel.For
// the hand-off would cost as much as a 128-row pass. The team's workers are still awake from the GEMM before.
public static unsafe partial class Kernels
{
    // a pass over at least this many floats is split: below it (~40 rows of 768) the hand-off costs about what it saves
    private const int ParallelRowsMinFloats = 1 << 15;

    /// <summary>A pass over rows [r0, r1) of a row-wise operation.</summary>
    internal interface IRowPass
    {
        void Run(int r0, int r1);
    }

    private sealed class RowsJob<TPass> where TPass : struct, IRowPass
    {
        public TPass Pass;
        public int Rows, Chunk;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public RowsJob() => Body = Run;
        private void Run(int task) => Pass.Run(task * Chunk, Math.Min(Rows, (task + 1) * Chunk));

        [ThreadStatic] public static RowsJob<TPass>? Cached;
    }

    // pass.Run over rows [0, rows) of floatsPerRow each: one part per thread on the worker team (Parallel.For when another
    // thread holds it), serially below ParallelRowsMinFloats or on one thread
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ForRows<TPass>(TPass pass, int rows, int floatsPerRow) where TPass : struct, IRowPass
    {
        int threads = Math.Min(MaxThreads, rows);
        if (threads <= 1 || (!ForceParallel && (long)rows * floatsPerRow < ParallelRowsMinFloats))
        {
            pass.Run(0, rows);
            return;
        }
        var job = RowsJob<TPass>.Cached ??= new RowsJob<TPass>();
        job.Pass = pass;
        job.Rows = rows;
        job.Chunk = (rows + threads - 1) / threads;
        int tasks = (rows + job.Chunk - 1) / job.Chunk;
        RunPrefillTasks(job.Body, tasks, threads, job.Options);
        job.Pass = default; // drop the pointers: the job is per thread and long-lived
    }

    /// <summary>Splits fused q|k|v projections into q, k and v, row by row: <paramref name="perHead"/> false reads each row as
    /// [q (NH·HD) | k (NKV·HD) | v (NKV·HD)] (GPT-2's fused projection), true as NH groups [q_h | k_h | v_h] of HD each
    /// (GPT-NeoX's, NKV = NH).</summary>
    // qkv: (N, NH·HD + 2·NKV·HD)  q: (N, NH·HD)  k, v: (N, NKV·HD)
    public static void SplitQkv(ReadOnlySpan<float> qkv, Span<float> q, Span<float> k, Span<float> v, int N, int NH, int NKV, int HD, bool perHead)
    {
        Require(N >= 0 && NH >= 0 && NKV >= 0 && HD >= 0, "SplitQkv: negative dimension");
        Require(!perHead || NKV == NH, "SplitQkv: per-head groups need as many key/value heads as query heads");
        int qd = NH * HD, kvd = NKV * HD;
        Require(qkv.Length >= (long)N * (qd + 2 * kvd), "SplitQkv: qkv is shorter than N rows of q|k|v");
        Require(q.Length >= (long)N * qd && k.Length >= (long)N * kvd && v.Length >= (long)N * kvd, "SplitQkv: q, k or v is shorter than N rows");
        fixed (float* pqkv = qkv, pq = q, pk = k, pv = v)
        {
            ForRows(new SplitQkvPass { Qkv = pqkv, Q = pq, K = pk, V = pv, NH = NH, NKV = NKV, HD = HD, PerHead = perHead }, N, qd + 2 * kvd);
        }
    }

    private struct SplitQkvPass : IRowPass
    {
        public float* Qkv, Q, K, V;
        public int NH, NKV, HD;
        public bool PerHead;

        public readonly void Run(int r0, int r1)
        {
            int qd = NH * HD, kvd = NKV * HD, row = qd + 2 * kvd;
            for (int n = r0; n < r1; n++)
            {
                float* src = Qkv + (long)n * row;
                if (!PerHead)
                {
                    new ReadOnlySpan<float>(src, qd).CopyTo(new Span<float>(Q + (long)n * qd, qd));
                    new ReadOnlySpan<float>(src + qd, kvd).CopyTo(new Span<float>(K + (long)n * kvd, kvd));
                    new ReadOnlySpan<float>(src + qd + kvd, kvd).CopyTo(new Span<float>(V + (long)n * kvd, kvd));
                    continue;
                }
                for (int h = 0; h < NH; h++, src += 3 * HD)
                {
                    long dst = ((long)n * NH + h) * HD;
                    new ReadOnlySpan<float>(src, HD).CopyTo(new Span<float>(Q + dst, HD));
                    new ReadOnlySpan<float>(src + HD, HD).CopyTo(new Span<float>(K + dst, HD));
                    new ReadOnlySpan<float>(src + 2 * HD, HD).CopyTo(new Span<float>(V + dst, HD));
                }
            }
        }
    }

    /// <summary>Copies <paramref name="rows"/> rows of <paramref name="width"/> floats from each source to its destination
    /// (a step's keys and values into the KV cache), both pairs in one pass split over rows.</summary>
    // src1, dst1, src2, dst2: (rows, width), contiguous
    public static void CopyRows(ReadOnlySpan<float> src1, Span<float> dst1, ReadOnlySpan<float> src2, Span<float> dst2, int rows, int width)
    {
        Require(rows >= 0 && width >= 0, "CopyRows: negative dimension");
        long n = (long)rows * width;
        Require(src1.Length >= n && dst1.Length >= n && src2.Length >= n && dst2.Length >= n, "CopyRows: a buffer is shorter than rows·width");
        fixed (float* s1 = src1, d1 = dst1, s2 = src2, d2 = dst2)
        {
            ForRows(new CopyRowsPass { Src1 = s1, Dst1 = d1, Src2 = s2, Dst2 = d2, Width = width }, rows, 2 * width);
        }
    }

    private struct CopyRowsPass : IRowPass
    {
        public float* Src1, Dst1, Src2, Dst2;
        public int Width;

        public readonly void Run(int r0, int r1)
        {
            long start = (long)r0 * Width;
            int count = checked((r1 - r0) * Width);
            new ReadOnlySpan<float>(Src1 + start, count).CopyTo(new Span<float>(Dst1 + start, count));
            new ReadOnlySpan<float>(Src2 + start, count).CopyTo(new Span<float>(Dst2 + start, count));
        }
    }
}
