using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Compute;

// Decode GEMV over a prepacked weight: out = x · W (+ bias) for T ≤ 8 rows, reading the GEMM's packed panels
// (Kernels.Prepack.cs) instead of the weight itself, so that decode and prefill read one copy of each weight: an F16/BF16
// checkpoint is never converted into a float32 copy of its own, and a prefill followed by generation touches the panels
// only.
// x: (T, C)  panels: W packed — per NC-wide column block and KC-deep depth block, NR-wide panels of kc × NR  bias: (OC) or
// null  out: (T, OC)
//   for each depth block pc, for each panel p of the task's range (NR output columns): one contiguous run per depth block
//     acc_t = Σ_k x[t, pc + k] · panel[k, :] from zero, k in order (one FMA chain per output)
//     out[t, cols] = acc_t + (pc = 0 ? bias : out[t, cols])
// That is the GEMM micro-kernel's arithmetic per output (Kernels.MatMul.cs, Micro8x32 and Store2), so a decode step's
// projections are bitwise the prefill's rows. Memory-bound like the GEMV: each (panel, depth block) is one contiguous
// kc × NR run read once per pass of up to 4 rows. Tasks are ranges of whole panels, each thread streaming its own runs.
// AVX-512 only (NR = 32): elsewhere callers keep the unpacked GEMV (PackedGemvSupported).
public static unsafe partial class Kernels
{
    /// <summary>Whether <see cref="MatMul(ReadOnlySpan{float}, ReadOnlySpan{float}, PackedWeight?, ReadOnlySpan{float}, Span{float}, int, int, int, WeightLayout, GemmEpilogue, Span{float})"/>
    /// serves decode-sized products (T ≤ 8) from the packed panels on this machine, so that the unpacked weight may be
    /// passed empty.</summary>
    public static bool PackedGemvSupported => Vector512.IsHardwareAccelerated;

    private sealed class PackedGemvJob
    {
        public float* X, Panels, Bias, Out;
        public int T, C, OC, PanelsPerTask;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public PackedGemvJob() => Body = Run;
        private void Run(int task)
        {
            int p0 = task * PanelsPerTask;
            GemvPackedRange(X, Panels, Bias, Out, T, C, OC, p0, Math.Min((OC + 31) / 32, p0 + PanelsPerTask));
        }
    }

    [ThreadStatic] private static PackedGemvJob? t_packedGemvJob;

    // x: (T ≤ 4, C)  panels: W packed (NR = 32)  bias: (OC) or null  out: (T, OC)
    private static void GemvPacked(float* x, float* panels, float* bias, float* output, int T, int C, int OC)
    {
        int panelCount = (OC + 31) / 32;
        // memory-bound: below 64 K weights a hand-off costs more than the second stream gains (as the unpacked GEMV)
        int threads = !ForceParallel && (long)C * OC < (1L << 16) ? 1 : Math.Min(MaxThreads, panelCount);
        if (threads <= 1)
        {
            GemvPackedRange(x, panels, bias, output, T, C, OC, 0, panelCount);
            return;
        }
        // one contiguous range per thread: each streams its own runs of every depth block
        int perTask = (panelCount + threads - 1) / threads;
        int tasks = (panelCount + perTask - 1) / perTask;
        var job = t_packedGemvJob ??= new PackedGemvJob();
        job.X = x; job.Panels = panels; job.Bias = bias; job.Out = output;
        job.T = T; job.C = C; job.OC = OC; job.PanelsPerTask = perTask;
        if (!TryRunOnTeam(job.Body, tasks, threads))
        {
            job.Options.MaxDegreeOfParallelism = Math.Min(threads, tasks);
            Parallel.For(0, tasks, job.Options, job.Body);
        }
    }

    // Panels [p0, p1) of out's rows 0..T−1 (T ≤ 4). Rows past T are computed from row 0 and dropped: the loop has one
    // shape for every T, and the FMAs are free next to the weight stream.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvPackedRange(float* x, float* panels, float* bias, float* output, int T, int C, int OC, int p0, int p1)
    {
        float* x0 = x, x1 = T > 1 ? x + C : x, x2 = T > 2 ? x + 2 * C : x, x3 = T > 3 ? x + 3 * C : x;
        float* edge = stackalloc float[32]; // a ragged last panel's valid columns, padded with zeros
        // per column block, depth blocks in order and the task's panels within each: one contiguous run of the packed
        // weight per depth block (panel by panel would jump a whole depth block every kc × 32 floats)
        for (int pa = p0, pb; pa < p1; pa = pb)
        {
            int block = pa * 32 / GemmNC * GemmNC, nc = Math.Min(GemmNC, OC - block);
            pb = Math.Min(p1, (block + nc + 31) / 32);
            for (int pc = 0; pc < C; pc += GemmKC)
                for (int p = pa; p < pb; p++)
                {
                    int n = p * 32, cols = Math.Min(32, OC - n);
                    int kc = Math.Min(GemmKC, C - pc);
                    float* b = panels + PackedBlockOffset(block, pc, nc, C, 32) + (long)(n - block) * kc;
                    Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default,
                        c20 = default, c21 = default, c30 = default, c31 = default;
                    float* a0 = x0 + pc, a1 = x1 + pc, a2 = x2 + pc, a3 = x3 + pc;
                    if (T == 1)
                    {
                        for (int k = 0; k < kc; k++, b += 32)
                        {
                            var av = Vector512.Create(a0[k]);
                            c00 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b), c00);
                            c01 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 16), c01);
                        }
                    }
                    else
                    {
                        for (int k = 0; k < kc; k++, b += 32)
                        {
                            var b0 = Vector512.Load(b);
                            var b1 = Vector512.Load(b + 16);
                            var av = Vector512.Create(a0[k]); c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
                            av = Vector512.Create(a1[k]); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
                            av = Vector512.Create(a2[k]); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
                            av = Vector512.Create(a3[k]); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
                        }
                    }
                    bool first = pc == 0;
                    float* biasCols = first && bias != null ? bias + n : null;
                    PackedGemvStore(output + n, c00, c01, biasCols, first, cols, edge);
                    if (T > 1) PackedGemvStore(output + OC + n, c10, c11, biasCols, first, cols, edge);
                    if (T > 2) PackedGemvStore(output + 2L * OC + n, c20, c21, biasCols, first, cols, edge);
                    if (T > 3) PackedGemvStore(output + 3L * OC + n, c30, c31, biasCols, first, cols, edge);
                }
        }
    }

    // out[0..cols) = acc + (first ? bias (or 0) : out), as the GEMM's Store2; a ragged panel as the GEMM's ragged tile
    // (GemmTile: the tile into scratch as acc + 0, then bias or out added per element)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PackedGemvStore(float* o, Vector512<float> acc0, Vector512<float> acc1, float* bias, bool first, int cols, float* edge)
    {
        if (cols == 32)
        {
            Vector512<float> s0 = first ? (bias != null ? Vector512.Load(bias) : Vector512<float>.Zero) : Vector512.Load(o);
            Vector512<float> s1 = first ? (bias != null ? Vector512.Load(bias + 16) : Vector512<float>.Zero) : Vector512.Load(o + 16);
            (acc0 + s0).Store(o);
            (acc1 + s1).Store(o + 16);
            return;
        }
        (acc0 + Vector512<float>.Zero).Store(edge);
        (acc1 + Vector512<float>.Zero).Store(edge + 16);
        for (int j = 0; j < cols; j++) o[j] = first ? edge[j] + (bias == null ? 0f : bias[j]) : o[j] + edge[j];
    }
}
