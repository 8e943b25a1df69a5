using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// out = x · W (+ bias), then an optional epilogue: the projections and MLPs of every layer.
// x: (T, C)  w: (OC, C) for OutIn (nn.Linear) or (C, OC) for InOut (GPT-2 Conv1D)  bias: (OC) or empty  out: (T, OC)
// residual: (T, OC), only for GemmEpilogue.Residual (added into) and GemmEpilogue.SwiGlu (up = x·W_up + b_up, read)
// T ≤ 8 rows (decode) go to the GEMV in Kernels.Gemv.cs; larger T to the packed GEMM below.
//
// Packed, cache-blocked GEMM in the Goto/BLIS style:
//   for each task (a block of NC output columns × a chunk of rows)
//     for pc in C step KC:   pack B(KC × NC) into NR-wide panels (reused for every row block)
//       for ic step MC:      pack A(MC × KC) into MR-tall panels
//         for jr step NR, for ir step MR: MR×NR register-tile microkernel with FMA
// The B micro-panel (KC·NR floats) stays in L1, the A block (MC·KC) in L2. A prepacked weight swaps the pc and ic loops
// (nothing to pack, and the out block stays in L2 across the depth), or keeps A for the whole depth (GemmTaskResidentA).
// Weights come from memory-mapped files, so panels are packed on the fly into per-thread buffers, unless the caller hands
// over the weight already packed once (PackedWeight, Kernels.Prepack.cs): then the B panels are read from there.
// The epilogue (an activation, or the residual add) runs on each finished tile right after its last depth block is stored,
// while the tile is still in L1: no second pass over out in memory.

/// <summary>What the GEMM does to each output value after the last depth block (bias included): the pass that would
/// otherwise follow the GEMM over the whole output, fused into its store.</summary>
public enum GemmEpilogue
{
    /// <summary>out = x · W + bias.</summary>
    None,
    /// <summary>out = gelu_new(x · W + bias), the same function as <see cref="Kernels.GeluTanh"/>.</summary>
    GeluTanh,
    /// <summary>out = gelu(x · W + bias), the same function as <see cref="Kernels.GeluErf"/>.</summary>
    GeluErf,
    /// <summary>out = silu(x · W + bias), the same function as <see cref="Kernels.Silu"/>.</summary>
    Silu,
    /// <summary>out = x · W + bias and residual = residual + out: a sublayer's output added into the residual stream.</summary>
    Residual,
    /// <summary>out = silu(x · W_gate + bias) ⊙ up, up read from the epilogue's operand (the <c>residual</c> argument, the
    /// up projection's output): the gated MLP's product, the same function as <see cref="Kernels.SwiGlu"/>.</summary>
    SwiGlu,
}

public static unsafe partial class Kernels
{
    // depth of a packed block: B micro-panel 256·32·4 B = 32 KiB, two thirds of Zen 5's L1d and all of Zen 4's; on Zen 4
    // KC = 128 and 192 (16 / 24 KiB) were no faster on one thread and slower on two, and 512 slower on Zen 5 (docs/performance.md)
    private const int GemmKC = 256;
    // columns per packed B block (1 MiB, streamed from L2/L3 once per A block; each 32 KiB micro-panel is then reused
    // from L1 by every row tile): wide blocks mean x is packed only OC/1024 times, measured ~10% faster than 256
    private const int GemmNC = 1024;

    // Register tile, chosen once: AVX-512 8×32 (16 zmm accumulators), AVX2 6×16 (12 ymm), Vector128 4×8 (8 xmm).
    // 8 rows rather than 12: prompt lengths that are multiples of 8 (128, 512, 1,024) fill whole tiles instead of
    // computing a padded last tile through the edge scratch (docs/performance.md, "GEMM at the model's shapes").
    private static readonly int GemmMR = Vector512.IsHardwareAccelerated ? 8 : Vector256.IsHardwareAccelerated ? 6 : 4;
    private static readonly int GemmNR = Vector512.IsHardwareAccelerated ? 32 : Vector256.IsHardwareAccelerated ? 16 : 8;
    // rows per A block: 128 rounded up to a multiple of MR (128·256·4 B = 128 KiB, well inside L2), so that a 128-row prompt
    // is one A block — with 120, every column part also ran an 8-row second block whose B panels were used only once
    private static readonly int GemmMC = RoundUp(128, GemmMR);
    // A small enough to pack once for the whole depth (rows·C floats ≤ 512 KiB, half of L2) takes the A-resident loop order
    // (GemmTaskResidentA): the prompts of 128 tokens or fewer at C = 768, the unembedding among them
    private const int GemmResidentAFloats = 1 << 17;

    /// <summary>Tests set this to push even tiny problems through the multi-threaded paths.</summary>
    internal static bool ForceParallel { get; set; }

    [ThreadStatic] private static float* t_packA;
    [ThreadStatic] private static float* t_packAResident;
    [ThreadStatic] private static float* t_packB;

    /// <summary>out = x · W (+ bias).</summary>
    // x: (T, C)  w: (OC, C) for OutIn or (C, OC) for InOut  bias: (OC) or empty  out: (T, OC)
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> output,
        int T, int C, int OC, WeightLayout layout) => MatMul(x, w, null, bias, output, T, C, OC, layout);

    /// <summary>out = x · W (+ bias), the GEMM reading W's panels from <paramref name="packed"/> (W packed once by
    /// <see cref="PackWeight"/>) when it is not null: the same sums in the same order as the unpacked call, bitwise the same
    /// output. Decode-sized T (≤ 8 rows) streams the panels too where <see cref="PackedGemvSupported"/> (then
    /// <paramref name="w"/> may be empty), with the GEMM's sums per row, so a decode step's rows are bitwise the prefill's;
    /// elsewhere it streams <paramref name="w"/> (the GEMV). Then <paramref name="epilogue"/>
    /// (<see cref="GemmEpilogue"/>): an activation of out, <c>residual += out</c>, or <c>out = silu(out) ⊙ residual</c>, in
    /// the GEMM's store; bitwise the separate pass for the residual add, and for activations when OC is a multiple of 32
    /// (else the pass may take a narrower vector path for the tail of a row: within an ulp).</summary>
    // x: (T, C)  w: (OC, C) for OutIn or (C, OC) for InOut  packed: w's panels  bias: (OC) or empty  out: (T, OC)
    // residual: (T, OC) for GemmEpilogue.Residual (added into) or SwiGlu (up, read), not overlapping out; else empty
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> w, PackedWeight? packed, ReadOnlySpan<float> bias,
        Span<float> output, int T, int C, int OC, WeightLayout layout, GemmEpilogue epilogue = GemmEpilogue.None, Span<float> residual = default)
    {
        Require(T >= 0 && C >= 0 && OC >= 0, "MatMul: negative dimension");
        Require(x.Length >= (long)T * C, "MatMul: x is shorter than T·C");
        // w may be empty when the packed panels serve the whole product (the GEMM's rows, T > GemvMaxRows; the packed GEMV)
        Require(w.Length >= (long)C * OC || (packed is not null && (T > GemvMaxRows || PackedGemvSupported)), "MatMul: w is shorter than C·OC");
        Require(bias.IsEmpty || bias.Length >= OC, "MatMul: bias is shorter than OC");
        Require(output.Length >= (long)T * OC, "MatMul: out is shorter than T·OC");
        Require(packed is null || packed.Matches(C, OC, layout), "MatMul: the packed weight was packed for another shape or layout");
        bool adds = epilogue is GemmEpilogue.Residual or GemmEpilogue.SwiGlu; // the epilogues with a second operand
        Require(!adds || residual.Length >= (long)T * OC, "MatMul: residual (the epilogue's operand) is shorter than T·OC");
        Require(!adds || !residual[..(T * OC)].Overlaps(output[..(T * OC)]), "MatMul: residual (the epilogue's operand) overlaps out");
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
            EpiloguePass(output[..(T * OC)], adds ? residual[..(T * OC)] : default, epilogue);
            return;
        }
        fixed (float* px = x, pw = w, pb = bias, po = output, pp = packed?.Panels, pr = residual)
        {
            float* pbias = bias.IsEmpty ? null : pb;
            if (T <= GemvMaxRows)
            {
                // decode and tiny batches: one streaming pass over w per group of up to 4 rows beats packing all of w; a
                // weight already packed is streamed from its panels instead (Kernels.GemvPacked.cs: the GEMM's sums)
                for (int t0 = 0; t0 < T; t0 += GemvMaxT)
                {
                    if (packed is not null && PackedGemvSupported)
                    {
                        GemvPacked(px + (long)t0 * C, pp, pbias, po + (long)t0 * OC, Math.Min(GemvMaxT, T - t0), C, OC);
                    }
                    else
                    {
                        Gemv(px + (long)t0 * C, pw, pbias, po + (long)t0 * OC, Math.Min(GemvMaxT, T - t0), C, OC, layout);
                    }
                }
                // a few rows: the epilogue as its own pass costs nothing worth fusing
                EpiloguePass(output[..(T * OC)], adds ? residual[..(T * OC)] : default, epilogue);
            }
            else
            {
                Gemm(px, pw, pp, pbias, po, T, C, OC, layout, epilogue, adds ? pr : null);
            }
        }
    }

    // The epilogue as a separate pass over out (T·OC values): the empty sum and the GEMV's rows.
    private static void EpiloguePass(Span<float> output, Span<float> residual, GemmEpilogue epilogue)
    {
        switch (epilogue)
        {
            case GemmEpilogue.GeluTanh: GeluTanh(output, output); break;
            case GemmEpilogue.GeluErf: GeluErf(output, output); break;
            case GemmEpilogue.Silu: Silu(output, output); break;
            case GemmEpilogue.Residual: Add(residual, output, residual); break;
            case GemmEpilogue.SwiGlu: SwiGlu(output, residual, output); break;
        }
    }

    // The epilogue on a finished rows × cols tile of out (row stride ld; residual, the operand, at the same offsets), still
    // in L1: the same vectorized code as the separate pass, so the same values (Map, Kernels.Activations.cs; TensorPrimitives.Add).
    private static void FinishTile(float* c, float* residual, int ld, int rows, int cols, GemmEpilogue epilogue)
    {
        for (int i = 0; i < rows; i++, c += ld)
        {
            switch (epilogue)
            {
                case GemmEpilogue.GeluTanh: Map<GeluTanhOp>(c, null, c, cols); break;
                case GemmEpilogue.GeluErf: Map<GeluErfOp>(c, null, c, cols); break;
                case GemmEpilogue.Silu: Map<SiluOp>(c, null, c, cols); break;
                case GemmEpilogue.Residual:
                    var r = new Span<float>(residual + (long)i * ld, cols);
                    TensorPrimitives.Add(r, new ReadOnlySpan<float>(c, cols), r);
                    break;
                case GemmEpilogue.SwiGlu: Map<SiluOp>(c, residual + (long)i * ld, c, cols); break;
            }
        }
    }

    // ---------------------------------------------------------------- GEMM

    private sealed class GemmJob
    {
        public float* X, W, PackedB, Bias, Out, Residual;
        public int T, C, OC, RowChunk, ColChunk, ColParts;
        public WeightLayout Layout;
        public GemmEpilogue Epilogue;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public GemmJob() => Body = Run;
        private void Run(int task)
        {
            int r0 = task / ColParts * RowChunk;
            int n0 = task % ColParts * ColChunk;
            GemmTask(X, W, PackedB, Bias, Out, T, C, OC, Layout, Epilogue, Residual, r0, Math.Min(T, r0 + RowChunk), n0, Math.Min(OC, n0 + ColChunk));
        }
    }

    [ThreadStatic] private static GemmJob? t_gemmJob;

    // packedB: w's panels (PackedWeight), or null to pack them on the fly; residual: (T, OC) for GemmEpilogue.Residual/SwiGlu, else null
    private static void Gemm(float* x, float* w, float* packedB, float* bias, float* output, int T, int C, int OC, WeightLayout layout,
        GemmEpilogue epilogue, float* residual)
    {
        // below ~4 MFLOP a thread hand-off costs more than it saves
        int threads = !ForceParallel && (long)T * C * OC < (1L << 21) ? 1 : MaxThreads;
        if (threads == 1)
        {
            GemmTask(x, w, packedB, bias, output, T, C, OC, layout, epilogue, residual, 0, T, 0, OC);
            return;
        }
        // Each part packs the rows of x it multiplies (M·K floats per part for a column part), so fewer, larger parts
        // cost less: with a prepacked weight one per thread, measured faster on a quiet machine than 2–4 per thread at
        // every model shape (a weight packed on the fly keeps up to 4 per thread, as measured before).
        // A prepacked weight and at least MC rows per thread: split the rows — each thread packs only its own rows and
        // runs the whole width, both reading the weight's panels through the shared L3 (75–80% of the FMA peak per thread
        // at 512 and 1,024 rows, against 56–70% for column parts, docs/performance.md). Otherwise split the output's
        // columns, in whole NR panels, into equal parts: a weight packed on the fly is then packed once in all (each part
        // packs only its own columns), and a short prompt keeps both threads busy. Too few panels for the threads (a narrow
        // weight): rows as well, in whole MR tiles.
        int nr = GemmNR, rowParts, colParts, rowChunk, colChunk;
        if (packedB != null && T >= GemmMC * threads)
        {
            rowParts = threads;
            colParts = 1;
            colChunk = OC;
        }
        else
        {
            int panels = (OC + nr - 1) / nr;
            int perThread = packedB != null ? 1 : Math.Clamp(panels / (threads * 8), 1, 4);
            colParts = Math.Min(panels, threads * perThread);
            colChunk = (panels + colParts - 1) / colParts * nr;
            colParts = (OC + colChunk - 1) / colChunk;
            rowParts = colParts >= threads ? 1 : Math.Min((threads + colParts - 1) / colParts, Math.Max(1, T / GemmMR));
        }
        rowChunk = ((T + rowParts - 1) / rowParts + GemmMR - 1) / GemmMR * GemmMR;
        rowParts = (T + rowChunk - 1) / rowChunk;
        int tasks = rowParts * colParts;
        if (tasks == 1)
        {
            GemmTask(x, w, packedB, bias, output, T, C, OC, layout, epilogue, residual, 0, T, 0, OC);
            return;
        }
        var job = t_gemmJob ??= new GemmJob();
        job.X = x; job.W = w; job.PackedB = packedB; job.Bias = bias; job.Out = output;
        job.T = T; job.C = C; job.OC = OC; job.Layout = layout; job.Epilogue = epilogue; job.Residual = residual;
        job.RowChunk = rowChunk; job.ColChunk = colChunk; job.ColParts = colParts;
        // the parked worker team (WorkerTeam.cs, shared with decode's GEMVs): a prefill makes 4 GEMMs and an attention per
        // layer, each hand-off through the pool costs several µs and wakes a pool thread, and a team worker still spinning
        // after one job would compete with the pool's threads for the next; Parallel.For when another thread holds the team
        RunPrefillTasks(job.Body, tasks, threads, job.Options);
    }

    // body(0 .. tasks − 1) of a prefill job (a GEMM, the blocked attention, a row pass) on the worker team, or through
    // Parallel.For when another thread holds the team or HEADWISE_PREFILL_TEAM=0
    private static void RunPrefillTasks(Action<int> body, int tasks, int threads, ParallelOptions options)
    {
        if (PrefillTeam && WorkerTeam.Shared.TryRun(body, tasks, threads)) return;
        options.MaxDegreeOfParallelism = Math.Min(threads, tasks);
        Parallel.For(0, tasks, options, body);
    }

    // HEADWISE_PREFILL_TEAM=0 sends the GEMM's and the blocked attention's tasks back to Parallel.For (to measure the
    // hand-off; docs/performance.md)
    internal static bool PrefillTeam { get; set; } = Environment.GetEnvironmentVariable("HEADWISE_PREFILL_TEAM") is not ("0" or "off");

    private static void EnsurePackBuffers()
    {
        if (t_packA == null)
        {
            // once per thread, never freed: a few hundred KiB per worker for the life of the process
            t_packA = (float*)NativeMemory.AlignedAlloc((nuint)(GemmMC * GemmKC * sizeof(float)), 64);
            t_packB = (float*)NativeMemory.AlignedAlloc((nuint)(GemmKC * GemmNC * sizeof(float)), 64);
            t_packAResident = (float*)NativeMemory.AlignedAlloc((nuint)(GemmResidentAFloats * sizeof(float)), 64);
        }
    }

    // Output rows [r0, r1) × columns [n0, n1), the whole depth C.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmTask(float* x, float* w, float* packedB, float* bias, float* output, int T, int C, int OC, WeightLayout layout,
        GemmEpilogue epilogue, float* residual, int r0, int r1, int n0, int n1)
    {
        EnsurePackBuffers();
        float* packA = t_packA, packB = t_packB;
        int mr = GemmMR, nr = GemmNR;
        if (packedB != null)
        {
            // the A-resident order for a prepacked weight: all the rows at once when their A fits, else in equal chunks of
            // at least MC rows that fit (C ≤ 1,024: every 768-deep GEMM of a long prompt); a deeper A (the MLP's 3,072)
            // would leave chunks of under 42 rows, each streaming the whole weight: the row-block order below is faster there
            int maxRows = (int)Math.Min(GemmResidentAFloats / C, int.MaxValue) / mr * mr;
            int rows = r1 - r0;
            if (RoundUp(rows, mr) <= maxRows)
            {
                GemmTaskResidentA(x, packedB, bias, output, C, OC, epilogue, residual, r0, r1, n0, n1);
                return;
            }
            if (maxRows >= GemmMC)
            {
                int chunks = (rows + maxRows - 1) / maxRows;
                int chunkRows = RoundUp((rows + chunks - 1) / chunks, mr);
                for (int r = r0; r < r1; r += chunkRows)
                {
                    GemmTaskResidentA(x, packedB, bias, output, C, OC, epilogue, residual, r, Math.Min(r1, r + chunkRows), n0, n1);
                }
                return;
            }
        }
        float* edge = stackalloc float[8 * 32]; // MR·NR scratch for ragged tiles (the largest tile: 8×32, 6×16 or 4×8)
        // columns [n0, n1) in steps that never cross the NC grid of the packed weight (a task may start inside a block)
        for (int n = n0, nc; n < n1; n += nc)
        {
            int block = n / GemmNC * GemmNC, blockEnd = Math.Min(block + GemmNC, OC);
            nc = Math.Min(blockEnd, n1) - n;
            if (packedB != null)
            {
                // row block outermost: its out block (MC × NC, 384 KiB at NC = 768) stays in L2 across the depth blocks,
                // where depth-outer reads and writes all the task's rows of out per depth block (3 MiB at 1,024 rows of
                // the MLP output); the B blocks are read from the packed weight, so the order costs no packing
                for (int ic = r0; ic < r1; ic += GemmMC)
                {
                    for (int pc = 0; pc < C; pc += GemmKC)
                    {
                        int kc = Math.Min(GemmKC, C - pc);
                        // n − block is a whole number of panels: task columns start on NR boundaries
                        float* panels = packedB + PackedBlockOffset(block, pc, blockEnd - block, C, nr) + (long)(n - block) * kc;
                        GemmBlock(x, panels, bias, output, C, OC, epilogue, residual, ic, Math.Min(GemmMC, r1 - ic), pc, kc, n, nc, packA, edge);
                    }
                }
            }
            else
            {
                // depth block outermost: each B block is packed once and reused by every row block
                for (int pc = 0; pc < C; pc += GemmKC)
                {
                    int kc = Math.Min(GemmKC, C - pc);
                    PackB(w, C, OC, layout, pc, kc, n, nc, nr, packB);
                    for (int ic = r0; ic < r1; ic += GemmMC)
                    {
                        GemmBlock(x, packB, bias, output, C, OC, epilogue, residual, ic, Math.Min(GemmMC, r1 - ic), pc, kc, n, nc, packA, edge);
                    }
                }
            }
        }
    }

    // One depth block [pc, pc + kc) of out's rows [ic, ic + mc) × columns [n, n + nc): A packed into packA, then every
    // register tile against the B block's NR-wide panels (panels: kc × NR each, the first at column n). The depth blocks
    // of a tile must come in order (each partial from zero, added to out in depth order): the order of the sums.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmBlock(float* x, float* panels, float* bias, float* output, int C, int OC, GemmEpilogue epilogue,
        float* residual, int ic, int mc, int pc, int kc, int n, int nc, float* packA, float* edge)
    {
        int mr = GemmMR, nr = GemmNR;
        bool first = pc == 0;
        GemmEpilogue finish = pc + kc == C ? epilogue : GemmEpilogue.None; // the last depth block: the values are final
        PackA(x + (long)ic * C + pc, C, mc, kc, mr, packA);
        for (int jr = 0; jr < nc; jr += nr)
        {
            int nrr = Math.Min(nr, nc - jr);
            float* bp = panels + (long)jr * kc;
            float* biasTile = bias == null ? null : bias + n + jr;
            for (int ir = 0; ir < mc; ir += mr)
            {
                long offset = (long)(ic + ir) * OC + n + jr;
                GemmTile(packA + (long)ir * kc, bp, kc, output + offset, OC, biasTile, first, Math.Min(mr, mc - ir), nrr, edge,
                    finish, residual == null ? null : residual + offset);
            }
        }
    }

    // Output rows [r0, r1) × columns [n0, n1) of a prepacked weight when the rows' A fits in L2 for the whole depth: A is
    // packed once, then each NR-wide column panel runs every depth block over every row tile before the next panel.
    // The out panel (rows × NR, 16 KiB at 128 rows) stays in L1/L2 across the depth blocks, where the depth-outer order reads
    // and writes rows × NC of out per depth block, as much traffic as the weight's own at 128 rows (the unembedding);
    // each B micro-panel is read from memory once and reused from L1 by every row tile. The same sums in the same order
    // as GemmTask's loops (each depth block's partial from zero, added to out in depth order): bitwise the same out.
    // packedB: w's panels; residual: (T, OC) for GemmEpilogue.Residual, else null
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmTaskResidentA(float* x, float* packedB, float* bias, float* output, int C, int OC,
        GemmEpilogue epilogue, float* residual, int r0, int r1, int n0, int n1)
    {
        float* packA = t_packAResident;
        int mr = GemmMR, nr = GemmNR, rows = r1 - r0, rowsPadded = RoundUp(rows, mr);
        float* edge = stackalloc float[8 * 32]; // MR·NR scratch for ragged tiles, as in GemmTask
        // A: one block of MR-tall panels per depth block, block pc at rowsPadded·pc
        for (int pc = 0; pc < C; pc += GemmKC)
        {
            PackA(x + (long)r0 * C + pc, C, rows, Math.Min(GemmKC, C - pc), mr, packA + (long)rowsPadded * pc);
        }
        for (int n = n0, nc; n < n1; n += nc)
        {
            int block = n / GemmNC * GemmNC, blockEnd = Math.Min(block + GemmNC, OC);
            nc = Math.Min(blockEnd, n1) - n;
            for (int jr = 0; jr < nc; jr += nr)
            {
                int nrr = Math.Min(nr, nc - jr);
                float* biasTile = bias == null ? null : bias + n + jr;
                for (int pc = 0; pc < C; pc += GemmKC)
                {
                    int kc = Math.Min(GemmKC, C - pc);
                    bool first = pc == 0;
                    GemmEpilogue finish = pc + kc == C ? epilogue : GemmEpilogue.None;
                    float* bp = packedB + PackedBlockOffset(block, pc, blockEnd - block, C, nr) + (long)(n - block + jr) * kc;
                    float* ap = packA + (long)rowsPadded * pc;
                    // the next B micro-panel (the next depth block, else the next panel's first) comes from memory: fetch it
                    // into L2 a slice per row tile, so that its first tile does not wait on it
                    byte* next = pc + kc < C
                        ? (byte*)(packedB + PackedBlockOffset(block, pc + kc, blockEnd - block, C, nr) + (long)(n - block + jr) * Math.Min(GemmKC, C - pc - kc))
                        : jr + nr < nc ? (byte*)(packedB + PackedBlockOffset(block, 0, blockEnd - block, C, nr) + (long)(n - block + jr + nr) * Math.Min(GemmKC, C)) : null;
                    int nextBytes = next == null ? 0 : Math.Min(GemmKC, pc + kc < C ? C - pc - kc : C) * nr * sizeof(float);
                    int slice = RoundUp((nextBytes + (rowsPadded / mr) - 1) / (rowsPadded / mr), 64);
                    for (int ir = 0; ir < rows; ir += mr, ap += mr * kc)
                    {
                        if (Sse.IsSupported)
                        {
                            for (int line = ir / mr * slice, end = Math.Min(line + slice, nextBytes); line < end; line += 64) Sse.Prefetch1(next + line);
                        }
                        long offset = (long)(r0 + ir) * OC + n + jr;
                        GemmTile(ap, bp, kc, output + offset, OC, biasTile, first, Math.Min(mr, rows - ir), nrr, edge,
                            finish, residual == null ? null : residual + offset);
                    }
                }
            }
        }
    }

    // One register tile of out: c (row stride ldc) = (first ? bias : c) + ap · bp over kc, its valid mrr × nrr part
    // written; then the epilogue (None unless this was the last depth block). residual: the same offsets as c, or null.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GemmTile(float* ap, float* bp, int kc, float* c, int ldc, float* bias, bool first, int mrr, int nrr,
        float* edge, GemmEpilogue epilogue, float* residual)
    {
        int nr = GemmNR;
        if (mrr == GemmMR && nrr == nr)
        {
            Micro(ap, bp, kc, c, ldc, bias, first);
        }
        else
        {
            // ragged edge: full tile into scratch (panels are zero-padded), then copy the valid part
            Micro(ap, bp, kc, edge, nr, null, true);
            for (int i = 0; i < mrr; i++)
            {
                float* ci = c + (long)i * ldc;
                float* ei = edge + i * nr;
                for (int j = 0; j < nrr; j++)
                {
                    ci[j] = first ? ei[j] + (bias == null ? 0f : bias[j]) : ci[j] + ei[j];
                }
            }
        }
        if (epilogue != GemmEpilogue.None)
        {
            FinishTile(c, residual, ldc, mrr, nrr, epilogue);
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
            Micro8x32(ap, bp, kc, c, ldc, bias, first);
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
    private static void Micro8x32(float* a, float* b, int kc, float* c, int ldc, float* bias, bool first)
    {
        // 16 accumulators + 2 B vectors + a broadcast; 10 loads feed 16 FMAs
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int k = 0; k < kc; k++, a += 8, b += 32)
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
        }
        Vector512<float> s0 = first && bias != null ? Vector512.Load(bias) : Vector512<float>.Zero;
        Vector512<float> s1 = first && bias != null ? Vector512.Load(bias + 16) : Vector512<float>.Zero;
        Store2(c, c00, c01, s0, s1, first); c += ldc;
        Store2(c, c10, c11, s0, s1, first); c += ldc;
        Store2(c, c20, c21, s0, s1, first); c += ldc;
        Store2(c, c30, c31, s0, s1, first); c += ldc;
        Store2(c, c40, c41, s0, s1, first); c += ldc;
        Store2(c, c50, c51, s0, s1, first); c += ldc;
        Store2(c, c60, c61, s0, s1, first); c += ldc;
        Store2(c, c70, c71, s0, s1, first);
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
}
