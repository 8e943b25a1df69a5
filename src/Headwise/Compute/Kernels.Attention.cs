using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// Fused causal attention with grouped key/value heads (GQA: query head h reads kv head h / (NH / NKV)).
// q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  scores, pattern: (NH, T, S)  keyMask: (S) or empty
// Query t sits at key index pastLen + t. One row is one (head h, query t) pair, computed in three passes:
//   pass 1: query·key and max      pass 2: exp and sum      pass 3: weighted sum of values
// (the softmax scratch row of pass 1–2 never leaves L1). Rows are independent, so they are split across threads;
// each thread keeps its scores in a per-thread scratch row that grows to the longest S it has seen.
// AttentionScores is pass 1 alone, MaskedSoftmax (Kernels.Softmax.cs) pass 2 on whole rows, AttentionApply pass 3 alone.
public static unsafe partial class Kernels
{
    /// <summary>Causal multi-head attention with grouped key/value heads, fused: z = softmax(q·kᵀ·scale + mask) · v.</summary>
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty
    public static void Attention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        Require(NKV > 0 && NH % NKV == 0, "Attention: query heads must be a multiple of key/value heads");
        CheckAttention(q, k, z, T, S, NH, NKV, HD, keyMask, "Attention");
        Require(v.Length >= (long)S * NKV * HD, "Attention: v is shorter than S·NKV·HD");
        if (T == 0 || NH == 0) return;
        fixed (float* pq = q, pk = k, pv = v, pz = z)
        fixed (byte* pm = keyMask)
        {
            RunAttention(AttentionMode.Fused, pq, pk, pv, pz, T, S, NH, NKV, HD, pastLen, scale, keyMask.IsEmpty ? null : pm, window);
        }
    }

    /// <summary>
    /// The fused attention that also writes what it computed on the way, for read-only observers (activation caches):
    /// the scaled, masked scores (−∞ where invisible) and/or the softmax pattern (0 where invisible), each (NH, T, S);
    /// pass an empty span to skip either. Costs two row copies per (head, query) instead of the three-pass path.
    /// </summary>
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  scoresOut, patternOut: (NH, T, S) or empty
    public static void Attention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window,
        Span<float> scoresOut, Span<float> patternOut)
    {
        Require(NKV > 0 && NH % NKV == 0, "Attention: query heads must be a multiple of key/value heads");
        CheckAttention(q, k, z, T, S, NH, NKV, HD, keyMask, "Attention");
        Require(v.Length >= (long)S * NKV * HD, "Attention: v is shorter than S·NKV·HD");
        Require(scoresOut.IsEmpty || scoresOut.Length >= (long)NH * T * S, "Attention: scoresOut is shorter than NH·T·S");
        Require(patternOut.IsEmpty || patternOut.Length >= (long)NH * T * S, "Attention: patternOut is shorter than NH·T·S");
        if (T == 0 || NH == 0) return;
        fixed (float* pq = q, pk = k, pv = v, pz = z, ps = scoresOut, pp = patternOut)
        fixed (byte* pm = keyMask)
        {
            RunAttention(AttentionMode.Fused, pq, pk, pv, pz, T, S, NH, NKV, HD, pastLen, scale, keyMask.IsEmpty ? null : pm, window,
                scoresOut.IsEmpty ? null : ps, patternOut.IsEmpty ? null : pp);
        }
    }

    /// <summary>Pass 1 alone, for hooks on the scores: scaled q·kᵀ, −∞ where masked.</summary>
    // q: (T, NH, HD)  k: (S, NKV, HD)  scores: (NH, T, S)
    public static void AttentionScores(ReadOnlySpan<float> q, ReadOnlySpan<float> k, Span<float> scores,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window)
    {
        Require(NKV > 0 && NH % NKV == 0, "AttentionScores: query heads must be a multiple of key/value heads");
        CheckAttention(q, k, default, T, S, NH, NKV, HD, keyMask, "AttentionScores");
        Require(scores.Length >= (long)NH * T * S, "AttentionScores: scores is shorter than NH·T·S");
        if (T == 0 || NH == 0 || S == 0) return;
        fixed (float* pq = q, pk = k, ps = scores)
        fixed (byte* pm = keyMask)
        {
            RunAttention(AttentionMode.Scores, pq, pk, null, ps, T, S, NH, NKV, HD, pastLen, scale, keyMask.IsEmpty ? null : pm, window);
        }
    }

    /// <summary>Last pass alone, for hooks on the pattern: z = pattern · v.</summary>
    // pattern: (NH, T, S)  v: (S, NKV, HD)  z: (T, NH, HD)
    public static void AttentionApply(ReadOnlySpan<float> pattern, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD)
    {
        Require(NKV > 0 && NH % NKV == 0, "AttentionApply: query heads must be a multiple of key/value heads");
        Require(T >= 0 && S >= 0 && HD >= 0, "AttentionApply: negative dimension");
        Require(pattern.Length >= (long)NH * T * S && v.Length >= (long)S * NKV * HD && z.Length >= (long)T * NH * HD,
            "AttentionApply: shape mismatch");
        if (T == 0 || NH == 0) return;
        fixed (float* pp = pattern, pv = v, pz = z)
        {
            RunAttention(AttentionMode.Apply, pp, null, pv, pz, T, S, NH, NKV, HD, 0, 0, null, 0);
        }
    }

    private static void CheckAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> z,
        int T, int S, int NH, int NKV, int HD, ReadOnlySpan<byte> keyMask, string name)
    {
        // messages are built only on failure: the happy path must not allocate
        string? problem =
            T < 0 || S < 0 || NH < 0 || HD < 0 ? "negative dimension"
            : q.Length < (long)T * NH * HD ? "q is shorter than T·NH·HD"
            : k.Length < (long)S * NKV * HD ? "k is shorter than S·NKV·HD"
            : !z.IsEmpty && z.Length < (long)T * NH * HD ? "z is shorter than T·NH·HD"
            : !keyMask.IsEmpty && keyMask.Length < S ? "keyMask is shorter than S"
            : null;
        if (problem != null)
        {
            throw new ArgumentException($"{name}: {problem}");
        }
    }

    private enum AttentionMode { Fused, Scores, Apply }

    private sealed class AttentionJob
    {
        public AttentionMode Mode;
        public float* A, K, V, Out, ScoresOut, PatternOut;
        public byte* Mask;
        public int T, S, NH, NKV, HD, PastLen, Window, PerTask, Rows;
        public float Scale;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public AttentionJob() => Body = Run;
        private void Run(int task)
        {
            int r0 = task * PerTask;
            AttentionRows(Mode, A, K, V, Out, T, S, NH, NKV, HD, PastLen, Scale, Mask, Window, r0, Math.Min(Rows, r0 + PerTask), ScoresOut, PatternOut);
        }
    }

    [ThreadStatic] private static AttentionJob? t_attentionJob;
    [ThreadStatic] private static float[]? t_scores;

    private static void RunAttention(AttentionMode mode, float* a, float* k, float* v, float* output, int T, int S, int NH, int NKV, int HD,
        int pastLen, float scale, byte* mask, int window, float* scoresOut = null, float* patternOut = null)
    {
        int rows = NH * T;
        // about S·HD FMAs per row and pass; below ~1 M a thread hand-off costs more than it saves
        int threads = !ForceParallel && (long)rows * S * Math.Max(HD, 1) < (1L << 20) ? 1 : Math.Min(MaxThreads, rows);
        if (threads <= 1)
        {
            AttentionRows(mode, a, k, v, output, T, S, NH, NKV, HD, pastLen, scale, mask, window, 0, rows, scoresOut, patternOut);
            return;
        }
        int tasks = Math.Min(rows, threads * 8); // several tasks per thread: causal rows differ in length
        var job = t_attentionJob ??= new AttentionJob();
        job.Mode = mode; job.A = a; job.K = k; job.V = v; job.Out = output; job.Mask = mask;
        job.T = T; job.S = S; job.NH = NH; job.NKV = NKV; job.HD = HD; job.PastLen = pastLen; job.Window = window;
        job.Scale = scale; job.Rows = rows; job.ScoresOut = scoresOut; job.PatternOut = patternOut; job.PerTask = (rows + tasks - 1) / tasks;
        job.Options.MaxDegreeOfParallelism = threads;
        Parallel.For(0, (rows + job.PerTask - 1) / job.PerTask, job.Options, job.Body);
    }

    // Rows r = h·T + t in [r0, r1): consecutive rows share a head, so its k and v stay in cache.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AttentionRows(AttentionMode mode, float* a, float* k, float* v, float* output, int T, int S, int NH, int NKV, int HD,
        int pastLen, float scale, byte* mask, int window, int r0, int r1, float* scoresOut = null, float* patternOut = null)
    {
        int group = NH / NKV;
        long kvStride = (long)NKV * HD;
        float[] scratch = t_scores is { } buf && buf.Length >= S ? buf : (t_scores = new float[Math.Max(S, 256)]);
        // per-thread contiguous copies of one kv head: in (S, NKV, HD) consecutive keys of a head are NKV·HD floats
        // apart (often exactly 4 KiB), so every key would land in the same L1 set and a fresh page
        bool mayPack = NKV > 1 && (long)T * group >= PackKvMinRows;
        long kvFloats = mayPack ? (long)S * HD : 0;
        float[] kPack = !mayPack || mode == AttentionMode.Apply ? [] : t_kPack is { } kb && kb.Length >= kvFloats ? kb : (t_kPack = new float[kvFloats]);
        float[] vPack = !mayPack || mode == AttentionMode.Scores ? [] : t_vPack is { } vb && vb.Length >= kvFloats ? vb : (t_vPack = new float[kvFloats]);
        fixed (float* scoresBuf = scratch, kp = kPack, vp = vPack)
        {
            int currentH = -1, packedG = -1, packedN = 0;
            float* kh = null, vh = null;
            long stride = kvStride;
            for (int r = r0; r < r1; r++)
            {
                int h = r / T, t = r % T;
                if (h != currentH)
                {
                    currentH = h;
                    int g = h / group;
                    // rows left in this task that share kv head g (GQA: `group` consecutive heads)
                    int rowsHere = Math.Min(r1, (g + 1) * group * T) - r;
                    if (mayPack && rowsHere >= PackKvMinRows)
                    {
                        // keys those rows can see: all for Apply; else up to the causal edge of the last row of this
                        // head, or of row T − 1 when the run continues into the next head of the group
                        int lastT = Math.Min(r1, (h + 1) * T) < Math.Min(r1, (g + 1) * group * T) ? T - 1 : (Math.Min(r1, (h + 1) * T) - 1) % T;
                        int need = mode == AttentionMode.Apply ? S : Math.Min(S, pastLen + lastT + 1);
                        if (packedG != g || packedN < need)
                        {
                            for (int key = 0; key < need; key++)
                            {
                                long src = key * kvStride + (long)g * HD;
                                if (kPack.Length > 0) new ReadOnlySpan<float>(k + src, HD).CopyTo(new Span<float>(kp + (long)key * HD, HD));
                                if (vPack.Length > 0) new ReadOnlySpan<float>(v + src, HD).CopyTo(new Span<float>(vp + (long)key * HD, HD));
                            }
                            packedG = g;
                            packedN = need;
                        }
                        kh = kp;
                        vh = vp;
                        stride = HD;
                    }
                    else
                    {
                        kh = k == null ? null : k + (long)g * HD;
                        vh = v == null ? null : v + (long)g * HD;
                        stride = kvStride;
                    }
                }
                float* zr = output + ((long)t * NH + h) * HD;
                if (mode == AttentionMode.Apply)
                {
                    // pass 3 alone: weighted sum of values, a = pattern: (NH, T, S)
                    WeightedRowSum(a + (long)r * S, S, vh, stride, zr, HD);
                    continue;
                }
                float* qr = a + ((long)t * NH + h) * HD;
                // the visible keys form one interval [lo, hi] (causal + window), with holes only from keyMask
                int qIndex = pastLen + t;
                int hi = Math.Min(S - 1, qIndex);
                int lo = window > 0 ? Math.Max(0, qIndex - window + 1) : 0;
                float* sc = mode == AttentionMode.Scores ? output + (long)r * S : scoresBuf;
                // pass 1: query·key and max
                float max = float.NegativeInfinity;
                int j = lo;
                if (Vector512.IsHardwareAccelerated && Avx.IsSupported)
                {
                    // four keys per step: one combined horizontal reduction instead of four
                    var vmax = Vector128.Create(float.NegativeInfinity);
                    var vscale = Vector128.Create(scale);
                    for (; j + 4 <= hi + 1; j += 4)
                    {
                        var d = Dot4Keys(qr, kh + j * stride, stride, HD) * vscale;
                        if (mask != null)
                        {
                            var keep = Vector128.Create(mask[j] != 0 ? -1 : 0, mask[j + 1] != 0 ? -1 : 0, mask[j + 2] != 0 ? -1 : 0, mask[j + 3] != 0 ? -1 : 0).AsSingle();
                            d = Vector128.ConditionalSelect(keep, d, Vector128.Create(float.NegativeInfinity));
                        }
                        d.Store(sc + j);
                        vmax = Vector128.Max(vmax, d);
                    }
                    max = Math.Max(Math.Max(vmax[0], vmax[1]), Math.Max(vmax[2], vmax[3]));
                }
                // remaining keys one by one
                for (; j <= hi; j++)
                {
                    float value = float.NegativeInfinity;
                    if (mask == null || mask[j] != 0)
                    {
                        value = Dot(qr, kh + j * stride, HD) * scale;
                        max = Math.Max(max, value);
                    }
                    sc[j] = value;
                }
                if (mode == AttentionMode.Scores)
                {
                    new Span<float>(sc, Math.Max(0, Math.Min(lo, S))).Fill(float.NegativeInfinity);
                    if (hi + 1 < S) new Span<float>(sc + hi + 1, S - hi - 1).Fill(float.NegativeInfinity);
                    continue;
                }
                if (scoresOut != null || patternOut != null)
                {
                    // side outputs for observers: the row as AttentionScores would write it (the pattern row starts as a
                    // copy and is normalised below by the same SoftmaxRow as MaskedSoftmax, so both paths agree bit for bit)
                    var row = new Span<float>(scoresOut != null ? scoresOut + (long)r * S : patternOut + (long)r * S, S);
                    row.Fill(float.NegativeInfinity);
                    if (hi >= lo) new ReadOnlySpan<float>(sc + lo, hi - lo + 1).CopyTo(row[lo..]);
                    if (scoresOut != null && patternOut != null) row.CopyTo(new Span<float>(patternOut + (long)r * S, S));
                    if (patternOut != null) SoftmaxRow(patternOut + (long)r * S, S);
                }
                if (float.IsNegativeInfinity(max))
                {
                    new Span<float>(zr, HD).Clear();
                    continue; // nothing visible: a zero row, like the reference's all-zero pattern
                }
                int n = hi - lo + 1;
                // pass 2: exp(score − max) and their sum
                float sum = ExpShiftSum(sc + lo, n, max);
                // pass 3: weighted sum of values, divided by the sum once at the end (HD divisions instead of n)
                WeightedRowSum(sc + lo, n, vh + lo * stride, stride, zr, HD);
                Scale(zr, 1f / sum, HD);
            }
        }
    }

    // q: (HD)  k: 4 rows of (HD) at stride `stride` → the 4 dot products (AVX-512 + AVX only)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Dot4Keys(float* q, float* k, long stride, int HD)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* k1 = k + stride, k2 = k + 2 * stride, k3 = k + 3 * stride;
        int d = 0;
        for (; d + 16 <= HD; d += 16)
        {
            var qv = Vector512.Load(q + d);
            a0 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k + d), a0);
            a1 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k1 + d), a1);
            a2 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k2 + d), a2);
            a3 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k3 + d), a3);
        }
        // 16 lanes × 4 keys → 4 sums: fold 512 → 256, then three horizontal adds and a final 256 → 128 fold
        var h01 = Avx.HorizontalAdd(a0.GetLower() + a0.GetUpper(), a1.GetLower() + a1.GetUpper());
        var h23 = Avx.HorizontalAdd(a2.GetLower() + a2.GetUpper(), a3.GetLower() + a3.GetUpper());
        var h = Avx.HorizontalAdd(h01, h23);
        var sums = h.GetLower() + h.GetUpper();
        // remainder of the head dimension
        if (d < HD)
        {
            float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
            for (; d < HD; d++)
            {
                float qd = q[d];
                t0 += qd * k[d]; t1 += qd * k1[d]; t2 += qd * k2[d]; t3 += qd * k3[d];
            }
            sums += Vector128.Create(t0, t1, t2, t3);
        }
        return sums;
    }

    private const int PackKvMinRows = 8; // query rows of one head that make copying its keys and values worthwhile
    [ThreadStatic] private static float[]? t_kPack;
    [ThreadStatic] private static float[]? t_vPack;

    // p: (n)  v: (n, ·) rows at stride vStride  z: (HD) = Σ_j p[j]·v[j]
    // Accumulates 64 columns at a time in registers: updating z in memory per key would chain every key through
    // store-to-load forwarding. Masked keys have p = 0 and add nothing.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedRowSum(float* p, int n, float* v, long vStride, float* z, int HD)
    {
        int d = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; d + 64 <= HD; d += 64)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                float* vj = v + d;
                for (int j = 0; j < n; j++, vj += vStride)
                {
                    var pj = Vector512.Create(p[j]);
                    a0 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj), a0);
                    a1 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj + 48), a3);
                }
                a0.Store(z + d); a1.Store(z + d + 16); a2.Store(z + d + 32); a3.Store(z + d + 48);
            }
            for (; d + 16 <= HD; d += 16)
            {
                Vector512<float> a0 = default, a1 = default;
                float* vj = v + d;
                int j = 0;
                for (; j + 2 <= n; j += 2, vj += 2 * vStride)
                {
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(vj), a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j + 1]), Vector512.Load(vj + vStride), a1);
                }
                if (j < n) a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(vj), a0);
                (a0 + a1).Store(z + d);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; d + 32 <= HD; d += 32)
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                float* vj = v + d;
                for (int j = 0; j < n; j++, vj += vStride)
                {
                    var pj = Vector256.Create(p[j]);
                    a0 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj), a0);
                    a1 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj + 8), a1);
                    a2 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj + 16), a2);
                    a3 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj + 24), a3);
                }
                a0.Store(z + d); a1.Store(z + d + 8); a2.Store(z + d + 16); a3.Store(z + d + 24);
            }
            for (; d + 8 <= HD; d += 8)
            {
                Vector256<float> a0 = default;
                float* vj = v + d;
                for (int j = 0; j < n; j++, vj += vStride) a0 = Vector256.MultiplyAddEstimate(Vector256.Create(p[j]), Vector256.Load(vj), a0);
                a0.Store(z + d);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; d + 4 <= HD; d += 4)
            {
                Vector128<float> a0 = default;
                float* vj = v + d;
                for (int j = 0; j < n; j++, vj += vStride) a0 = Vector128.MultiplyAddEstimate(Vector128.Create(p[j]), Vector128.Load(vj), a0);
                a0.Store(z + d);
            }
        }
        // remainder columns
        for (; d < HD; d++)
        {
            float acc = 0f;
            float* vj = v + d;
            for (int j = 0; j < n; j++, vj += vStride) acc += p[j] * *vj;
            z[d] = acc;
        }
    }
}
