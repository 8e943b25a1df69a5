using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// Blocked (flash-style) causal attention with grouped key/value heads and optional sparsity.
// q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty. Query t sits at key index pastLen + t.
// Query tiles are BQ = 32 key-index positions (aligned to multiples of 32, so a tile never straddles a sparsity block of
// 32/64/128…), key tiles BK = 32 keys. One task is (kv head g, query tile); its G = NH / NKV query heads are done together,
// so each key/value tile is packed once and used by all of them (GQA). Per task:
//   pass 0: pack the G heads' query tiles transposed, qT: (G, HD, BQ); m = −∞, l = 0, O = 0
//   for each key tile up to the tile's causal edge that some head keeps (wholly invisible tiles are skipped):
//     pass 1: kT: (HD, BK) (keys contiguous) and vP: (BK, HDp) (HD padded to 16 with zeros), packed once per call for
//             the group by whichever task first needs the tile and read from there by every later query tile (a causal
//             prefill of T tokens would otherwise pack each key tile T / 64 times: 13% of the kernel's time at 1,024);
//             past a 64 MiB store (long contexts), into the task's scratch for each query tile
//     for each head of the group that keeps the tile:
//       pass 2: s = scale · q·kᵀ, an 8×32 register-tile micro-kernel (AVX-512; AVX2 4×16; scalar) over HD, the last
//               rows of a short tile one by one with the same per-row arithmetic (a row's result is independent of T)
//       pass 3: masking, only on partial tiles (the causal diagonal, window edges, padding, ragged tiles, element-level
//               block selections): invisible → −∞
//       pass 4: online softmax per row: m' = max(m, max s), p = exp(s − m'), l = l·exp(m − m') + Σp, O ·= exp(m − m');
//               on AVX-512 the tile's row maxima first, then the rescaling factors 16 rows per vector exp (bitwise the
//               one-row form the decode path keeps, OnlineSoftmaxRow)
//       pass 5: O += p · v, the same micro-kernel shape over HDp columns
//   pass 6: z = O / l (a row that saw nothing is zero, as in the three-pass path)
// Sparsity (AttentionSparsity): the window and sinks skip whole tiles and mask the edge ones; a BlockSelection whose
// BlockSize is a multiple of BK skips per (head, tile) — unlisted blocks cost nothing; any other BlockSize falls back to
// computing the tiles that touch a listed block and masking element by element (correct, not faster).
// The same softmax as Kernels.Attention.cs, re-associated: equal to it within float rounding (tests: 1e-6 relative).
// No side outputs: observed layers keep the fused kernel (TransformerModel.Attend); rewritten ones the three passes.
// Tasks run in parallel, head-major in groups of one kv head per worker, each head's longest (last) query tiles first;
// scratch is per thread and grows to the largest shape seen.
// Steps of at most DecodeRows queries (decode) take the decode path instead (Kernels.DecodeAttention.cs): one task per kv
// head, keys and values read in place, and per row the same arithmetic as here, so the bits do not depend on the path.
public static unsafe partial class Kernels
{
    private const int BlockQ = 32; // query positions per tile (key-index aligned)
    private const int BlockK = 32; // keys per tile
    private const int TileRows = 8; // rows per micro-kernel call (AVX-512 8×32; AVX2 two 4×16 halves); the rest one by one

    /// <summary>Causal multi-head attention with grouped key/value heads, blocked with an online softmax, computing only the
    /// pairs <paramref name="sparsity"/> keeps: z = softmax(q·kᵀ·scale + mask) · v.</summary>
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty
    public static void BlockedAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, AttentionSparsity sparsity) =>
        BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, pastLen, scale, keyMask, 0, sparsity);

    /// <summary>As above with a model's own sliding window on top (Mistral's <c>sliding_window</c>: a hard limit that
    /// the sparsity's sinks do not lift), as <see cref="Attention(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, int, int, int, float, ReadOnlySpan{byte}, int)"/>'s window.</summary>
    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty
    public static void BlockedAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window, AttentionSparsity sparsity) =>
        BlockedAttention(q, k, v, z, T, S, NH, NKV, HD, pastLen, scale, keyMask, window, sparsity, AttentionPath.Auto);

    // Which code runs a step: Auto (decode path for steps of ≤ DecodeRows queries where the hardware has it, else tiles);
    // the tests force either to compare them.
    internal enum AttentionPath { Auto, Tiles, Decode }

    // q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty
    internal static void BlockedAttention(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> z,
        int T, int S, int NH, int NKV, int HD, int pastLen, float scale, ReadOnlySpan<byte> keyMask, int window, AttentionSparsity sparsity,
        AttentionPath path)
    {
        ArgumentNullException.ThrowIfNull(sparsity);
        Require(path != AttentionPath.Decode || DecodeSupported, "BlockedAttention: the decode path needs AVX");
        Require(NKV > 0 && NH % NKV == 0, "BlockedAttention: query heads must be a multiple of key/value heads");
        CheckAttention(q, k, z, T, S, NH, NKV, HD, keyMask, "BlockedAttention");
        Require(v.Length >= (long)S * NKV * HD, "BlockedAttention: v is shorter than S·NKV·HD");
        Require(pastLen >= 0, "BlockedAttention: pastLen must be ≥ 0");
        if (sparsity.Blocks is { } sel && T > 0)
        {
            Require(sel.Heads == NH, "BlockedAttention: the block selection is for another number of query heads than NH");
            Require(sel.QueryBlocks > (pastLen + T - 1) / sel.BlockSize,
                "BlockedAttention: the block selection has fewer query blocks than the step's last query needs");
        }
        if (T == 0 || NH == 0) return;
        if (S == 0 || HD == 0)
        {
            z[..(T * NH * HD)].Clear();
            return;
        }
        fixed (float* pq = q, pk = k, pv = v, pz = z)
        fixed (byte* pm = keyMask)
        {
            var job = t_blockedJob ??= new BlockedAttentionJob();
            // a mask that hides no key (a model's unpadded batch) is no mask: the tiles then skip its per-element tests
            bool hidesKeys = !keyMask.IsEmpty && keyMask[..S].Contains((byte)0);
            job.Q = pq; job.K = pk; job.V = pv; job.Z = pz; job.Mask = hidesKeys ? pm : null;
            job.T = T; job.S = S; job.NH = NH; job.NKV = NKV; job.HD = HD; job.PastLen = pastLen; job.Scale = scale;
            job.Window = window; job.Sparsity = sparsity;
            job.QueryTiles = (pastLen + T - 1) / BlockQ - pastLen / BlockQ + 1;
            job.Decode = path == AttentionPath.Decode || (path == AttentionPath.Auto && T <= DecodeRows && DecodeSupported);
            if (!job.Decode) PrepareKeyValueTiles(job);
            int tasks = job.Decode ? NKV : NKV * job.QueryTiles;
            // about NH·T·S·HD FMAs for q·kᵀ; below ~1 M a thread hand-off costs more than it saves
            int threads = !ForceParallel && (long)NH * T * S * HD < (1L << 20) ? 1 : Math.Min(MaxThreads, tasks);
            job.Workers = Math.Max(1, threads); // the task order's head groups (BlockedAttentionJob.Run)
            try
            {
                if (threads <= 1)
                {
                    for (int task = 0; task < tasks; task++) job.Body(task);
                }
                else
                {
                    // the worker team, as prefill's GEMMs (Kernels.MatMul.cs): its workers stay awake between the two
                    RunPrefillTasks(job.Body, tasks, threads, job.Options);
                }
            }
            finally
            {
                job.Sparsity = null; // the job is per thread and long-lived: do not keep a selection alive
            }
        }
    }

    private sealed class BlockedAttentionJob
    {
        public float* Q, K, V, Z;
        public byte* Mask;
        public float* Tiles;   // the packed key/value tiles, (NKV, KeyTiles) × (kT (HD, BK) | vP (BK, HDp))
        public int* TileState; // (NKV, KeyTiles): 0 not packed, 1 being packed, 2 ready
        public int T, S, NH, NKV, HD, PastLen, Window, QueryTiles, KeyTiles, Workers;
        public bool Decode; // one task per kv head on the decode path, else per (kv head, query tile)
        public float Scale;
        public AttentionSparsity? Sparsity;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public BlockedAttentionJob() => Body = Run;
        private void Run(int task)
        {
            if (Decode)
            {
                DecodeAttentionTask(Q, K, V, Z, T, S, NH, NKV, HD, PastLen, Scale, Mask, Window, Sparsity!, task);
                return;
            }
            // Tasks go head-major in groups of Workers kv heads, one head per worker, each head's query tiles longest first:
            // a worker then walks one head's key/value tiles (in L2) from task to task, and the short tiles that end a group
            // fill the gaps. Tile-major order (every head's last tile first) streamed another head's tiles for each task:
            // 2–7% slower at 512–1,024 tokens, 16% at 4,096 (docs/performance.md). Two workers on one head would wait on each
            // other's packing of its tiles.
            int W = Math.Min(Workers, NKV), g0 = task / (W * QueryTiles) * W, heads = Math.Min(W, NKV - g0), index = task - g0 * QueryTiles;
            int g = g0 + index % heads, tile = QueryTiles - 1 - index / heads;
            BlockedAttentionTask(this, g, tile);
        }
    }

    /// <summary>Floats of scratch each worker thread of <see cref="BlockedAttention(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, int, int, int, float, ReadOnlySpan{byte}, AttentionSparsity)"/>
    /// holds at this shape (independent of T and S): kT (HD, BK) | vP (BK, HDp) | qT (G, HD, BQ) | O (G, BQ, HDp) | m, l (G, BQ) | s (BQ, BK).</summary>
    internal static int BlockedAttentionScratchFloats(int NH, int NKV, int HD)
    {
        int G = NH / NKV, HDp = (HD + 15) & ~15;
        return HD * BlockK + BlockK * HDp + G * (HD * BlockQ + BlockQ * HDp + 2 * BlockQ) + BlockQ * BlockK;
    }

    [ThreadStatic] private static BlockedAttentionJob? t_blockedJob;
    [ThreadStatic] private static float[]? t_blockedScratch;
    // the calling thread's packed key/value tiles and their states, grown to the largest call seen and kept (as large as
    // the keys and values the prefill reads: the causal range's k and v once, in tile layout)
    [ThreadStatic] private static float* t_kvTiles;
    [ThreadStatic] private static long t_kvTilesFloats;
    [ThreadStatic] private static int* t_kvTileState;
    [ThreadStatic] private static int t_kvTileStates;

    // The largest tile store kept (64 MiB: a 4,096-token Llama prefill's 8 kv heads of 128 need 32): longer contexts pack
    // each key tile per query tile into the task's scratch, as before the store, rather than hold another copy of k and v.
    internal static long MaxKeyValueTileFloats { get; set; } = 16L << 20; // tests set 0 to force the per-query-tile packing

    /// <summary>Floats of the packed key/value tile store a prefill of <paramref name="T"/> queries after
    /// <paramref name="pastLen"/> holds (on the calling thread, kept for its next call); 0 where it packs per query tile.</summary>
    internal static long BlockedAttentionTileStoreFloats(int T, int S, int NKV, int HD, int pastLen)
    {
        long floats = (long)NKV * ((Math.Min(S, pastLen + T) + BlockK - 1) / BlockK) * KeyValueTileFloats(HD);
        return floats <= MaxKeyValueTileFloats ? floats : 0;
    }

    // Sizes the shared tile store for this call and marks every tile unpacked (Tiles stays null past the cap). Keys past
    // the last query's position are never read, so only the tiles of keys [0, min(S, pastLen + T)) have room.
    private static void PrepareKeyValueTiles(BlockedAttentionJob job)
    {
        int keys = Math.Min(job.S, job.PastLen + job.T);
        job.KeyTiles = (keys + BlockK - 1) / BlockK;
        long floats = BlockedAttentionTileStoreFloats(job.T, job.S, job.NKV, job.HD, job.PastLen);
        job.Tiles = null;
        job.TileState = null;
        if (floats == 0) return;
        if (floats > t_kvTilesFloats)
        {
            NativeMemory.AlignedFree(t_kvTiles);
            t_kvTiles = null;
            t_kvTilesFloats = 0;
            t_kvTiles = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            t_kvTilesFloats = floats;
        }
        int states = job.NKV * job.KeyTiles;
        if (states > t_kvTileStates)
        {
            NativeMemory.Free(t_kvTileState);
            t_kvTileState = null;
            t_kvTileStates = 0;
            t_kvTileState = (int*)NativeMemory.Alloc((nuint)states, sizeof(int));
            t_kvTileStates = states;
        }
        new Span<int>(t_kvTileState, states).Clear();
        job.Tiles = t_kvTiles;
        job.TileState = t_kvTileState;
    }

    // floats of one packed key/value tile: kT (HD, BK) | vP (BK, HDp)
    private static int KeyValueTileFloats(int HD) => HD * BlockK + BlockK * ((HD + 15) & ~15);

    // Tile (g, ka / BK) of keys [ka, ka + nk), packed by the first task to need it; a task that finds another task packing
    // it waits (the copy takes a microsecond or two). Every task that reaches a tile computes the same nk (query tiles
    // are aligned to the key tiles, so only the last one's causal edge can cut a tile, and no later tile reaches it).
    private static float* KeyValueTile(BlockedAttentionJob job, int g, int ka, int nk)
    {
        int index = g * job.KeyTiles + ka / BlockK;
        float* tile = job.Tiles + (long)index * KeyValueTileFloats(job.HD);
        ref int state = ref job.TileState[index];
        if (Volatile.Read(ref state) == 2) return tile;
        if (Interlocked.CompareExchange(ref state, 1, 0) == 0)
        {
            long kvStride = (long)job.NKV * job.HD;
            int HDp = (job.HD + 15) & ~15;
            PackKeyTile(job.K + (long)ka * kvStride + (long)g * job.HD, kvStride, nk, job.HD, tile);
            PackValueTile(job.V + (long)ka * kvStride + (long)g * job.HD, kvStride, nk, job.HD, HDp, tile + job.HD * BlockK);
            Volatile.Write(ref state, 2);
            return tile;
        }
        var spin = new SpinWait();
        while (Volatile.Read(ref state) != 2) spin.SpinOnce(-1);
        return tile;
    }

    private enum TileCover { Skip, Full, Masked }

    // One (kv head g, query tile) task: the G query heads h = g·G .. g·G + G − 1 over the tile's queries.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockedAttentionTask(BlockedAttentionJob job, int g, int tile)
    {
        float* q = job.Q, z = job.Z;
        byte* mask = job.Mask;
        int T = job.T, S = job.S, NH = job.NH, NKV = job.NKV, HD = job.HD, pastLen = job.PastLen, window = job.Window;
        float scale = job.Scale;
        var sparsity = job.Sparsity!;
        int G = NH / NKV;
        int HDp = (HD + 15) & ~15;
        // the tile's queries, in key-index space: [qa, qb)
        int qa = Math.Max(pastLen, (pastLen / BlockQ + tile) * BlockQ);
        int qb = Math.Min(pastLen + T, (pastLen / BlockQ + tile + 1) * BlockQ);
        int nq = qb - qa;

        // scratch: kT (HD, BK) | vP (BK, HDp) | qT (G, HD, BQ) | O (G, BQ, HDp) | m, l (G, BQ) | s (BQ, BK); kT and vP
        // used only where the call has no shared tile store
        int kTSize = HD * BlockK, vPSize = BlockK * HDp, qTSize = HD * BlockQ, oSize = BlockQ * HDp;
        int need = BlockedAttentionScratchFloats(NH, NKV, HD);
        float[] scratch = t_blockedScratch is { } buf && buf.Length >= need ? buf : (t_blockedScratch = new float[need]);
        fixed (float* sp = scratch)
        {
            float* qT = sp + kTSize + vPSize, o = qT + G * qTSize, m = o + G * oSize, l = m + G * BlockQ, s = l + G * BlockQ;
            float* kT = sp, vP = sp + kTSize;
            float* rowMax = stackalloc float[BlockQ];

            // pass 0: queries transposed, qT[h][d, r] = q[t, h, d], rows past the tile zero (the key tile's packing: nq rows
            // of HD at stride NH·HD, BQ = BK); accumulators reset
            new Span<float>(o, G * oSize).Clear();
            new Span<float>(m, G * BlockQ).Fill(float.NegativeInfinity);
            new Span<float>(l, G * BlockQ).Clear();
            for (int hi = 0; hi < G; hi++)
            {
                PackKeyTile(q + ((long)(qa - pastLen) * NH + g * G + hi) * HD, (long)NH * HD, nq, HD, qT + hi * qTSize);
            }

            var blocks = sparsity.Blocks;
            int bs = blocks?.BlockSize ?? 0;
            bool alignedBlocks = blocks != null && bs % BlockK == 0;
            int keyEnd = Math.Min(S, qb); // causal edge of the tile's last query
            for (int ka = 0; ka < keyEnd; ka += BlockK)
            {
                int kb = Math.Min(keyEnd, ka + BlockK), nk = kb - ka;
                TileCover cover = CoverOf(qa, qb, ka, kb, mask, window, sparsity);
                if (cover == TileCover.Skip) continue;
                if (blocks != null && !alignedBlocks) cover = TileCover.Masked;
                bool packed = false;
                for (int hi = 0; hi < G; hi++)
                {
                    int h = g * G + hi;
                    if (blocks != null && !HeadKeepsTile(blocks, alignedBlocks, h, qa, qb, ka, kb)) continue;
                    if (!packed)
                    {
                        // pass 1: this key tile, packed once per call for the whole group
                        if (job.Tiles != null)
                        {
                            kT = KeyValueTile(job, g, ka, nk);
                            vP = kT + kTSize;
                        }
                        else
                        {
                            long kvStride = (long)NKV * HD;
                            PackKeyTile(job.K + (long)ka * kvStride + (long)g * HD, kvStride, nk, HD, kT);
                            PackValueTile(job.V + (long)ka * kvStride + (long)g * HD, kvStride, nk, HD, HDp, vP);
                        }
                        packed = true;
                    }
                    // pass 2: scores of the tile
                    ScoreTile(qT + hi * qTSize, kT, HD, scale, s, nq);
                    // pass 3: masking of partial tiles
                    if (cover == TileCover.Masked || nk < BlockK)
                    {
                        MaskTile(s, qa, nq, ka, nk, mask, window, sparsity, h, alignedBlocks);
                    }
                    // pass 4: online softmax
                    float* oh = o + hi * oSize, mh = m + hi * BlockQ, lh = l + hi * BlockQ;
                    if (Vector512.IsHardwareAccelerated && nq % 16 == 0)
                    {
                        OnlineSoftmaxTile(s, mh, lh, oh, HDp, nq, rowMax);
                    }
                    else
                    {
                        for (int r = 0; r < nq; r++) OnlineSoftmaxRow(s + r * BlockK, mh + r, lh + r, oh + r * HDp, HDp);
                    }
                    // pass 5: O += p · v
                    ValueTile(s, vP, HDp, oh, nq);
                }
            }

            // pass 6: z = O / l
            for (int hi = 0; hi < G; hi++)
            {
                int h = g * G + hi;
                for (int r = 0; r < nq; r++)
                {
                    NormalizeRow(o + hi * oSize + r * HDp, l[hi * BlockQ + r], z + ((long)(qa - pastLen + r) * NH + h) * HD, HD);
                }
            }
        }
    }

    // pass 4 for one row: the online softmax update of its running max m, sum l and output O by a tile row of BK scores,
    // which become p = exp(s − m') in place. Shared with the decode path: a row's arithmetic is the same on both.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OnlineSoftmaxRow(float* sr, float* m, float* l, float* orow, int HDp)
    {
        float mNew = Math.Max(*m, RowMax(sr));
        if (float.IsNegativeInfinity(mNew))
        {
            new Span<float>(sr, BlockK).Clear(); // nothing visible yet: p = 0
            return;
        }
        if (mNew != *m)
        {
            float c = CorrectionExp(*m - mNew); // exp(−∞) = 0 on the first visible tile
            // test l before scaling it: a max that jumps by more than ~88 underflows c to 0, and O must then be cleared too
            if (*l != 0f) Scale(orow, c, HDp);
            *l *= c;
            *m = mNew;
        }
        *l += RowExpShiftSum(sr, mNew);
    }

    // exp(m − m') for the online softmax's rescaling: ExpSingle's lane arithmetic on AVX-512, so that OnlineSoftmaxTile's
    // 16 rows at a time give each row the same bits as this one-row form (else MathF.Exp, the one-row form only)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float CorrectionExp(float x) => Vector512.IsHardwareAccelerated ? ExpSingle(Vector512.CreateScalarUnsafe(x)).ToScalar() : MathF.Exp(x);

    // pass 4 for the rows 0..rows−1 of a tile (AVX-512, rows a multiple of 16): OnlineSoftmaxRow for each row, bitwise,
    // with the rows' maxima taken first and their rescaling factors 16 rows per ExpSingle, where the one-row form
    // spends a scalar exp and a data-dependent branch per row. rowMax: (rows) scratch.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OnlineSoftmaxTile(float* s, float* m, float* l, float* o, int HDp, int rows, float* rowMax)
    {
        for (int r = 0; r < rows; r++) rowMax[r] = RowMax(s + r * BlockK);
        for (int r0 = 0; r0 < rows; r0 += 16)
        {
            var mOld = Vector512.Load(m + r0);
            var mNew = Vector512.Max(mOld, Vector512.Load(rowMax + r0));
            // rows that see nothing yet keep m = −∞ (and their c is never used)
            var c = ExpSingle(mOld - mNew);
            mNew.Store(rowMax + r0); // rowMax now holds m'
            c.Store(m + r0);         // m holds c until each row below stores its m'
        }
        for (int r = 0; r < rows; r++)
        {
            float mNew = rowMax[r], c = m[r];
            float* sr = s + r * BlockK;
            if (float.IsNegativeInfinity(mNew))
            {
                new Span<float>(sr, BlockK).Clear(); // nothing visible yet: p = 0
                m[r] = float.NegativeInfinity;
                continue;
            }
            if (c != 1f) // c = 1 exactly when the max did not move (or moved by less than rounds away): nothing to rescale
            {
                if (l[r] != 0f) Scale(o + r * HDp, c, HDp);
                l[r] *= c;
            }
            m[r] = mNew;
            l[r] += RowExpShiftSum(sr, mNew);
        }
    }

    // pass 6 for one row: z = O / l, a zero row where nothing was visible (l = 0), as in the three-pass path
    private static void NormalizeRow(float* orow, float l, float* zr, int HD)
    {
        if (l == 0f)
        {
            new Span<float>(zr, HD).Clear();
            return;
        }
        float inv = 1f / l;
        TensorPrimitives.Multiply(new ReadOnlySpan<float>(orow, HD), inv, new Span<float>(zr, HD));
    }

    // max of one tile row of BK = 32 scores (two zmm on AVX-512, folded; else the shared Max)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float RowMax(float* sr)
    {
        if (!Vector512.IsHardwareAccelerated) return Max(sr, BlockK);
        var v = Vector512.Max(Vector512.Load(sr), Vector512.Load(sr + 16));
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var x = Vector128.Max(h.GetLower(), h.GetUpper());
        return Math.Max(Math.Max(x[0], x[1]), Math.Max(x[2], x[3]));
    }

    // sr[j] = exp(sr[j] − max) for one tile row, returning Σ: ExpShiftSum's arithmetic (ExpSingle on AVX-512) inlined
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float RowExpShiftSum(float* sr, float max)
    {
        if (!Vector512.IsHardwareAccelerated) return ExpShiftSum(sr, BlockK, max);
        var m = Vector512.Create(max);
        var e0 = ExpSingle(Vector512.Load(sr) - m);
        var e1 = ExpSingle(Vector512.Load(sr + 16) - m);
        e0.Store(sr);
        e1.Store(sr + 16);
        return Vector512.Sum(e0 + e1);
    }

    // Whether the pairs of queries [qa, qb) × keys [ka, kb) (ka ≤ qb − 1: causally reachable) are all invisible, all
    // visible, or mixed, by causality, the window, the sinks and the key mask (not the block selection).
    private static TileCover CoverOf(int qa, int qb, int ka, int kb, byte* mask, int window, AttentionSparsity sparsity)
    {
        int qLast = qb - 1, kLast = kb - 1;
        // farthest back: the first query and the tile's last key; nearest: the last query and the first key
        if (window > 0 && qa - kLast >= window) return TileCover.Skip;
        if (sparsity.Window > 0 && qa - kLast >= sparsity.Window && ka >= sparsity.Sinks) return TileCover.Skip;
        bool full = kLast <= qa
            && (window <= 0 || qLast - ka < window)
            && (sparsity.Window <= 0 || qLast - ka < sparsity.Window || kb <= sparsity.Sinks);
        if (mask != null)
        {
            int visible = 0;
            for (int j = ka; j < kb; j++) visible += mask[j] != 0 ? 1 : 0;
            if (visible == 0) return TileCover.Skip;
            full &= visible == kb - ka;
        }
        return full ? TileCover.Full : TileCover.Masked;
    }

    // Whether query head h computes any pair of the tile under the block selection. Aligned (BlockSize a multiple of BK):
    // the tile lies in one query block and one key block, one look-up. Otherwise: any listed key block the tile touches.
    private static bool HeadKeepsTile(BlockSelection blocks, bool aligned, int h, int qa, int qb, int ka, int kb)
    {
        int bs = blocks.BlockSize;
        if (aligned) return blocks.Contains(h, qa / bs, ka / bs);
        for (int qBlock = qa / bs; qBlock <= (qb - 1) / bs; qBlock++)
        {
            foreach (int kBlock in blocks.KeyBlocks(h, qBlock))
            {
                if (kBlock >= ka / bs && kBlock <= (kb - 1) / bs) return true;
            }
        }
        return false;
    }

    // s: (BQ, BK) scores of queries [qa, qa + nq) × keys [ka, ka + nk); invisible pairs → −∞, and keys past nk too.
    // The block selection is checked per element only when it is not aligned to the tiles (aligned: already per tile).
    private static void MaskTile(float* s, int qa, int nq, int ka, int nk, byte* mask, int window, AttentionSparsity sparsity, int h, bool alignedBlocks)
    {
        if (mask == null && window <= 0 && sparsity.Window <= 0 && sparsity.Blocks == null)
        {
            // plain causal attention (the diagonal tile of every prefill): row r sees keys ka .. min(ka + nk, qa + r + 1) − 1,
            // the rule below without its per-element tests
            for (int r = 0; r < nq; r++)
            {
                int visible = Math.Clamp(Math.Min(nk, qa + r - ka + 1), 0, BlockK);
                new Span<float>(s + r * BlockK + visible, BlockK - visible).Fill(float.NegativeInfinity);
            }
            return;
        }
        bool perElementBlocks = sparsity.Blocks != null && !alignedBlocks;
        for (int r = 0; r < nq; r++)
        {
            int i = qa + r;
            float* sr = s + r * BlockK;
            for (int j = 0; j < BlockK; j++)
            {
                int key = ka + j;
                bool visible = j < nk && (mask == null || mask[key] != 0) && (window <= 0 || i - key < window)
                    && (perElementBlocks ? sparsity.Keeps(h, i, key) : sparsity.Sees(i, key));
                if (!visible) sr[j] = float.NegativeInfinity;
            }
        }
    }

    // keys: nk rows of HD at stride kvStride → kT: (HD, BK), keys contiguous; keys past nk zero
    private static void PackKeyTile(float* keys, long kvStride, int nk, int HD, float* kT)
    {
        if (nk == BlockK && Avx.IsSupported && kvStride <= int.MaxValue)
        {
            PackBTransposed8x8(keys, (int)kvStride, HD, BlockK, kT); // the GEMM's transpose-packing of an OutIn panel
            return;
        }
        for (int j = 0; j < BlockK; j++)
        {
            float* src = keys + j * kvStride;
            for (int d = 0; d < HD; d++) kT[d * BlockK + j] = j < nk ? src[d] : 0f;
        }
    }

    // values: nk rows of HD at stride kvStride → vP: (BK, HDp), zero past HD and past nk
    private static void PackValueTile(float* values, long kvStride, int nk, int HD, int HDp, float* vP)
    {
        for (int j = 0; j < BlockK; j++)
        {
            var dst = new Span<float>(vP + j * HDp, HDp);
            if (j < nk)
            {
                new ReadOnlySpan<float>(values + j * kvStride, HD).CopyTo(dst);
                dst[HD..].Clear();
            }
            else
            {
                dst.Clear();
            }
        }
    }

    // s (rows, BK) = scale · qTᵀ · kT.  qT: (HD, BQ)  kT: (HD, BK)
    // Rows in groups of TileRows, then one at a time: every row gets the same FMA sequence either way, so a row's scores
    // do not depend on how many rows share its tile (a sequence's result does not depend on its batch's padded length).
    private static void ScoreTile(float* qT, float* kT, int HD, float scale, float* s, int rows)
    {
        int r0 = 0;
        for (; r0 + TileRows <= rows; r0 += TileRows)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                Score8x32(qT + r0, kT, HD, scale, s + r0 * BlockK);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (int half = 0; half < 2; half++)
                {
                    Score4x16(qT + r0, kT + half * 16, HD, scale, s + r0 * BlockK + half * 16);
                    Score4x16(qT + r0 + 4, kT + half * 16, HD, scale, s + (r0 + 4) * BlockK + half * 16);
                }
            }
            else
            {
                ScoreScalar(qT + r0, kT, HD, scale, s + r0 * BlockK, TileRows);
            }
        }
        // remainder rows
        for (; r0 < rows; r0++)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                Score1x32(qT + r0, kT, HD, scale, s + r0 * BlockK);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                Score1x16(qT + r0, kT, HD, scale, s + r0 * BlockK);
                Score1x16(qT + r0, kT + 16, HD, scale, s + r0 * BlockK + 16);
            }
            else
            {
                ScoreScalar(qT + r0, kT, HD, scale, s + r0 * BlockK, 1);
            }
        }
    }

    // one query row × 32 keys, Score8x32's arithmetic for one row
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Score1x32(float* qT, float* kT, int HD, float scale, float* s)
    {
        Vector512<float> c0 = default, c1 = default;
        for (int d = 0; d < HD; d++)
        {
            var av = Vector512.Create(qT[d * BlockQ]);
            c0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(kT + d * BlockK), c0);
            c1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(kT + d * BlockK + 16), c1);
        }
        var sc = Vector512.Create(scale);
        (c0 * sc).Store(s);
        (c1 * sc).Store(s + 16);
    }

    // one query row × 16 keys, Score4x16's arithmetic for one row
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Score1x16(float* qT, float* kT, int HD, float scale, float* s)
    {
        Vector256<float> c0 = default, c1 = default;
        for (int d = 0; d < HD; d++)
        {
            var av = Vector256.Create(qT[d * BlockQ]);
            c0 = Vector256.MultiplyAddEstimate(av, Vector256.Load(kT + d * BlockK), c0);
            c1 = Vector256.MultiplyAddEstimate(av, Vector256.Load(kT + d * BlockK + 8), c1);
        }
        var sc = Vector256.Create(scale);
        (c0 * sc).Store(s);
        (c1 * sc).Store(s + 8);
    }

    // 8 query rows × 32 keys: 16 zmm accumulators, 2 key vectors and a broadcast per depth step
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Score8x32(float* qT, float* kT, int HD, float scale, float* s)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int d = 0; d < HD; d++)
        {
            float* a = qT + d * BlockQ;
            var b0 = Vector512.Load(kT + d * BlockK);
            var b1 = Vector512.Load(kT + d * BlockK + 16);
            var av = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
        }
        var sc = Vector512.Create(scale);
        (c00 * sc).Store(s); (c01 * sc).Store(s + 16); s += BlockK;
        (c10 * sc).Store(s); (c11 * sc).Store(s + 16); s += BlockK;
        (c20 * sc).Store(s); (c21 * sc).Store(s + 16); s += BlockK;
        (c30 * sc).Store(s); (c31 * sc).Store(s + 16); s += BlockK;
        (c40 * sc).Store(s); (c41 * sc).Store(s + 16); s += BlockK;
        (c50 * sc).Store(s); (c51 * sc).Store(s + 16); s += BlockK;
        (c60 * sc).Store(s); (c61 * sc).Store(s + 16); s += BlockK;
        (c70 * sc).Store(s); (c71 * sc).Store(s + 16);
    }

    // 4 query rows × 16 keys (AVX2): 8 ymm accumulators
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Score4x16(float* qT, float* kT, int HD, float scale, float* s)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int d = 0; d < HD; d++)
        {
            float* a = qT + d * BlockQ;
            var b0 = Vector256.Load(kT + d * BlockK);
            var b1 = Vector256.Load(kT + d * BlockK + 8);
            var av = Vector256.Create(a[0]); c00 = Vector256.MultiplyAddEstimate(av, b0, c00); c01 = Vector256.MultiplyAddEstimate(av, b1, c01);
            av = Vector256.Create(a[1]); c10 = Vector256.MultiplyAddEstimate(av, b0, c10); c11 = Vector256.MultiplyAddEstimate(av, b1, c11);
            av = Vector256.Create(a[2]); c20 = Vector256.MultiplyAddEstimate(av, b0, c20); c21 = Vector256.MultiplyAddEstimate(av, b1, c21);
            av = Vector256.Create(a[3]); c30 = Vector256.MultiplyAddEstimate(av, b0, c30); c31 = Vector256.MultiplyAddEstimate(av, b1, c31);
        }
        var sc = Vector256.Create(scale);
        (c00 * sc).Store(s); (c01 * sc).Store(s + 8); s += BlockK;
        (c10 * sc).Store(s); (c11 * sc).Store(s + 8); s += BlockK;
        (c20 * sc).Store(s); (c21 * sc).Store(s + 8); s += BlockK;
        (c30 * sc).Store(s); (c31 * sc).Store(s + 8);
    }

    // rows query rows × BK keys, no vectors
    private static void ScoreScalar(float* qT, float* kT, int HD, float scale, float* s, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < BlockK; j++)
            {
                float dot = 0f;
                for (int d = 0; d < HD; d++) dot += qT[d * BlockQ + r] * kT[d * BlockK + j];
                s[r * BlockK + j] = dot * scale;
            }
        }
    }

    // o (rows, HDp) += p (rows, BK) · vP (BK, HDp), HDp a multiple of 16; rows in groups of TileRows, then one at a time
    // with the same per-row FMA sequence (see ScoreTile)
    private static void ValueTile(float* p, float* vP, int HDp, float* o, int rows)
    {
        int r0 = 0;
        for (; r0 + TileRows <= rows; r0 += TileRows)
        {
            float* pr = p + r0 * BlockK, or = o + r0 * HDp;
            if (Vector512.IsHardwareAccelerated)
            {
                int c = 0;
                for (; c + 32 <= HDp; c += 32) Value8x32(pr, vP + c, HDp, or + c);
                if (c < HDp) Value8x16(pr, vP + c, HDp, or + c);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (int c = 0; c < HDp; c += 16)
                {
                    Value4x16(pr, vP + c, HDp, or + c);
                    Value4x16(pr + 4 * BlockK, vP + c, HDp, or + 4 * HDp + c);
                }
            }
            else
            {
                ValueScalar(pr, vP, HDp, or, TileRows);
            }
        }
        // remainder rows
        for (; r0 < rows; r0++)
        {
            float* pr = p + r0 * BlockK, or = o + r0 * HDp;
            if (Vector512.IsHardwareAccelerated)
            {
                for (int c = 0; c < HDp; c += 16) Value1x16Wide(pr, vP + c, HDp, or + c);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (int c = 0; c < HDp; c += 16) Value1x16(pr, vP + c, HDp, or + c);
            }
            else
            {
                ValueScalar(pr, vP, HDp, or, 1);
            }
        }
    }

    // rows × HDp, no vectors
    private static void ValueScalar(float* p, float* vP, int HDp, float* o, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < BlockK; j++)
            {
                float pj = p[r * BlockK + j];
                for (int d = 0; d < HDp; d++) o[r * HDp + d] += pj * vP[j * HDp + d];
            }
        }
    }

    // one row × 16 columns in one zmm: Value8x32's and Value8x16's arithmetic for one row and 16 columns
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Value1x16Wide(float* p, float* vP, int HDp, float* o)
    {
        var c = Vector512.Load(o);
        for (int j = 0; j < BlockK; j++) c = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(vP + j * HDp), c);
        c.Store(o);
    }

    // one row × 16 columns in two ymm: Value4x16's arithmetic for one row
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Value1x16(float* p, float* vP, int HDp, float* o)
    {
        Vector256<float> c0 = Vector256.Load(o), c1 = Vector256.Load(o + 8);
        for (int j = 0; j < BlockK; j++)
        {
            var pv = Vector256.Create(p[j]);
            c0 = Vector256.MultiplyAddEstimate(pv, Vector256.Load(vP + j * HDp), c0);
            c1 = Vector256.MultiplyAddEstimate(pv, Vector256.Load(vP + j * HDp + 8), c1);
        }
        c0.Store(o);
        c1.Store(o + 8);
    }

    // 8 rows × 32 columns of O in 16 zmm registers over the 32 keys of the tile
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Value8x32(float* p, float* vP, int HDp, float* o)
    {
        float* o1 = o + HDp, o2 = o + 2 * HDp, o3 = o + 3 * HDp, o4 = o + 4 * HDp, o5 = o + 5 * HDp, o6 = o + 6 * HDp, o7 = o + 7 * HDp;
        Vector512<float> c00 = Vector512.Load(o), c01 = Vector512.Load(o + 16), c10 = Vector512.Load(o1), c11 = Vector512.Load(o1 + 16),
            c20 = Vector512.Load(o2), c21 = Vector512.Load(o2 + 16), c30 = Vector512.Load(o3), c31 = Vector512.Load(o3 + 16),
            c40 = Vector512.Load(o4), c41 = Vector512.Load(o4 + 16), c50 = Vector512.Load(o5), c51 = Vector512.Load(o5 + 16),
            c60 = Vector512.Load(o6), c61 = Vector512.Load(o6 + 16), c70 = Vector512.Load(o7), c71 = Vector512.Load(o7 + 16);
        for (int j = 0; j < BlockK; j++)
        {
            var b0 = Vector512.Load(vP + j * HDp);
            var b1 = Vector512.Load(vP + j * HDp + 16);
            var pv = Vector512.Create(p[j]); c00 = Vector512.FusedMultiplyAdd(pv, b0, c00); c01 = Vector512.FusedMultiplyAdd(pv, b1, c01);
            pv = Vector512.Create(p[BlockK + j]); c10 = Vector512.FusedMultiplyAdd(pv, b0, c10); c11 = Vector512.FusedMultiplyAdd(pv, b1, c11);
            pv = Vector512.Create(p[2 * BlockK + j]); c20 = Vector512.FusedMultiplyAdd(pv, b0, c20); c21 = Vector512.FusedMultiplyAdd(pv, b1, c21);
            pv = Vector512.Create(p[3 * BlockK + j]); c30 = Vector512.FusedMultiplyAdd(pv, b0, c30); c31 = Vector512.FusedMultiplyAdd(pv, b1, c31);
            pv = Vector512.Create(p[4 * BlockK + j]); c40 = Vector512.FusedMultiplyAdd(pv, b0, c40); c41 = Vector512.FusedMultiplyAdd(pv, b1, c41);
            pv = Vector512.Create(p[5 * BlockK + j]); c50 = Vector512.FusedMultiplyAdd(pv, b0, c50); c51 = Vector512.FusedMultiplyAdd(pv, b1, c51);
            pv = Vector512.Create(p[6 * BlockK + j]); c60 = Vector512.FusedMultiplyAdd(pv, b0, c60); c61 = Vector512.FusedMultiplyAdd(pv, b1, c61);
            pv = Vector512.Create(p[7 * BlockK + j]); c70 = Vector512.FusedMultiplyAdd(pv, b0, c70); c71 = Vector512.FusedMultiplyAdd(pv, b1, c71);
        }
        c00.Store(o); c01.Store(o + 16); c10.Store(o1); c11.Store(o1 + 16); c20.Store(o2); c21.Store(o2 + 16); c30.Store(o3); c31.Store(o3 + 16);
        c40.Store(o4); c41.Store(o4 + 16); c50.Store(o5); c51.Store(o5 + 16); c60.Store(o6); c61.Store(o6 + 16); c70.Store(o7); c71.Store(o7 + 16);
    }

    // 8 rows × the last 16 columns (HDp ≡ 16 mod 32)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Value8x16(float* p, float* vP, int HDp, float* o)
    {
        Vector512<float> c0 = Vector512.Load(o), c1 = Vector512.Load(o + HDp), c2 = Vector512.Load(o + 2 * HDp), c3 = Vector512.Load(o + 3 * HDp),
            c4 = Vector512.Load(o + 4 * HDp), c5 = Vector512.Load(o + 5 * HDp), c6 = Vector512.Load(o + 6 * HDp), c7 = Vector512.Load(o + 7 * HDp);
        for (int j = 0; j < BlockK; j++)
        {
            var b = Vector512.Load(vP + j * HDp);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), b, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(p[BlockK + j]), b, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(p[2 * BlockK + j]), b, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(p[3 * BlockK + j]), b, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(p[4 * BlockK + j]), b, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(p[5 * BlockK + j]), b, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(p[6 * BlockK + j]), b, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(p[7 * BlockK + j]), b, c7);
        }
        c0.Store(o); c1.Store(o + HDp); c2.Store(o + 2 * HDp); c3.Store(o + 3 * HDp);
        c4.Store(o + 4 * HDp); c5.Store(o + 5 * HDp); c6.Store(o + 6 * HDp); c7.Store(o + 7 * HDp);
    }

    // 4 rows × 16 columns (AVX2): 8 ymm accumulators
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Value4x16(float* p, float* vP, int HDp, float* o)
    {
        float* o1 = o + HDp, o2 = o + 2 * HDp, o3 = o + 3 * HDp;
        Vector256<float> c00 = Vector256.Load(o), c01 = Vector256.Load(o + 8), c10 = Vector256.Load(o1), c11 = Vector256.Load(o1 + 8),
            c20 = Vector256.Load(o2), c21 = Vector256.Load(o2 + 8), c30 = Vector256.Load(o3), c31 = Vector256.Load(o3 + 8);
        for (int j = 0; j < BlockK; j++)
        {
            var b0 = Vector256.Load(vP + j * HDp);
            var b1 = Vector256.Load(vP + j * HDp + 8);
            var pv = Vector256.Create(p[j]); c00 = Vector256.MultiplyAddEstimate(pv, b0, c00); c01 = Vector256.MultiplyAddEstimate(pv, b1, c01);
            pv = Vector256.Create(p[BlockK + j]); c10 = Vector256.MultiplyAddEstimate(pv, b0, c10); c11 = Vector256.MultiplyAddEstimate(pv, b1, c11);
            pv = Vector256.Create(p[2 * BlockK + j]); c20 = Vector256.MultiplyAddEstimate(pv, b0, c20); c21 = Vector256.MultiplyAddEstimate(pv, b1, c21);
            pv = Vector256.Create(p[3 * BlockK + j]); c30 = Vector256.MultiplyAddEstimate(pv, b0, c30); c31 = Vector256.MultiplyAddEstimate(pv, b1, c31);
        }
        c00.Store(o); c01.Store(o + 8); c10.Store(o1); c11.Store(o1 + 8); c20.Store(o2); c21.Store(o2 + 8); c30.Store(o3); c31.Store(o3 + 8);
    }
}
