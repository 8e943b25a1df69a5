using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Multi-head latent attention (MLA) decode over the latent cache itself, every query head at once.
// q: (T, NH, W)  rows: (S, W)  z: (T, NH, R) with R = W − valueOffset  keyMask: (S) or empty
// Each cached row [k_rot (ROPE) | latent (R)] is one shared key of W = ROPE + R floats for all heads, and its last R floats
// are the shared value (DeepseekV3's absorbed form: the queries already hold q_nope·W_UK, W_UV comes after). Query t sits at
// key index pastLen + t. The T·NH query rows are "lanes" of a SIMD vector (L lanes: 16 floats with AVX-512), so a cached
// row is read once per lane group, not once per head, and no dot product needs a horizontal sum. Per tile of rows:
//   pass 1: scores (tile, L) = rows · Q_absᵀ      (Q_abs transposed to (W, L) once; rows broadcast one float at a time)
//   pass 2: online softmax per lane              (running max and sum; the accumulator rescaled when the max grows)
//   pass 3: acc (R, L) += P (tile, L) · rows[:, valueOffset..]   (the tile is still in L1)
// so the cache streams from memory once. The rows are split into chunks across threads (decode has one query per
// sequence: NH lanes, one group); each chunk keeps its own max, sum and accumulator, merged at the end as in split-K.
// The scalar twin is Reference/ScalarKernels.LatentAttention.cs.
public static unsafe partial class Kernels
{
    /// <summary>
    /// softmax(q·rowsᵀ·scale + mask) · rows[:, valueOffset..] for every query head: attention of <paramref name="NH"/> heads
    /// that share one key/value "head" of <paramref name="W"/> floats per position, the value being the last W − valueOffset
    /// floats of the key. Masking as <see cref="Attention(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, int, int, int, float, ReadOnlySpan{byte}, int)"/>:
    /// causal at pastLen + t, the key mask, the sliding window; a query that sees no key gets z = 0.
    /// </summary>
    // q: (T, NH, W)  rows: (S, W)  z: (T, NH, W − valueOffset)  keyMask: (S) or empty
    public static void LatentAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> rows, Span<float> z,
        int T, int S, int NH, int W, int valueOffset, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        int R = W - valueOffset;
        // messages are built only on failure: the happy path must not allocate
        string? problem =
            T < 0 || S < 0 || NH < 0 || W < 0 ? "negative dimension"
            : valueOffset < 0 || valueOffset > W ? "valueOffset must lie within the row"
            : q.Length < (long)T * NH * W ? "q is shorter than T·NH·W"
            : rows.Length < (long)S * W ? "rows is shorter than S·W"
            : z.Length < (long)T * NH * R ? "z is shorter than T·NH·(W − valueOffset)"
            : !keyMask.IsEmpty && keyMask.Length < S ? "keyMask is shorter than S"
            : null;
        if (problem != null)
        {
            throw new ArgumentException($"LatentAttention: {problem}");
        }
        if (T == 0 || NH == 0) return;
        fixed (float* pq = q, pr = rows, pz = z)
        fixed (byte* pm = keyMask)
        {
            int M = T * NH;
            if (Vector512.IsHardwareAccelerated && M >= 16)
            {
                RunLatent<Lanes512, Vector512<float>>(pq, pr, pz, T, S, NH, W, valueOffset, pastLen, scale, keyMask.IsEmpty ? null : pm, window);
            }
            else if ((Vector256.IsHardwareAccelerated || Vector512.IsHardwareAccelerated) && M >= 8)
            {
                RunLatent<Lanes256, Vector256<float>>(pq, pr, pz, T, S, NH, W, valueOffset, pastLen, scale, keyMask.IsEmpty ? null : pm, window);
            }
            else
            {
                RunLatent<Lanes128, Vector128<float>>(pq, pr, pz, T, S, NH, W, valueOffset, pastLen, scale, keyMask.IsEmpty ? null : pm, window);
            }
        }
    }

    // rows per tile: 64 rows of ROPE + R ≤ 192 floats stay in L1 between pass 1 and pass 3
    private const int LatentTile = 64;

    // row chunks per lane group at most (the merge keeps one weight per chunk on the stack)
    private const int MaxLatentChunks = 64;

    // The lane operations the kernel needs, over one SIMD width (Vector512/256/128 of float): one generic core for all three.
    private interface ILatentLanes<TVec> where TVec : struct
    {
        static abstract int Count { get; }
        static abstract TVec Load(float* p);
        static abstract void Store(TVec v, float* p);
        static abstract TVec Broadcast(float x);
        static abstract TVec MultiplyAdd(TVec a, TVec b, TVec c); // a·b + c
        static abstract TVec Multiply(TVec a, TVec b);
        static abstract TVec Add(TVec a, TVec b);
        static abstract TVec Max(TVec a, TVec b);
        static abstract TVec ExpOfDifference(TVec a, TVec b); // exp(a − b); exp(−∞) = 0
    }

    private readonly struct Lanes512 : ILatentLanes<Vector512<float>>
    {
        public static int Count => Vector512<float>.Count;
        public static Vector512<float> Load(float* p) => Vector512.Load(p);
        public static void Store(Vector512<float> v, float* p) => v.Store(p);
        public static Vector512<float> Broadcast(float x) => Vector512.Create(x);
        public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
        public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
        public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
        public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
        public static Vector512<float> ExpOfDifference(Vector512<float> a, Vector512<float> b) => Vector512.Exp(a - b);
    }

    private readonly struct Lanes256 : ILatentLanes<Vector256<float>>
    {
        public static int Count => Vector256<float>.Count;
        public static Vector256<float> Load(float* p) => Vector256.Load(p);
        public static void Store(Vector256<float> v, float* p) => v.Store(p);
        public static Vector256<float> Broadcast(float x) => Vector256.Create(x);
        public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
        public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
        public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
        public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
        public static Vector256<float> ExpOfDifference(Vector256<float> a, Vector256<float> b) => Vector256.Exp(a - b);
    }

    private readonly struct Lanes128 : ILatentLanes<Vector128<float>>
    {
        public static int Count => Vector128<float>.Count;
        public static Vector128<float> Load(float* p) => Vector128.Load(p);
        public static void Store(Vector128<float> v, float* p) => v.Store(p);
        public static Vector128<float> Broadcast(float x) => Vector128.Create(x);
        public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
        public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
        public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
        public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
        public static Vector128<float> ExpOfDifference(Vector128<float> a, Vector128<float> b) => Vector128.Exp(a - b);
    }

    // One call's state, shared by its tasks: task = (lane group, chunk of rows). Partials: per task [max (L) | sum (L) | acc (R, L)].
    private sealed class LatentJob
    {
        public float* Q, Rows, Z, Partials;
        public byte* Mask;
        public int T, S, NH, W, ValueOffset, PastLen, Window, Chunks, Lanes;
        public float Scale;
        public Action<int> Body = _ => { };
        public readonly ParallelOptions Options = new();
    }

    [ThreadStatic] private static LatentJob? t_latentJob;
    [ThreadStatic] private static float[]? t_latentPartials;
    [ThreadStatic] private static float[]? t_latentScratch;

    private static void RunLatent<TLanes, TVec>(float* q, float* rows, float* z, int T, int S, int NH, int W, int valueOffset,
        int pastLen, float scale, byte* mask, int window)
        where TLanes : struct, ILatentLanes<TVec> where TVec : struct
    {
        int L = TLanes.Count, R = W - valueOffset, M = T * NH, groups = (M + L - 1) / L;
        // about S·(W + R) FMAs per lane group; below ~1 M a thread hand-off costs more than it saves. Two chunks per thread
        // (a busy core then holds back half as much), none shorter than a few tiles.
        long work = (long)groups * S * (W + R);
        int threads = !ForceParallel && work < (1L << 20) ? 1 : MaxThreads;
        int chunks = threads <= 1 ? 1 : Math.Max(1, Math.Min((2 * threads + groups - 1) / groups, S / (4 * LatentTile)));
        if (ForceParallel) chunks = Math.Max(chunks, 3); // tests: the merge runs at every S, empty chunks included
        chunks = Math.Min(chunks, MaxLatentChunks);
        int tasks = groups * chunks, per = (2 + R) * L;
        float[] partials = t_latentPartials is { } buf && buf.Length >= tasks * per ? buf : (t_latentPartials = new float[tasks * per]);
        fixed (float* pp = partials)
        {
            var job = t_latentJob ??= new LatentJob();
            job.Q = q; job.Rows = rows; job.Z = z; job.Partials = pp; job.Mask = mask;
            job.T = T; job.S = S; job.NH = NH; job.W = W; job.ValueOffset = valueOffset; job.PastLen = pastLen; job.Window = window;
            job.Chunks = chunks; job.Lanes = L; job.Scale = scale;
            if (tasks == 1 || threads <= 1)
            {
                for (int task = 0; task < tasks; task++) LatentChunk<TLanes, TVec>(job, task);
            }
            else
            {
                job.Body = LatentBody<TLanes, TVec>.Run(job);
                job.Options.MaxDegreeOfParallelism = Math.Min(threads, tasks);
                Parallel.For(0, tasks, job.Options, job.Body);
            }
            for (int g = 0; g < groups; g++) MergeLatentChunks(job, g, R);
        }
    }

    // one cached delegate per lane width and job: Parallel.For's body allocates nothing after the first call
    private static class LatentBody<TLanes, TVec> where TLanes : struct, ILatentLanes<TVec> where TVec : struct
    {
        [ThreadStatic] private static (LatentJob Job, Action<int> Body)? t_cached;

        public static Action<int> Run(LatentJob job)
        {
            if (t_cached is { } c && ReferenceEquals(c.Job, job)) return c.Body;
            Action<int> body = task => LatentChunk<TLanes, TVec>(job, task);
            t_cached = (job, body);
            return body;
        }
    }

    // The rows lane group g can see: causal up to its last query, from the window's start of its first query.
    private static (int Start, int End) LatentRange(LatentJob job, int g)
    {
        int m0 = g * job.Lanes, mEnd = Math.Min(job.T * job.NH, m0 + job.Lanes);
        int tMin = m0 / job.NH, tMax = (mEnd - 1) / job.NH;
        int end = Math.Min(job.S, job.PastLen + tMax + 1);
        int start = job.Window > 0 ? Math.Max(0, job.PastLen + tMin - job.Window + 1) : 0;
        return (start, Math.Max(start, end));
    }

    // One task: lane group g = task / Chunks over its chunk of rows, leaving [max | sum | acc] in the task's partial.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LatentChunk<TLanes, TVec>(LatentJob job, int task)
        where TLanes : struct, ILatentLanes<TVec> where TVec : struct
    {
        int L = TLanes.Count, W = job.W, NH = job.NH, off = job.ValueOffset, R = W - off, past = job.PastLen, window = job.Window;
        int g = task / job.Chunks, c = task % job.Chunks;
        int m0 = g * L, active = Math.Min(job.T * NH, m0 + L) - m0;
        int tMin = m0 / NH, tMax = (m0 + active - 1) / NH;
        var (start, end) = LatentRange(job, g);
        long span = end - start;
        int j0 = start + (int)(span * c / job.Chunks), j1 = start + (int)(span * (c + 1) / job.Chunks);

        float* part = job.Partials + (long)task * (2 + R) * L, runMax = part, runSum = part + L, acc = part + 2 * L;
        new Span<float>(runMax, L).Fill(float.NegativeInfinity);
        new Span<float>(runSum, (1 + R) * L).Clear();

        int scratchLength = (W + LatentTile + 2) * L;
        float[] scratch = t_latentScratch is { } buf && buf.Length >= scratchLength ? buf : (t_latentScratch = new float[scratchLength]);
        fixed (float* sp = scratch)
        {
            float* qt = sp, tile = sp + W * L, newMax = tile + LatentTile * L, factor = newMax + L;
            // Q_abs transposed to (W, L); padding lanes are zero and their results are never read
            for (int w = 0; w < W; w++)
            {
                for (int i = 0; i < L; i++) qt[w * L + i] = i < active ? job.Q[(long)(m0 + i) * W + w] : 0f;
            }
            var scaleV = TLanes.Broadcast(job.Scale);
            for (int j = j0; j < j1; j += LatentTile)
            {
                int rowsHere = Math.Min(LatentTile, j1 - j);
                float* first = job.Rows + (long)j * W;

                // pass 1: scores (rowsHere, L) = rows · Q_absᵀ · scale, eight rows at a time (eight accumulators and one
                // row of Q_absᵀ in registers; each row float is broadcast to all lanes)
                int jj = 0;
                for (; jj + 8 <= rowsHere; jj += 8)
                {
                    float* r0 = first + (long)jj * W;
                    TVec a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                    for (int w = 0; w < W; w++)
                    {
                        var qv = TLanes.Load(qt + w * L);
                        a0 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[w]), qv, a0);
                        a1 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[W + w]), qv, a1);
                        a2 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[2 * W + w]), qv, a2);
                        a3 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[3 * W + w]), qv, a3);
                        a4 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[4 * W + w]), qv, a4);
                        a5 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[5 * W + w]), qv, a5);
                        a6 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[6 * W + w]), qv, a6);
                        a7 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[7 * W + w]), qv, a7);
                    }
                    float* t0 = tile + jj * L;
                    TLanes.Store(TLanes.Multiply(a0, scaleV), t0);
                    TLanes.Store(TLanes.Multiply(a1, scaleV), t0 + L);
                    TLanes.Store(TLanes.Multiply(a2, scaleV), t0 + 2 * L);
                    TLanes.Store(TLanes.Multiply(a3, scaleV), t0 + 3 * L);
                    TLanes.Store(TLanes.Multiply(a4, scaleV), t0 + 4 * L);
                    TLanes.Store(TLanes.Multiply(a5, scaleV), t0 + 5 * L);
                    TLanes.Store(TLanes.Multiply(a6, scaleV), t0 + 6 * L);
                    TLanes.Store(TLanes.Multiply(a7, scaleV), t0 + 7 * L);
                }
                // remainder: fewer than eight rows, one at a time
                for (; jj < rowsHere; jj++)
                {
                    float* r0 = first + (long)jj * W;
                    TVec a0 = default;
                    for (int w = 0; w < W; w++) a0 = TLanes.MultiplyAdd(TLanes.Broadcast(r0[w]), TLanes.Load(qt + w * L), a0);
                    TLanes.Store(TLanes.Multiply(a0, scaleV), tile + jj * L);
                }

                // masking: only a tile at the causal edge, the window's edge or with padded keys has invisible pairs (−∞)
                int last = j + rowsHere - 1;
                bool whole = last <= past + tMin && (window <= 0 || past + tMax - j < window);
                for (int k = j; whole && job.Mask != null && k <= last; k++) whole = job.Mask[k] != 0;
                if (!whole)
                {
                    var maskSpan = job.Mask == null ? default : new ReadOnlySpan<byte>(job.Mask, job.S);
                    for (int k = 0; k < rowsHere; k++)
                    {
                        for (int i = 0; i < active; i++)
                        {
                            if (!IsVisible((m0 + i) / NH, j + k, past, maskSpan, window)) tile[k * L + i] = float.NegativeInfinity;
                        }
                    }
                }

                // pass 2: online softmax per lane. newMax = max(runMax, this tile's scores); the old sum and accumulator
                // are scaled by exp(runMax − newMax); a lane that has seen no visible key yet keeps max −∞ (its p are 0)
                var mx = TLanes.Load(runMax);
                for (int k = 0; k < rowsHere; k++) mx = TLanes.Max(mx, TLanes.Load(tile + k * L));
                TLanes.Store(mx, newMax);
                bool rescale = false;
                for (int i = 0; i < L; i++)
                {
                    float safe = float.IsNegativeInfinity(newMax[i]) ? 0f : newMax[i];
                    factor[i] = MathF.Exp(runMax[i] - safe);
                    rescale |= runMax[i] != newMax[i] && runSum[i] != 0f;
                    runMax[i] = newMax[i];
                    newMax[i] = safe;
                }
                var shift = TLanes.Load(newMax);
                var sum = TLanes.Multiply(TLanes.Load(runSum), TLanes.Load(factor));
                for (int k = 0; k < rowsHere; k++)
                {
                    var p = TLanes.ExpOfDifference(TLanes.Load(tile + k * L), shift);
                    TLanes.Store(p, tile + k * L);
                    sum = TLanes.Add(sum, p);
                }
                TLanes.Store(sum, runSum);
                if (rescale)
                {
                    var f = TLanes.Load(factor);
                    for (int r = 0; r < R; r++) TLanes.Store(TLanes.Multiply(TLanes.Load(acc + r * L), f), acc + r * L);
                }

                // pass 3: acc (R, L) += P (rowsHere, L) · values (rowsHere, R), eight value columns at a time held in
                // registers over the tile's rows
                float* values = first + off;
                int r8 = 0;
                for (; r8 + 8 <= R; r8 += 8)
                {
                    float* a = acc + r8 * L;
                    TVec c0 = TLanes.Load(a), c1 = TLanes.Load(a + L), c2 = TLanes.Load(a + 2 * L), c3 = TLanes.Load(a + 3 * L);
                    TVec c4 = TLanes.Load(a + 4 * L), c5 = TLanes.Load(a + 5 * L), c6 = TLanes.Load(a + 6 * L), c7 = TLanes.Load(a + 7 * L);
                    for (int k = 0; k < rowsHere; k++)
                    {
                        var p = TLanes.Load(tile + k * L);
                        float* v = values + (long)k * W + r8;
                        c0 = TLanes.MultiplyAdd(TLanes.Broadcast(v[0]), p, c0);
                        c1 = TLanes.MultiplyAdd(TLanes.Broadcast(v[1]), p, c1);
                        c2 = TLanes.MultiplyAdd(TLanes.Broadcast(v[2]), p, c2);
                        c3 = TLanes.MultiplyAdd(TLanes.Broadcast(v[3]), p, c3);
                        c4 = TLanes.MultiplyAdd(TLanes.Broadcast(v[4]), p, c4);
                        c5 = TLanes.MultiplyAdd(TLanes.Broadcast(v[5]), p, c5);
                        c6 = TLanes.MultiplyAdd(TLanes.Broadcast(v[6]), p, c6);
                        c7 = TLanes.MultiplyAdd(TLanes.Broadcast(v[7]), p, c7);
                    }
                    TLanes.Store(c0, a); TLanes.Store(c1, a + L); TLanes.Store(c2, a + 2 * L); TLanes.Store(c3, a + 3 * L);
                    TLanes.Store(c4, a + 4 * L); TLanes.Store(c5, a + 5 * L); TLanes.Store(c6, a + 6 * L); TLanes.Store(c7, a + 7 * L);
                }
                // remainder: fewer than eight value columns, one at a time
                for (; r8 < R; r8++)
                {
                    TVec c0 = TLanes.Load(acc + r8 * L);
                    for (int k = 0; k < rowsHere; k++) c0 = TLanes.MultiplyAdd(TLanes.Broadcast(values[(long)k * W + r8]), TLanes.Load(tile + k * L), c0);
                    TLanes.Store(c0, acc + r8 * L);
                }
            }
        }
    }

    // Lane group g's chunks merged (split-K): max M = max_c max_c, each chunk weighted by exp(max_c − M); z = acc / sum,
    // 0 for a query that saw no key.
    private static void MergeLatentChunks(LatentJob job, int g, int R)
    {
        int L = job.Lanes, m0 = g * L, active = Math.Min(job.T * job.NH, m0 + L) - m0, per = (2 + R) * L;
        float* first = job.Partials + (long)g * job.Chunks * per;
        Span<float> weights = stackalloc float[MaxLatentChunks];
        for (int i = 0; i < active; i++)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < job.Chunks; c++) max = Math.Max(max, first[c * per + i]);
            float* z = job.Z + (long)(m0 + i) * R;
            if (float.IsNegativeInfinity(max))
            {
                new Span<float>(z, R).Clear();
                continue;
            }
            float sum = 0;
            for (int c = 0; c < job.Chunks; c++)
            {
                weights[c] = MathF.Exp(first[c * per + i] - max);
                sum += first[c * per + L + i] * weights[c];
            }
            for (int r = 0; r < R; r++)
            {
                float value = 0;
                for (int c = 0; c < job.Chunks; c++) value += first[c * per + (2 + r) * L + i] * weights[c];
                z[r] = value / sum;
            }
        }
    }
}
