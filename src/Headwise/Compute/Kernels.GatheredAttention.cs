using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Gathered attention: each (head h, query t) attends to its own K keys, listed by index, and to no other key — the
// instance-dependent sparse attention of Sparsifiner, where a cheap estimate chooses the keys per query. Costs
// O(NH·T·K·HD) instead of O(NH·T·S·HD); no causality, window or padding (a bidirectional model: the list is the mask).
// q: (T, NH, HD)  k, v: (S, NKV, HD)  keys: (NH, T, K) indices in 0..S − 1  z: (T, NH, HD)
//   pass 1: query·key of the K listed keys, and max      pass 2: exp and sum      pass 3: weighted sum of their values
// SelectTopKeys chooses the lists: per row of estimates, the K largest (ties: the earlier key), in ascending key order.
// Scalar twins: Reference/ScalarKernels.GatheredAttention.cs.
public static unsafe partial class Kernels
{
    /// <summary>z = softmax over the listed keys of (q·kᵀ·scale) · v, per (head, query); the unlisted keys get weight 0,
    /// exactly as if their scores were −∞ in the dense attention. K = 0 gives a zero row.</summary>
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  keys: (NH, T, K)  z: (T, NH, HD)
    public static void GatheredAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<int> keys, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int K, float scale)
    {
        Require(NKV > 0 && NH % NKV == 0, "GatheredAttention: query heads must be a multiple of key/value heads");
        CheckAttention(q, k, z, T, S, NH, NKV, HD, default, "GatheredAttention");
        Require(v.Length >= (long)S * NKV * HD, "GatheredAttention: v is shorter than S·NKV·HD");
        Require(K >= 0 && K <= S && keys.Length >= (long)NH * T * K, "GatheredAttention: keys must hold NH·T·K indices, K ≤ S");
        if (T == 0 || NH == 0)
        {
            return;
        }
        fixed (float* pq = q, pk = k, pv = v, pz = z)
        fixed (int* pi = keys)
        {
            int rows = NH * T;
            // about K·HD multiply-adds per row and pass; below ~1 M a thread hand-off costs more than it saves
            int threads = !ForceParallel && (long)rows * K * Math.Max(HD, 1) < (1L << 20) ? 1 : Math.Min(MaxThreads, rows);
            if (threads <= 1)
            {
                GatheredRows(pq, pk, pv, pi, pz, T, S, NH, NKV, HD, K, scale, 0, rows);
                return;
            }
            var job = t_gatheredJob ??= new GatheredJob();
            job.Q = pq; job.K = pk; job.V = pv; job.Keys = pi; job.Z = pz;
            job.T = T; job.S = S; job.NH = NH; job.NKV = NKV; job.HD = HD; job.KeysPerRow = K; job.Scale = scale; job.Rows = rows;
            job.PerTask = (rows + threads * 4 - 1) / (threads * 4);
            job.Options.MaxDegreeOfParallelism = threads;
            Parallel.For(0, (rows + job.PerTask - 1) / job.PerTask, job.Options, job.Body);
        }
    }

    private sealed class GatheredJob
    {
        public float* Q, K, V, Z;
        public int* Keys;
        public int T, S, NH, NKV, HD, KeysPerRow, PerTask, Rows;
        public float Scale;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public GatheredJob() => Body = Run;
        private void Run(int task)
        {
            int r0 = task * PerTask;
            GatheredRows(Q, K, V, Keys, Z, T, S, NH, NKV, HD, KeysPerRow, Scale, r0, Math.Min(Rows, r0 + PerTask));
        }
    }

    [ThreadStatic] private static GatheredJob? t_gatheredJob;
    [ThreadStatic] private static float[]? t_gatheredScores;

    // Rows r = h·T + t in [r0, r1)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatheredRows(float* q, float* k, float* v, int* keys, float* z, int T, int S, int NH, int NKV, int HD, int K,
        float scale, int r0, int r1)
    {
        int group = NH / NKV;
        long kvStride = (long)NKV * HD;
        float[] scratch = t_gatheredScores is { } buf && buf.Length >= K ? buf : (t_gatheredScores = new float[Math.Max(K, 256)]);
        fixed (float* p = scratch)
        {
            for (int r = r0; r < r1; r++)
            {
                int h = r / T, t = r % T;
                float* kh = k + (long)(h / group) * HD, vh = v + (long)(h / group) * HD;
                float* qr = q + ((long)t * NH + h) * HD, zr = z + ((long)t * NH + h) * HD;
                int* list = keys + (long)r * K;
                if (K == 0)
                {
                    new Span<float>(zr, HD).Clear();
                    continue; // nothing listed: a zero row, like a dense row with every key masked
                }
                // pass 1: query·key of the listed keys, and max
                float max = float.NegativeInfinity;
                for (int i = 0; i < K; i++)
                {
                    p[i] = Dot(qr, kh + list[i] * kvStride, HD) * scale;
                    max = Math.Max(max, p[i]);
                }
                // pass 2: exp(score − max) and their sum
                float sum = ExpShiftSum(p, K, max);
                // pass 3: weighted sum of the listed values, divided by the sum once at the end
                GatheredRowSum(p, list, K, vh, kvStride, zr, HD);
                Scale(zr, 1f / sum, HD);
            }
        }
    }

    // p: (n)  v: rows list[i] at stride vStride  z: (HD) = Σ_i p[i]·v[list[i]]; 16 columns at a time in registers
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatheredRowSum(float* p, int* list, int n, float* v, long vStride, float* z, int HD)
    {
        int d = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; d + 32 <= HD; d += 32)
            {
                Vector512<float> a0 = default, a1 = default;
                for (int i = 0; i < n; i++)
                {
                    float* vj = v + list[i] * vStride + d;
                    var pi = Vector512.Create(p[i]);
                    a0 = Vector512.FusedMultiplyAdd(pi, Vector512.Load(vj), a0);
                    a1 = Vector512.FusedMultiplyAdd(pi, Vector512.Load(vj + 16), a1);
                }
                a0.Store(z + d); a1.Store(z + d + 16);
            }
            for (; d + 16 <= HD; d += 16)
            {
                Vector512<float> a0 = default;
                for (int i = 0; i < n; i++) a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[i]), Vector512.Load(v + list[i] * vStride + d), a0);
                a0.Store(z + d);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; d + 8 <= HD; d += 8)
            {
                Vector256<float> a0 = default;
                for (int i = 0; i < n; i++) a0 = Vector256.MultiplyAddEstimate(Vector256.Create(p[i]), Vector256.Load(v + list[i] * vStride + d), a0);
                a0.Store(z + d);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; d + 4 <= HD; d += 4)
            {
                Vector128<float> a0 = default;
                for (int i = 0; i < n; i++) a0 = Vector128.MultiplyAddEstimate(Vector128.Create(p[i]), Vector128.Load(v + list[i] * vStride + d), a0);
                a0.Store(z + d);
            }
        }
        // remainder columns
        for (; d < HD; d++)
        {
            float acc = 0f;
            for (int i = 0; i < n; i++) acc += p[i] * v[list[i] * vStride + d];
            z[d] = acc;
        }
    }

    /// <summary>For each of <paramref name="R"/> rows of <paramref name="S"/> estimates, the indices of its
    /// <paramref name="K"/> largest (ties: the earlier index first), written in ascending index order: the keys
    /// <see cref="GatheredAttention"/> computes. Expected O(S) per row (a quickselect for the K-th largest, then one scan).</summary>
    // estimates: (R, S)  chosen: (R, K)  scratch: (S), overwritten
    public static void SelectTopKeys(ReadOnlySpan<float> estimates, Span<int> chosen, Span<float> scratch, int R, int S, int K)
    {
        Require(R >= 0 && S >= 0 && K >= 0 && K <= S, "SelectTopKeys: need R, S ≥ 0 and 0 ≤ K ≤ S");
        Require(estimates.Length >= (long)R * S && chosen.Length >= (long)R * K && scratch.Length >= S, "SelectTopKeys: shape mismatch");
        for (int r = 0; r < R; r++)
        {
            var row = estimates.Slice(r * S, S);
            var list = chosen.Slice(r * K, K);
            if (K == 0)
            {
                continue;
            }
            row.CopyTo(scratch);
            float threshold = KthLargest(scratch[..S], K);
            // every key above the threshold, then as many at it as the K still need, earliest first
            int above = 0;
            foreach (float e in row)
            {
                above += e > threshold ? 1 : 0;
            }
            int ties = K - above, n = 0;
            for (int j = 0; j < S && n < K; j++)
            {
                if (row[j] > threshold || (row[j] == threshold && ties-- > 0))
                {
                    list[n++] = j;
                }
            }
        }
    }

    // the K-th largest value of x (1 ≤ K ≤ x.Length), rearranging x: quickselect (Hoare partition, median-of-three pivot)
    private static float KthLargest(Span<float> x, int K)
    {
        int lo = 0, hi = x.Length - 1, target = K - 1; // position target of x sorted descending
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            float a = x[lo], b = x[mid], c = x[hi];
            float pivot = Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
            int i = lo, j = hi;
            while (i <= j)
            {
                while (x[i] > pivot) i++;
                while (x[j] < pivot) j--;
                if (i <= j)
                {
                    (x[i], x[j]) = (x[j], x[i]);
                    i++;
                    j--;
                }
            }
            // now x[lo..j] ≥ pivot ≥ x[i..hi], and x[j+1..i-1] = pivot
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return pivot;
        }
        return x[target];
    }
}
