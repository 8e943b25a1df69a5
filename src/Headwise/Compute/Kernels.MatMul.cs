using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// Packed, cache-blocked GEMM in the Goto/BLIS style:
//   for each task (a block of NC output columns × a chunk of rows)
//     for pc in C step KC:   pack B(KC × NC) into NR-wide panels (reused for every row block)
//       for ic step MC:      pack A(MC × KC) into MR-tall panels
//         for jr step NR, for ir step MR: MR×NR register-tile microkernel with FMA
// The B micro-panel (KC·NR floats) stays in L1, the A block (MC·KC) in L2.
// Weights come from memory-mapped files, so panels are packed on the fly into per-thread buffers.
public static unsafe partial class Kernels
{
    private const int GemmKC = 256;  // depth of a packed block: B micro-panel 256·32·4 B = 32 KiB ≤ L1d (48 KiB on Zen 5)
    private const int GemmMC = 120;  // rows per A block: 120·256·4 B = 120 KiB, well inside L2; a multiple of every MR (12, 6, 4)
    // columns per packed B block (1 MiB, streamed from L2/L3 once per A block; each 32 KiB micro-panel is then reused
    // from L1 by every row tile): wide blocks mean x is packed only OC/1024 times, measured ~10% faster than 256
    private const int GemmNC = 1024;
    private const int GemvMaxT = 4;  // rows handled by one streaming pass over the weights
    private const int GemvMaxRows = 8; // T ≤ this takes the GEMV path (measured: two weight passes beat packing w for T = 5..8)

    // Register tile, chosen once: AVX-512 12×32 (24 zmm accumulators), AVX2 6×16 (12 ymm), Vector128 4×8 (8 xmm).
    private static readonly int GemmMR = Vector512.IsHardwareAccelerated ? 12 : Vector256.IsHardwareAccelerated ? 6 : 4;
    private static readonly int GemmNR = Vector512.IsHardwareAccelerated ? 32 : Vector256.IsHardwareAccelerated ? 16 : 8;

    /// <summary>Tests set this to push even tiny problems through the multi-threaded paths.</summary>
    internal static bool ForceParallel { get; set; }

    [ThreadStatic] private static float* t_packA;
    [ThreadStatic] private static float* t_packB;

    /// <summary>out = x · W (+ bias).</summary>
    // x: (T, C)  w: (OC, C) for OutIn or (C, OC) for InOut  bias: (OC) or empty  out: (T, OC)
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> output,
        int T, int C, int OC, WeightLayout layout)
    {
        Require(T >= 0 && C >= 0 && OC >= 0, "MatMul: negative dimension");
        Require(x.Length >= (long)T * C, "MatMul: x is shorter than T·C");
        Require(w.Length >= (long)C * OC, "MatMul: w is shorter than C·OC");
        Require(bias.IsEmpty || bias.Length >= OC, "MatMul: bias is shorter than OC");
        Require(output.Length >= (long)T * OC, "MatMul: out is shorter than T·OC");
        if (T == 0 || OC == 0)
        {
            return;
        }
        if (C == 0)
        {
            // an empty sum: out = bias (or 0)
            for (int t = 0; t < T; t++)
            {
                var row = output.Slice(t * OC, OC);
                if (bias.IsEmpty) row.Clear(); else bias[..OC].CopyTo(row);
            }
            return;
        }
        fixed (float* px = x, pw = w, pb = bias, po = output)
        {
            float* pbias = bias.IsEmpty ? null : pb;
            if (T <= GemvMaxRows)
            {
                // decode and tiny batches: one streaming pass over w per group of up to 4 rows beats packing all of w
                for (int t0 = 0; t0 < T; t0 += GemvMaxT)
                {
                    Gemv(px + (long)t0 * C, pw, pbias, po + (long)t0 * OC, Math.Min(GemvMaxT, T - t0), C, OC, layout);
                }
            }
            else
            {
                Gemm(px, pw, pbias, po, T, C, OC, layout);
            }
        }
    }

    // ---------------------------------------------------------------- GEMM

    private sealed class GemmJob
    {
        public float* X, W, Bias, Out;
        public int T, C, OC, RowChunk, ColBlocks;
        public WeightLayout Layout;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public GemmJob() => Body = Run;
        private void Run(int task)
        {
            int r0 = task / ColBlocks * RowChunk;
            int n0 = task % ColBlocks * GemmNC;
            GemmTask(X, W, Bias, Out, T, C, OC, Layout, r0, Math.Min(T, r0 + RowChunk), n0, Math.Min(OC, n0 + GemmNC));
        }
    }

    [ThreadStatic] private static GemmJob? t_gemmJob;

    private static void Gemm(float* x, float* w, float* bias, float* output, int T, int C, int OC, WeightLayout layout)
    {
        int colBlocks = (OC + GemmNC - 1) / GemmNC;
        // below ~4 MFLOP a thread hand-off costs more than it saves
        int threads = !ForceParallel && (long)T * C * OC < (1L << 21) ? 1 : MaxThreads;
        int rowChunks = 1;
        if (threads > 1 && colBlocks < 2 * threads)
        {
            // too few column blocks to balance: split rows as well; each row chunk packs its own copy of B,
            // so keep chunks at least one A block (MC rows) tall
            int maxChunks = Math.Max(1, T / GemmMC);
            rowChunks = Math.Min(maxChunks, (2 * threads + colBlocks - 1) / colBlocks);
        }
        int rowChunk = (T + rowChunks - 1) / rowChunks;
        rowChunk = (rowChunk + GemmMR - 1) / GemmMR * GemmMR;
        rowChunks = (T + rowChunk - 1) / rowChunk;
        int tasks = rowChunks * colBlocks;
        if (threads == 1 || tasks == 1)
        {
            GemmTask(x, w, bias, output, T, C, OC, layout, 0, T, 0, OC);
            return;
        }
        var job = t_gemmJob ??= new GemmJob();
        job.X = x; job.W = w; job.Bias = bias; job.Out = output;
        job.T = T; job.C = C; job.OC = OC; job.Layout = layout;
        job.RowChunk = rowChunk; job.ColBlocks = colBlocks;
        job.Options.MaxDegreeOfParallelism = Math.Min(threads, tasks);
        Parallel.For(0, tasks, job.Options, job.Body);
    }

    private static void EnsurePackBuffers()
    {
        if (t_packA == null)
        {
            // once per thread, never freed: a few hundred KiB per worker for the life of the process
            t_packA = (float*)NativeMemory.AlignedAlloc((nuint)(GemmMC * GemmKC * sizeof(float)), 64);
            t_packB = (float*)NativeMemory.AlignedAlloc((nuint)(GemmKC * GemmNC * sizeof(float)), 64);
        }
    }

    // Output rows [r0, r1) × columns [n0, n1), the whole depth C.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmTask(float* x, float* w, float* bias, float* output, int T, int C, int OC, WeightLayout layout,
        int r0, int r1, int n0, int n1)
    {
        EnsurePackBuffers();
        float* packA = t_packA, packB = t_packB;
        int mr = GemmMR, nr = GemmNR;
        float* edge = stackalloc float[12 * 32]; // MR·NR scratch for ragged tiles
        for (int n = n0; n < n1; n += GemmNC)
        {
            int nc = Math.Min(GemmNC, n1 - n);
            for (int pc = 0; pc < C; pc += GemmKC)
            {
                int kc = Math.Min(GemmKC, C - pc);
                bool first = pc == 0;
                PackB(w, C, OC, layout, pc, kc, n, nc, nr, packB);
                for (int ic = r0; ic < r1; ic += GemmMC)
                {
                    int mc = Math.Min(GemmMC, r1 - ic);
                    PackA(x + (long)ic * C + pc, C, mc, kc, mr, packA);
                    for (int jr = 0; jr < nc; jr += nr)
                    {
                        int nrr = Math.Min(nr, nc - jr);
                        float* bp = packB + (long)jr * kc;
                        float* biasTile = bias == null ? null : bias + n + jr;
                        for (int ir = 0; ir < mc; ir += mr)
                        {
                            int mrr = Math.Min(mr, mc - ir);
                            float* ap = packA + (long)ir * kc;
                            float* c = output + (long)(ic + ir) * OC + n + jr;
                            if (mrr == mr && nrr == nr)
                            {
                                Micro(ap, bp, kc, c, OC, biasTile, first);
                            }
                            else
                            {
                                // ragged edge: full tile into scratch (panels are zero-padded), then copy the valid part
                                Micro(ap, bp, kc, edge, nr, null, true);
                                for (int i = 0; i < mrr; i++)
                                {
                                    float* ci = c + (long)i * OC;
                                    float* ei = edge + i * nr;
                                    for (int j = 0; j < nrr; j++)
                                    {
                                        ci[j] = first ? ei[j] + (biasTile == null ? 0f : biasTile[j]) : ci[j] + ei[j];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // A block (mc × kc, row stride ldx) → MR-tall panels, each kc × MR with MR contiguous; rows past mc are zero.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA(float* x, int ldx, int mc, int kc, int mr, float* dst)
    {
        for (int i0 = 0; i0 < mc; i0 += mr)
        {
            int rows = Math.Min(mr, mc - i0);
            for (int i = 0; i < mr; i++)
            {
                float* d = dst + i;
                if (i < rows)
                {
                    float* s = x + (long)(i0 + i) * ldx;
                    for (int k = 0; k < kc; k++) d[k * mr] = s[k];
                }
                else
                {
                    for (int k = 0; k < kc; k++) d[k * mr] = 0f;
                }
            }
            dst += mr * kc;
        }
    }

    // B block (depth rows [pc, pc+kc), columns [n, n+nc)) → NR-wide panels, each kc × NR with NR contiguous; zero-padded.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackB(float* w, int C, int OC, WeightLayout layout, int pc, int kc, int n, int nc, int nr, float* dst)
    {
        int j0 = 0;
        if (layout == WeightLayout.InOut)
        {
            // w: (C, OC): walk each weight row once, left to right, scattering NR-wide runs into the full panels;
            // panel-by-panel order would revisit kc rows (kc pages) per panel and thrash the TLB
            int full = nc / nr;
            float* s = w + (long)pc * OC + n;
            for (int k = 0; k < kc; k++, s += OC)
            {
                float* d = dst + k * nr;
                if (Vector512.IsHardwareAccelerated && nr == 32)
                {
                    // inline 128-byte copies: a memmove call per run costs more than the copy
                    for (int p = 0; p < full; p++)
                    {
                        float* dp = d + (long)p * nr * kc;
                        Vector512.Load(s + p * 32).Store(dp);
                        Vector512.Load(s + p * 32 + 16).Store(dp + 16);
                    }
                }
                else
                {
                    for (int p = 0; p < full; p++)
                    {
                        new ReadOnlySpan<float>(s + p * nr, nr).CopyTo(new Span<float>(d + (long)p * nr * kc, nr));
                    }
                }
            }
            j0 = full * nr;
            dst += (long)full * nr * kc;
        }
        for (; j0 < nc; j0 += nr)
        {
            int cols = Math.Min(nr, nc - j0);
            if (layout == WeightLayout.InOut)
            {
                // w: (C, OC): each depth row of the panel is a contiguous run of NR weights
                float* s = w + (long)pc * OC + n + j0;
                for (int k = 0; k < kc; k++, s += OC)
                {
                    float* d = dst + k * nr;
                    if (cols == nr)
                    {
                        new ReadOnlySpan<float>(s, nr).CopyTo(new Span<float>(d, nr));
                    }
                    else
                    {
                        for (int j = 0; j < cols; j++) d[j] = s[j];
                        for (int j = cols; j < nr; j++) d[j] = 0f;
                    }
                }
            }
            else
            {
                // w: (OC, C): a transpose; read each weight row sequentially, write it down a panel column
                if (cols == nr && Avx.IsSupported)
                {
                    PackBTransposed8x8(w + (long)(n + j0) * C + pc, C, kc, nr, dst);
                    dst += nr * kc;
                    continue;
                }
                for (int j = 0; j < nr; j++)
                {
                    float* d = dst + j;
                    if (j < cols)
                    {
                        float* s = w + (long)(n + j0 + j) * C + pc;
                        for (int k = 0; k < kc; k++) d[k * nr] = s[k];
                    }
                    else
                    {
                        for (int k = 0; k < kc; k++) d[k * nr] = 0f;
                    }
                }
            }
            dst += nr * kc;
        }
    }

    // w: NR rows of kc weights at stride C → dst: (kc, NR), by 8×8 register transposes (AVX), ~8× fewer memory ops
    // than an element-by-element transpose
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackBTransposed8x8(float* w, int C, int kc, int nr, float* dst)
    {
        int k0 = 0;
        for (; k0 + 8 <= kc; k0 += 8)
        {
            for (int j0 = 0; j0 < nr; j0 += 8)
            {
                float* s = w + (long)j0 * C + k0;
                Vector256<float> r0 = Avx.LoadVector256(s), r1 = Avx.LoadVector256(s + C), r2 = Avx.LoadVector256(s + 2L * C), r3 = Avx.LoadVector256(s + 3L * C),
                    r4 = Avx.LoadVector256(s + 4L * C), r5 = Avx.LoadVector256(s + 5L * C), r6 = Avx.LoadVector256(s + 6L * C), r7 = Avx.LoadVector256(s + 7L * C);
                Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3),
                    t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
                Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE), u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE),
                    u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE), u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
                float* d = dst + (long)k0 * nr + j0;
                Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
                Avx.Store(d + nr, Avx.Permute2x128(u1, u5, 0x20));
                Avx.Store(d + 2 * nr, Avx.Permute2x128(u2, u6, 0x20));
                Avx.Store(d + 3 * nr, Avx.Permute2x128(u3, u7, 0x20));
                Avx.Store(d + 4 * nr, Avx.Permute2x128(u0, u4, 0x31));
                Avx.Store(d + 5 * nr, Avx.Permute2x128(u1, u5, 0x31));
                Avx.Store(d + 6 * nr, Avx.Permute2x128(u2, u6, 0x31));
                Avx.Store(d + 7 * nr, Avx.Permute2x128(u3, u7, 0x31));
            }
        }
        // remainder depth
        for (; k0 < kc; k0++)
        {
            for (int j = 0; j < nr; j++) dst[(long)k0 * nr + j] = w[(long)j * C + k0];
        }
    }

    // c (MR × NR, row stride ldc) = (first ? bias : c) + ap · bp, for full packed panels.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Micro(float* ap, float* bp, int kc, float* c, int ldc, float* bias, bool first)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Micro12x32(ap, bp, kc, c, ldc, bias, first);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Micro6x16(ap, bp, kc, c, ldc, bias, first);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            Micro4x8(ap, bp, kc, c, ldc, bias, first);
        }
        else
        {
            MicroScalar(ap, bp, kc, c, ldc, bias, first);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro12x32(float* a, float* b, int kc, float* c, int ldc, float* bias, bool first)
    {
        // 24 accumulators + 2 B vectors + a broadcast: 27 of 32 zmm registers; 14 loads feed 24 FMAs
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default, c90 = default, c91 = default, c100 = default, c101 = default, c110 = default, c111 = default;
        for (int k = 0; k < kc; k++, a += 12, b += 32)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            av = Vector512.Create(a[8]); c80 = Vector512.FusedMultiplyAdd(av, b0, c80); c81 = Vector512.FusedMultiplyAdd(av, b1, c81);
            av = Vector512.Create(a[9]); c90 = Vector512.FusedMultiplyAdd(av, b0, c90); c91 = Vector512.FusedMultiplyAdd(av, b1, c91);
            av = Vector512.Create(a[10]); c100 = Vector512.FusedMultiplyAdd(av, b0, c100); c101 = Vector512.FusedMultiplyAdd(av, b1, c101);
            av = Vector512.Create(a[11]); c110 = Vector512.FusedMultiplyAdd(av, b0, c110); c111 = Vector512.FusedMultiplyAdd(av, b1, c111);
        }
        Vector512<float> s0, s1;
        if (first)
        {
            s0 = bias == null ? Vector512<float>.Zero : Vector512.Load(bias);
            s1 = bias == null ? Vector512<float>.Zero : Vector512.Load(bias + 16);
        }
        else
        {
            s0 = s1 = Vector512<float>.Zero;
        }
        Store2(c, c00, c01, s0, s1, first); c += ldc;
        Store2(c, c10, c11, s0, s1, first); c += ldc;
        Store2(c, c20, c21, s0, s1, first); c += ldc;
        Store2(c, c30, c31, s0, s1, first); c += ldc;
        Store2(c, c40, c41, s0, s1, first); c += ldc;
        Store2(c, c50, c51, s0, s1, first); c += ldc;
        Store2(c, c60, c61, s0, s1, first); c += ldc;
        Store2(c, c70, c71, s0, s1, first); c += ldc;
        Store2(c, c80, c81, s0, s1, first); c += ldc;
        Store2(c, c90, c91, s0, s1, first); c += ldc;
        Store2(c, c100, c101, s0, s1, first); c += ldc;
        Store2(c, c110, c111, s0, s1, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store2(float* c, Vector256<float> v0, Vector256<float> v1, Vector256<float> s0, Vector256<float> s1, bool first)
    {
        if (!first)
        {
            s0 = Vector256.Load(c);
            s1 = Vector256.Load(c + 8);
        }
        Vector256.Store(v0 + s0, c);
        Vector256.Store(v1 + s1, c + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store2(float* c, Vector128<float> v0, Vector128<float> v1, Vector128<float> s0, Vector128<float> s1, bool first)
    {
        if (!first)
        {
            s0 = Vector128.Load(c);
            s1 = Vector128.Load(c + 4);
        }
        Vector128.Store(v0 + s0, c);
        Vector128.Store(v1 + s1, c + 4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store2(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> s0, Vector512<float> s1, bool first)
    {
        if (!first)
        {
            s0 = Vector512.Load(c);
            s1 = Vector512.Load(c + 16);
        }
        Vector512.Store(v0 + s0, c);
        Vector512.Store(v1 + s1, c + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro6x16(float* a, float* b, int kc, float* c, int ldc, float* bias, bool first)
    {
        // 12 accumulators + 2 B vectors + a broadcast: 15 of 16 ymm registers
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int k = 0; k < kc; k++, a += 6, b += 16)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]); c00 = Vector256.MultiplyAddEstimate(av, b0, c00); c01 = Vector256.MultiplyAddEstimate(av, b1, c01);
            av = Vector256.Create(a[1]); c10 = Vector256.MultiplyAddEstimate(av, b0, c10); c11 = Vector256.MultiplyAddEstimate(av, b1, c11);
            av = Vector256.Create(a[2]); c20 = Vector256.MultiplyAddEstimate(av, b0, c20); c21 = Vector256.MultiplyAddEstimate(av, b1, c21);
            av = Vector256.Create(a[3]); c30 = Vector256.MultiplyAddEstimate(av, b0, c30); c31 = Vector256.MultiplyAddEstimate(av, b1, c31);
            av = Vector256.Create(a[4]); c40 = Vector256.MultiplyAddEstimate(av, b0, c40); c41 = Vector256.MultiplyAddEstimate(av, b1, c41);
            av = Vector256.Create(a[5]); c50 = Vector256.MultiplyAddEstimate(av, b0, c50); c51 = Vector256.MultiplyAddEstimate(av, b1, c51);
        }
        // explicit stores: collecting the accumulators into a span would pin them to the stack for the whole loop
        Vector256<float> s0 = first && bias != null ? Vector256.Load(bias) : Vector256<float>.Zero;
        Vector256<float> s1 = first && bias != null ? Vector256.Load(bias + 8) : Vector256<float>.Zero;
        Store2(c, c00, c01, s0, s1, first); c += ldc;
        Store2(c, c10, c11, s0, s1, first); c += ldc;
        Store2(c, c20, c21, s0, s1, first); c += ldc;
        Store2(c, c30, c31, s0, s1, first); c += ldc;
        Store2(c, c40, c41, s0, s1, first); c += ldc;
        Store2(c, c50, c51, s0, s1, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4x8(float* a, float* b, int kc, float* c, int ldc, float* bias, bool first)
    {
        // portable path (SSE, NEON): 4×8 tile in 8 Vector128 accumulators
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default;
        for (int k = 0; k < kc; k++, a += 4, b += 8)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var av = Vector128.Create(a[0]); c00 = Vector128.MultiplyAddEstimate(av, b0, c00); c01 = Vector128.MultiplyAddEstimate(av, b1, c01);
            av = Vector128.Create(a[1]); c10 = Vector128.MultiplyAddEstimate(av, b0, c10); c11 = Vector128.MultiplyAddEstimate(av, b1, c11);
            av = Vector128.Create(a[2]); c20 = Vector128.MultiplyAddEstimate(av, b0, c20); c21 = Vector128.MultiplyAddEstimate(av, b1, c21);
            av = Vector128.Create(a[3]); c30 = Vector128.MultiplyAddEstimate(av, b0, c30); c31 = Vector128.MultiplyAddEstimate(av, b1, c31);
        }
        Vector128<float> s0 = first && bias != null ? Vector128.Load(bias) : Vector128<float>.Zero;
        Vector128<float> s1 = first && bias != null ? Vector128.Load(bias + 4) : Vector128<float>.Zero;
        Store2(c, c00, c01, s0, s1, first); c += ldc;
        Store2(c, c10, c11, s0, s1, first); c += ldc;
        Store2(c, c20, c21, s0, s1, first); c += ldc;
        Store2(c, c30, c31, s0, s1, first);
    }

    // no SIMD at all: the same 4×8 tile in scalar registers' worth of stack
    private static void MicroScalar(float* a, float* b, int kc, float* c, int ldc, float* bias, bool first)
    {
        Span<float> acc = stackalloc float[4 * 8];
        for (int k = 0; k < kc; k++, a += 4, b += 8)
        {
            for (int i = 0; i < 4; i++)
            {
                float ai = a[i];
                for (int j = 0; j < 8; j++) acc[i * 8 + j] += ai * b[j];
            }
        }
        StoreTile(c, ldc, bias, first, acc, 4, 8);
    }

    private static void StoreTile(float* c, int ldc, float* bias, bool first, ReadOnlySpan<float> acc, int mr, int nr)
    {
        for (int i = 0; i < mr; i++, c += ldc)
        {
            for (int j = 0; j < nr; j++)
            {
                c[j] = acc[i * nr + j] + (first ? (bias == null ? 0f : bias[j]) : c[j]);
            }
        }
    }

    // ---------------------------------------------------------------- GEMV (decode, T ≤ 4)

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
            job.Options.MaxDegreeOfParallelism = tasks;
            Parallel.For(0, tasks, job.Options, job.Body);
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
        job.Options.MaxDegreeOfParallelism = Math.Min(threads, tasks);
        Parallel.For(0, tasks, job.Options, job.Body);
    }

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

    // ---------------------------------------------------------------- BLAS-1 helpers shared by the kernels

    // Σ a[i]·b[i] with independent accumulators (FMA latency hiding)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 64 <= n; i += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 32), Vector512.Load(b + i + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 48), Vector512.Load(b + i + 48), s3);
            }
            for (; i + 16 <= n; i += 16)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
            }
            sum = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 32 <= n; i += 32)
            {
                s0 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
                s2 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 16), Vector256.Load(b + i + 16), s2);
                s3 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 24), Vector256.Load(b + i + 24), s3);
            }
            for (; i + 8 <= n; i += 8)
            {
                s0 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            }
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            Vector128<float> s0 = default, s1 = default;
            for (; i + 8 <= n; i += 8)
            {
                s0 = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), s0);
                s1 = Vector128.MultiplyAddEstimate(Vector128.Load(a + i + 4), Vector128.Load(b + i + 4), s1);
            }
            for (; i + 4 <= n; i += 4)
            {
                s0 = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), s0);
            }
            sum = Vector128.Sum(s0 + s1);
        }
        // remainder
        for (; i < n; i++) sum = sum + a[i] * b[i];
        return sum;
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

    // y += alpha·x
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)), y + i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.MultiplyAddEstimate(va, Vector256.Load(x + i), Vector256.Load(y + i)), y + i);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(alpha);
            for (; i + 4 <= n; i += 4) Vector128.Store(Vector128.MultiplyAddEstimate(va, Vector128.Load(x + i), Vector128.Load(y + i)), y + i);
        }
        // remainder
        for (; i < n; i++) y[i] = y[i] + alpha * x[i];
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
