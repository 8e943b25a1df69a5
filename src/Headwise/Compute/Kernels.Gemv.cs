using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Decode GEMV: out = x · W (+ bias) for T ≤ 8 rows, the path MatMul takes for token-by-token generation.
// x: (T ≤ 4 per pass, C)  w: (OC, C) for OutIn or (C, OC) for InOut  bias: (OC) or null  out: (T, OC)
// Memory-bound: every weight is read once per pass of up to four rows, so the loops are arranged for streaming reads
// (several weight rows at once for OutIn, L1-sized column chunks for InOut) rather than for register tiling.
public static unsafe partial class Kernels
{
    private const int GemvMaxT = 4;  // rows handled by one streaming pass over the weights
    internal const int GemvMaxRows = 8; // T ≤ this takes the GEMV path (measured: two weight passes beat packing w for T = 5..8)

    // InOut output columns per pass: T·2048 partial sums (≤ 32 KiB) stay in L1 while each weight row is read as one
    // 8 KiB run; narrow chunks would hop a page per row and thrash the TLB
    private const int GemvChunk = 2048;

    private sealed class GemvJob
    {
        public float* X, W, Bias, Out;
        public int T, C, OC, PerTask;
        public WeightLayout Layout;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public GemvJob() => Body = Run;
        private void Run(int task)
        {
            int o0 = task * PerTask;
            GemvRange(X, W, Bias, Out, T, C, OC, Layout, o0, Math.Min(OC, o0 + PerTask));
        }
    }

    [ThreadStatic] private static GemvJob? t_gemvJob;
    [ThreadStatic] private static SplitRowsJob? t_splitRowsJob;
    [ThreadStatic] private static float[]? t_gemvPartials; // the calling thread's partial sums; workers write their own slice

    // InOut decode: each task streams one contiguous block of weight rows (fully sequential reads, the bandwidth-friendly
    // split) into its own partial sums; the partials are then added in task order, so the result does not depend on timing
    private sealed class SplitRowsJob
    {
        public float* X, W, Partials;
        public int T, C, OC, RowsPerTask;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public SplitRowsJob() => Body = Run;
        private void Run(int task)
        {
            int r0 = task * RowsPerTask, r1 = Math.Min(C, r0 + RowsPerTask);
            GemvInOut(X + r0, C, r1 - r0, W + (long)r0 * OC, null, Partials + (long)task * T * OC, T, OC, 0, OC);
        }
    }

    // x: (T, C)  w: (C, OC)  out: (T, OC)
    private static void GemvInOutSplitRows(float* x, float* w, float* bias, float* output, int T, int C, int OC, int threads)
    {
        int tasks = Math.Min(threads, Math.Max(1, C / 64));
        int rowsPerTask = (C + tasks - 1) / tasks;
        tasks = (C + rowsPerTask - 1) / rowsPerTask;
        long need = (long)tasks * T * OC;
        var partials = t_gemvPartials is { } p && p.Length >= need ? p : (t_gemvPartials = GC.AllocateUninitializedArray<float>((int)need, pinned: true));
        fixed (float* pp = partials)
        {
            var job = t_splitRowsJob ??= new SplitRowsJob();
            job.X = x; job.W = w; job.Partials = pp; job.T = T; job.C = C; job.OC = OC; job.RowsPerTask = rowsPerTask;
            if (!TryRunOnTeam(job.Body, tasks, tasks))
            {
                job.Options.MaxDegreeOfParallelism = tasks;
                Parallel.For(0, tasks, job.Options, job.Body);
            }
            for (int t = 0; t < T; t++)
            {
                var y = new Span<float>(output + (long)t * OC, OC);
                if (bias == null) new ReadOnlySpan<float>(pp + (long)t * OC, OC).CopyTo(y);
                else Add(new ReadOnlySpan<float>(bias, OC), new ReadOnlySpan<float>(pp + (long)t * OC, OC), y);
                for (int task = 1; task < tasks; task++)
                {
                    Add(y, new ReadOnlySpan<float>(pp + ((long)task * T + t) * OC, OC), y);
                }
            }
        }
    }

    private static void Gemv(float* x, float* w, float* bias, float* output, int T, int C, int OC, WeightLayout layout)
    {
        // memory-bound: one pass over w; split OC so each thread streams its own slice of the weights
        int threads = !ForceParallel && (long)C * OC < (1L << 16) ? 1 : MaxThreads;
        if (threads == 1)
        {
            GemvRange(x, w, bias, output, T, C, OC, layout, 0, OC);
            return;
        }
        if (layout == WeightLayout.InOut)
        {
            GemvInOutSplitRows(x, w, bias, output, T, C, OC, threads);
            return;
        }
        // OutIn: rows of w are independent streams, so several tasks per thread balance well
        int tasks = Math.Min((OC + 15) / 16, layout == WeightLayout.OutIn ? threads * 4 : threads);
        int perTask = ((OC + tasks - 1) / tasks + 15) / 16 * 16; // whole vectors per task
        tasks = (OC + perTask - 1) / perTask;
        var job = t_gemvJob ??= new GemvJob();
        job.X = x; job.W = w; job.Bias = bias; job.Out = output;
        job.T = T; job.C = C; job.OC = OC; job.Layout = layout; job.PerTask = perTask;
        if (!TryRunOnTeam(job.Body, tasks, threads))
        {
            job.Options.MaxDegreeOfParallelism = Math.Min(threads, tasks);
            Parallel.For(0, tasks, job.Options, job.Body);
        }
    }

    // HEADWISE_GEMV_TEAM=0 sends the decode GEMVs back to Parallel.For (to measure the hand-off; docs/performance.md)
    internal static bool GemvTeam { get; set; } = Environment.GetEnvironmentVariable("HEADWISE_GEMV_TEAM") is not ("0" or "off");

    // the decode GEMVs' tasks on the parked worker team (WorkerTeam.cs): no pool hand-off, no allocation; false when the
    // team is busy with another thread's GEMV (that caller then takes Parallel.For)
    private static bool TryRunOnTeam(Action<int> body, int tasks, int threads) => GemvTeam && WorkerTeam.Shared.TryRun(body, tasks, threads);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvRange(float* x, float* w, float* bias, float* output, int T, int C, int OC, WeightLayout layout, int o0, int o1)
    {
        if (layout == WeightLayout.OutIn)
        {
            // w: (OC, C): out[t, o] = x[t] · w[o]; the row w[o] is read from memory once, then from L1 for t > 0
            float* dots = stackalloc float[GemvMaxT * 4];
            int o = o0;
            if (Vector512.IsHardwareAccelerated)
            {
                // 4 weight rows per pass: four concurrent memory streams, and for T > 1 8 loads feed 16 FMAs
                for (; o + 4 <= o1; o += 4)
                {
                    float* wo = w + (long)o * C;
                    if (T == 1) Dot1x4(x, C, wo, dots);
                    else DotRows4x4(x, C, T, wo, dots);
                    for (int t = 0; t < T; t++)
                    {
                        for (int r = 0; r < 4; r++) output[(long)t * OC + o + r] = (bias == null ? 0f : bias[o + r]) + dots[t * 4 + r];
                    }
                }
            }
            for (; o < o1; o++)
            {
                float* wo = w + (long)o * C;
                float b = bias == null ? 0f : bias[o];
                if (T == 1)
                {
                    output[o] = b + Dot(x, wo, C);
                    continue;
                }
                DotRows(x, C, T, wo, dots);
                for (int t = 0; t < T; t++) output[(long)t * OC + o] = b + dots[t];
            }
            return;
        }
        GemvInOut(x, C, C, w, bias, output, T, OC, o0, o1);
    }

    // x: (T, ·) rows at stride ldx, the first `rows` columns used  w: (rows, OC)  y: (T, OC) columns [o0, o1) =
    // bias + Σ_i x[t, i] · w[i, o0:o1], in L1-sized column chunks (rows < C when the reduction is split across threads)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvInOut(float* x, int ldx, int rows, float* w, float* bias, float* output, int T, int OC, int o0, int o1)
    {
        int C = rows;
        if (T == 1 && Vector512.IsHardwareAccelerated)
        {
            // decode: 128 output columns live in 8 registers across the whole reduction and are stored once. Updating
            // partial sums in memory per row makes every weight load wait on a store whose address 4K-aliases with it
            // whenever a row is a multiple of 1 KiB long (768 columns: 3 KiB), which cost 5× here.
            int n = o0;
            for (; n + 128 <= o1; n += 128)
            {
                AxpyColumns128(x, C, w + n, OC, bias == null ? null : bias + n, output + n);
            }
            for (; n + 16 <= o1; n += 16)
            {
                var acc = bias == null ? Vector512<float>.Zero : Vector512.Load(bias + n);
                for (int i = 0; i < C; i++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(x[i]), Vector512.Load(w + (long)i * OC + n), acc);
                acc.Store(output + n);
            }
            // remainder columns
            for (; n < o1; n++)
            {
                float sum = bias == null ? 0f : bias[n];
                for (int i = 0; i < C; i++) sum += x[i] * w[(long)i * OC + n];
                output[n] = sum;
            }
            return;
        }
        for (int n = o0; n < o1; n += GemvChunk)
        {
            int nc = Math.Min(GemvChunk, o1 - n);
            for (int t = 0; t < T; t++)
            {
                var row = new Span<float>(output + (long)t * OC + n, nc);
                if (bias == null) row.Clear(); else new ReadOnlySpan<float>(bias + n, nc).CopyTo(row);
            }
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                // load each group of four weight vectors once and update all T partial sums with it
                for (; i + 4 <= C; i += 4)
                {
                    AxpyRows4xT(x + i, ldx, T, w + (long)i * OC + n, OC, output + n, OC, nc);
                }
            }
            for (; i + 4 <= C; i += 4)
            {
                // four weight rows per pass over the partial sums: a quarter of the loads/stores of y
                float* w0 = w + (long)i * OC + n;
                for (int t = 0; t < T; t++)
                {
                    float* xt = x + (long)t * ldx + i;
                    Axpy4(xt[0], xt[1], xt[2], xt[3], w0, w0 + OC, w0 + 2L * OC, w0 + 3L * OC, output + (long)t * OC + n, nc);
                }
            }
            // remainder: single weight rows
            for (; i < C; i++)
            {
                float* wi = w + (long)i * OC + n;
                for (int t = 0; t < T; t++)
                {
                    Axpy(x[(long)t * ldx + i], wi, output + (long)t * OC + n, nc);
                }
            }
        }
    }

    // x: (C)  w: (C, ·) rows at stride ldw, 128 columns used  y: (128) = bias + Σ_i x[i] · w[i, 0:128]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AxpyColumns128(float* x, int C, float* w, int ldw, float* bias, float* y)
    {
        Vector512<float> a0, a1, a2, a3, a4, a5, a6, a7;
        if (bias == null)
        {
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = Vector512<float>.Zero;
        }
        else
        {
            a0 = Vector512.Load(bias); a1 = Vector512.Load(bias + 16); a2 = Vector512.Load(bias + 32); a3 = Vector512.Load(bias + 48);
            a4 = Vector512.Load(bias + 64); a5 = Vector512.Load(bias + 80); a6 = Vector512.Load(bias + 96); a7 = Vector512.Load(bias + 112);
        }
        for (int i = 0; i < C; i++)
        {
            var xi = Vector512.Create(x[i]);
            float* wi = w + (long)i * ldw;
            a0 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi), a0);
            a1 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 32), a2);
            a3 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 48), a3);
            a4 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 64), a4);
            a5 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 80), a5);
            a6 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 96), a6);
            a7 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(wi + 112), a7);
        }
        a0.Store(y); a1.Store(y + 16); a2.Store(y + 32); a3.Store(y + 48);
        a4.Store(y + 64); a5.Store(y + 80); a6.Store(y + 96); a7.Store(y + 112);
    }

    // x: (T ≤ 4, C)  w: (C)  dots: (T) — every x row against one weight row, each weight vector loaded once
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotRows(float* x, int C, int T, float* w, float* dots)
    {
        // rows past T alias row 0: their sums are computed and dropped, which keeps the loop branch-free
        float* x0 = x, x1 = T > 1 ? x + C : x, x2 = T > 2 ? x + 2L * C : x, x3 = T > 3 ? x + 3L * C : x;
        int i = 0;
        float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 16 <= C; i += 16)
            {
                var wv = Vector512.Load(w + i);
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x0 + i), wv, s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(x1 + i), wv, s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(x2 + i), wv, s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(x3 + i), wv, s3);
            }
            d0 = Vector512.Sum(s0); d1 = Vector512.Sum(s1); d2 = Vector512.Sum(s2); d3 = Vector512.Sum(s3);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 8 <= C; i += 8)
            {
                var wv = Vector256.Load(w + i);
                s0 = Vector256.MultiplyAddEstimate(Vector256.Load(x0 + i), wv, s0);
                s1 = Vector256.MultiplyAddEstimate(Vector256.Load(x1 + i), wv, s1);
                s2 = Vector256.MultiplyAddEstimate(Vector256.Load(x2 + i), wv, s2);
                s3 = Vector256.MultiplyAddEstimate(Vector256.Load(x3 + i), wv, s3);
            }
            d0 = Vector256.Sum(s0); d1 = Vector256.Sum(s1); d2 = Vector256.Sum(s2); d3 = Vector256.Sum(s3);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            Vector128<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 4 <= C; i += 4)
            {
                var wv = Vector128.Load(w + i);
                s0 = Vector128.MultiplyAddEstimate(Vector128.Load(x0 + i), wv, s0);
                s1 = Vector128.MultiplyAddEstimate(Vector128.Load(x1 + i), wv, s1);
                s2 = Vector128.MultiplyAddEstimate(Vector128.Load(x2 + i), wv, s2);
                s3 = Vector128.MultiplyAddEstimate(Vector128.Load(x3 + i), wv, s3);
            }
            d0 = Vector128.Sum(s0); d1 = Vector128.Sum(s1); d2 = Vector128.Sum(s2); d3 = Vector128.Sum(s3);
        }
        // remainder
        for (; i < C; i++)
        {
            float wi = w[i];
            d0 = d0 + x0[i] * wi;
            d1 = d1 + x1[i] * wi;
            d2 = d2 + x2[i] * wi;
            d3 = d3 + x3[i] * wi;
        }
        dots[0] = d0;
        if (T > 1) dots[1] = d1;
        if (T > 2) dots[2] = d2;
        if (T > 3) dots[3] = d3;
    }

    // x: (C)  w: 4 rows of (C) at stride C  dots: (4) — AVX-512 only
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot1x4(float* x, int C, float* w, float* dots)
    {
        float* w0 = w, w1 = w + C, w2 = w + 2L * C, w3 = w + 3L * C;
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, t0 = default, t1 = default, t2 = default, t3 = default;
        int i = 0;
        for (; i + 32 <= C; i += 32)
        {
            // two independent chains per row hide the FMA latency
            Vector512<float> xa = Vector512.Load(x + i), xb = Vector512.Load(x + i + 16);
            s0 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w0 + i), s0); t0 = Vector512.FusedMultiplyAdd(xb, Vector512.Load(w0 + i + 16), t0);
            s1 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w1 + i), s1); t1 = Vector512.FusedMultiplyAdd(xb, Vector512.Load(w1 + i + 16), t1);
            s2 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w2 + i), s2); t2 = Vector512.FusedMultiplyAdd(xb, Vector512.Load(w2 + i + 16), t2);
            s3 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w3 + i), s3); t3 = Vector512.FusedMultiplyAdd(xb, Vector512.Load(w3 + i + 16), t3);
        }
        for (; i + 16 <= C; i += 16)
        {
            var xa = Vector512.Load(x + i);
            s0 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w0 + i), s0);
            s1 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w1 + i), s1);
            s2 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w2 + i), s2);
            s3 = Vector512.FusedMultiplyAdd(xa, Vector512.Load(w3 + i), s3);
        }
        float d0 = Vector512.Sum(s0 + t0), d1 = Vector512.Sum(s1 + t1), d2 = Vector512.Sum(s2 + t2), d3 = Vector512.Sum(s3 + t3);
        // remainder
        for (; i < C; i++)
        {
            d0 = d0 + x[i] * w0[i];
            d1 = d1 + x[i] * w1[i];
            d2 = d2 + x[i] * w2[i];
            d3 = d3 + x[i] * w3[i];
        }
        dots[0] = d0; dots[1] = d1; dots[2] = d2; dots[3] = d3;
    }

    // x: (T ≤ 4, C)  w: 4 rows of (C) at stride C  dots: (4, 4) as dots[t·4 + r] — AVX-512 only (16 accumulators)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotRows4x4(float* x, int C, int T, float* w, float* dots)
    {
        float* x0 = x, x1 = T > 1 ? x + C : x, x2 = T > 2 ? x + 2L * C : x, x3 = T > 3 ? x + 3L * C : x;
        float* w0 = w, w1 = w + C, w2 = w + 2L * C, w3 = w + 3L * C;
        Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default,
            s20 = default, s21 = default, s22 = default, s23 = default, s30 = default, s31 = default, s32 = default, s33 = default;
        int i = 0;
        for (; i + 16 <= C; i += 16)
        {
            Vector512<float> a0 = Vector512.Load(w0 + i), a1 = Vector512.Load(w1 + i), a2 = Vector512.Load(w2 + i), a3 = Vector512.Load(w3 + i);
            var xv = Vector512.Load(x0 + i);
            s00 = Vector512.FusedMultiplyAdd(xv, a0, s00); s01 = Vector512.FusedMultiplyAdd(xv, a1, s01); s02 = Vector512.FusedMultiplyAdd(xv, a2, s02); s03 = Vector512.FusedMultiplyAdd(xv, a3, s03);
            xv = Vector512.Load(x1 + i);
            s10 = Vector512.FusedMultiplyAdd(xv, a0, s10); s11 = Vector512.FusedMultiplyAdd(xv, a1, s11); s12 = Vector512.FusedMultiplyAdd(xv, a2, s12); s13 = Vector512.FusedMultiplyAdd(xv, a3, s13);
            xv = Vector512.Load(x2 + i);
            s20 = Vector512.FusedMultiplyAdd(xv, a0, s20); s21 = Vector512.FusedMultiplyAdd(xv, a1, s21); s22 = Vector512.FusedMultiplyAdd(xv, a2, s22); s23 = Vector512.FusedMultiplyAdd(xv, a3, s23);
            xv = Vector512.Load(x3 + i);
            s30 = Vector512.FusedMultiplyAdd(xv, a0, s30); s31 = Vector512.FusedMultiplyAdd(xv, a1, s31); s32 = Vector512.FusedMultiplyAdd(xv, a2, s32); s33 = Vector512.FusedMultiplyAdd(xv, a3, s33);
        }
        dots[0] = Vector512.Sum(s00); dots[1] = Vector512.Sum(s01); dots[2] = Vector512.Sum(s02); dots[3] = Vector512.Sum(s03);
        dots[4] = Vector512.Sum(s10); dots[5] = Vector512.Sum(s11); dots[6] = Vector512.Sum(s12); dots[7] = Vector512.Sum(s13);
        dots[8] = Vector512.Sum(s20); dots[9] = Vector512.Sum(s21); dots[10] = Vector512.Sum(s22); dots[11] = Vector512.Sum(s23);
        dots[12] = Vector512.Sum(s30); dots[13] = Vector512.Sum(s31); dots[14] = Vector512.Sum(s32); dots[15] = Vector512.Sum(s33);
        // remainder
        for (; i < C; i++)
        {
            float a0 = w0[i], a1 = w1[i], a2 = w2[i], a3 = w3[i];
            for (int t = 0; t < 4; t++)
            {
                float xv = (t == 0 ? x0 : t == 1 ? x1 : t == 2 ? x2 : x3)[i];
                dots[t * 4] = dots[t * 4] + xv * a0;
                dots[t * 4 + 1] = dots[t * 4 + 1] + xv * a1;
                dots[t * 4 + 2] = dots[t * 4 + 2] + xv * a2;
                dots[t * 4 + 3] = dots[t * 4 + 3] + xv * a3;
            }
        }
    }

    // x: (T ≤ 4, ·) at stride ldx, columns 0..3 used  w: 4 rows of (n) at stride ldw  y: (T, n) at stride ldy
    // y[t] += Σ_r x[t, r]·w[r] — AVX-512 only; the 4 weight vectors are loaded once for all T rows
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AxpyRows4xT(float* x, int ldx, int T, float* w, int ldw, float* y, int ldy, int n)
    {
        float* w0 = w, w1 = w + ldw, w2 = w + 2L * ldw, w3 = w + 3L * ldw;
        float* xt1 = T > 1 ? x + ldx : x, xt2 = T > 2 ? x + 2L * ldx : x, xt3 = T > 3 ? x + 3L * ldx : x;
        float* y1 = T > 1 ? y + ldy : null, y2 = T > 2 ? y + 2L * ldy : null, y3 = T > 3 ? y + 3L * ldy : null;
        Vector512<float> b00 = Vector512.Create(x[0]), b01 = Vector512.Create(x[1]), b02 = Vector512.Create(x[2]), b03 = Vector512.Create(x[3]);
        Vector512<float> b10 = Vector512.Create(xt1[0]), b11 = Vector512.Create(xt1[1]), b12 = Vector512.Create(xt1[2]), b13 = Vector512.Create(xt1[3]);
        Vector512<float> b20 = Vector512.Create(xt2[0]), b21 = Vector512.Create(xt2[1]), b22 = Vector512.Create(xt2[2]), b23 = Vector512.Create(xt2[3]);
        Vector512<float> b30 = Vector512.Create(xt3[0]), b31 = Vector512.Create(xt3[1]), b32 = Vector512.Create(xt3[2]), b33 = Vector512.Create(xt3[3]);
        int j = 0;
        for (; j + 16 <= n; j += 16)
        {
            Vector512<float> a0 = Vector512.Load(w0 + j), a1 = Vector512.Load(w1 + j), a2 = Vector512.Load(w2 + j), a3 = Vector512.Load(w3 + j);
            var acc = Vector512.FusedMultiplyAdd(b00, a0, Vector512.Load(y + j));
            acc = Vector512.FusedMultiplyAdd(b01, a1, acc); acc = Vector512.FusedMultiplyAdd(b02, a2, acc);
            Vector512.FusedMultiplyAdd(b03, a3, acc).Store(y + j);
            if (y1 == null) continue;
            acc = Vector512.FusedMultiplyAdd(b10, a0, Vector512.Load(y1 + j));
            acc = Vector512.FusedMultiplyAdd(b11, a1, acc); acc = Vector512.FusedMultiplyAdd(b12, a2, acc);
            Vector512.FusedMultiplyAdd(b13, a3, acc).Store(y1 + j);
            if (y2 == null) continue;
            acc = Vector512.FusedMultiplyAdd(b20, a0, Vector512.Load(y2 + j));
            acc = Vector512.FusedMultiplyAdd(b21, a1, acc); acc = Vector512.FusedMultiplyAdd(b22, a2, acc);
            Vector512.FusedMultiplyAdd(b23, a3, acc).Store(y2 + j);
            if (y3 == null) continue;
            acc = Vector512.FusedMultiplyAdd(b30, a0, Vector512.Load(y3 + j));
            acc = Vector512.FusedMultiplyAdd(b31, a1, acc); acc = Vector512.FusedMultiplyAdd(b32, a2, acc);
            Vector512.FusedMultiplyAdd(b33, a3, acc).Store(y3 + j);
        }
        // remainder
        for (; j < n; j++)
        {
            for (int t = 0; t < T; t++)
            {
                float* xt = x + (long)t * ldx;
                y[(long)t * ldy + j] += xt[0] * w0[j] + xt[1] * w1[j] + xt[2] * w2[j] + xt[3] * w3[j];
            }
        }
    }

    // y += a0·x0 + a1·x1 + a2·x2 + a3·x3
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Axpy4(float a0, float a1, float a2, float a3, float* x0, float* x1, float* x2, float* x3, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> v0 = Vector512.Create(a0), v1 = Vector512.Create(a1), v2 = Vector512.Create(a2), v3 = Vector512.Create(a3);
            for (; i + 16 <= n; i += 16)
            {
                var acc = Vector512.FusedMultiplyAdd(v0, Vector512.Load(x0 + i), Vector512.Load(y + i));
                acc = Vector512.FusedMultiplyAdd(v1, Vector512.Load(x1 + i), acc);
                acc = Vector512.FusedMultiplyAdd(v2, Vector512.Load(x2 + i), acc);
                Vector512.Store(Vector512.FusedMultiplyAdd(v3, Vector512.Load(x3 + i), acc), y + i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> v0 = Vector256.Create(a0), v1 = Vector256.Create(a1), v2 = Vector256.Create(a2), v3 = Vector256.Create(a3);
            for (; i + 8 <= n; i += 8)
            {
                var acc = Vector256.MultiplyAddEstimate(v0, Vector256.Load(x0 + i), Vector256.Load(y + i));
                acc = Vector256.MultiplyAddEstimate(v1, Vector256.Load(x1 + i), acc);
                acc = Vector256.MultiplyAddEstimate(v2, Vector256.Load(x2 + i), acc);
                Vector256.Store(Vector256.MultiplyAddEstimate(v3, Vector256.Load(x3 + i), acc), y + i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            Vector128<float> v0 = Vector128.Create(a0), v1 = Vector128.Create(a1), v2 = Vector128.Create(a2), v3 = Vector128.Create(a3);
            for (; i + 4 <= n; i += 4)
            {
                var acc = Vector128.MultiplyAddEstimate(v0, Vector128.Load(x0 + i), Vector128.Load(y + i));
                acc = Vector128.MultiplyAddEstimate(v1, Vector128.Load(x1 + i), acc);
                acc = Vector128.MultiplyAddEstimate(v2, Vector128.Load(x2 + i), acc);
                Vector128.Store(Vector128.MultiplyAddEstimate(v3, Vector128.Load(x3 + i), acc), y + i);
            }
        }
        // remainder
        for (; i < n; i++) y[i] += a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
    }
}
