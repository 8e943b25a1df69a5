using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// The decode path of the blocked attention: a step of a few queries (T ≤ DecodeRows, e.g. one token from a KV cache)
// against every cached key, reading keys and values where they lie instead of packing 32-key tiles for one row.
// q: (T, NH, HD)  k, v: (S, NKV, HD)  z: (T, NH, HD)  keyMask: (S) or empty. Query t sits at key index pastLen + t.
// One task per kv head g: its R = G·T rows (the G = NH / NKV query heads that share it, × the step's queries). Per
// 32-key tile up to the causal edge of the last query (the tiles the blocked kernel uses, in the same order):
//   rows: a row takes part when some key of the tile is visible to it (causal, windows, sinks, padding, block selection)
//   pass 1: s = scale · q·kᵀ for the rows taking part: the key rows 8 keys × 8 dims at a time, transposed in registers,
//           so that each key is a lane and its sum is the FMA chain over d the blocked kernel's micro-kernels run
//   pass 2: masking where the tile is partial for the row (Kernels.BlockedAttention.cs's MaskTile)
//   pass 3: online softmax per row (OnlineSoftmaxRow, shared with the blocked kernel)
//   pass 4: O += p · v, straight from the cache's value rows (per column the FMA chain of Value1x16Wide / Value1x16)
//   pass 5: z = O / l (NormalizeRow, shared)
// A tile the blocked kernel visits for a row's query tile but that shows this row nothing adds exactly nothing there
// (p = 0), so a row gives the same bits on either path: a decode step equals the prefill row it continues.
public static unsafe partial class Kernels
{
    private const int DecodeRows = 8; // steps of up to this many queries take the decode path

    // the decode path transposes with AVX and needs the FMA of the blocked kernel's one-row micro-kernels
    private static bool DecodeSupported => Avx.IsSupported && Vector256.IsHardwareAccelerated;

    // One kv head g: rows r = hi·T + t for query head g·G + hi and query t.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeAttentionTask(float* q, float* k, float* v, float* z, int T, int S, int NH, int NKV, int HD,
        int pastLen, float scale, byte* mask, int window, AttentionSparsity sparsity, int g)
    {
        int G = NH / NKV, R = G * T;
        int HDp = (HD + 15) & ~15;
        long kvStride = (long)NKV * HD;
        // scratch: s (R, BK) | O (R, HDp) | m, l (R) | per row its query row's address, query index and head (R pointers,
        // R ints, R ints: no division in the loops) | the rows taking part in a tile (R ints)
        int need = DecodeAttentionScratchFloats(NH, NKV, HD, T);
        float[] scratch = t_blockedScratch is { } buf && buf.Length >= need ? buf : (t_blockedScratch = new float[need]);
        fixed (float* sp = scratch)
        {
            float* s = sp, o = s + R * BlockK, m = o + R * HDp, l = m + R;
            float** qRows = (float**)(l + R);
            int* query = (int*)(qRows + R), head = query + R, rows = head + R;
            new Span<float>(o, R * HDp).Clear();
            new Span<float>(m, R).Fill(float.NegativeInfinity);
            new Span<float>(l, R).Clear();
            for (int r = 0; r < R; r++)
            {
                int t = r % T, h = g * G + r / T;
                qRows[r] = q + ((long)t * NH + h) * HD;
                query[r] = pastLen + t;
                head[r] = h;
            }

            var blocks = sparsity.Blocks;
            bool alignedBlocks = blocks != null && blocks.BlockSize % BlockK == 0;
            int keyEnd = Math.Min(S, pastLen + T); // causal edge of the step's last query
            for (int ka = 0; ka < keyEnd; ka += BlockK)
            {
                int kb = Math.Min(keyEnd, ka + BlockK), nk = kb - ka;
                // the rows that see some key of this tile, each with whether it needs masking
                int count = 0;
                for (int r = 0; r < R; r++)
                {
                    int h = head[r], i = query[r];
                    if (i < ka) continue; // the whole tile is after this query
                    TileCover cover = CoverOf(i, i + 1, ka, kb, mask, window, sparsity);
                    if (cover == TileCover.Skip) continue;
                    if (blocks != null && !HeadKeepsTile(blocks, alignedBlocks, h, i, i + 1, ka, kb)) continue;
                    bool masked = cover == TileCover.Masked || nk < BlockK || (blocks != null && !alignedBlocks);
                    rows[count++] = masked ? ~r : r;
                }
                if (count == 0) continue;

                // pass 1: scores, keys read in place
                float* keys = k + (long)ka * kvStride + (long)g * HD;
                DecodeScoreTile(qRows, HD, keys, kvStride, nk, scale, rows, count, s);
                float* values = v + (long)ka * kvStride + (long)g * HD;
                for (int n = 0; n < count; n++)
                {
                    int r = rows[n] < 0 ? ~rows[n] : rows[n];
                    float* sr = s + r * BlockK, orow = o + r * HDp;
                    // pass 2: masking of a partial tile
                    if (rows[n] < 0) MaskTile(sr, query[r], 1, ka, nk, mask, window, sparsity, head[r], alignedBlocks);
                    // pass 3: online softmax
                    OnlineSoftmaxRow(sr, m + r, l + r, orow, HDp);
                    // pass 4: O += p · v over the tile's keys (p = 0 past nk, as the blocked kernel's zero padding adds nothing)
                    DecodeValueRow(sr, nk, values, kvStride, HD, orow);
                }
            }

            // pass 5: z = O / l
            for (int r = 0; r < R; r++) NormalizeRow(o + r * HDp, l[r], z + ((long)(query[r] - pastLen) * NH + head[r]) * HD, HD);
        }
    }

    /// <summary>Floats of scratch each worker thread of the decode path holds for a step of T queries:
    /// s (G·T, BK) | O (G·T, HDp) | m, l, row addresses, queries, heads, row list (G·T) — at most the blocked kernel's own
    /// for T ≤ 8.</summary>
    internal static int DecodeAttentionScratchFloats(int NH, int NKV, int HD, int T)
    {
        int R = NH / NKV * T, HDp = (HD + 15) & ~15;
        return R * (BlockK + HDp + 2 + (sizeof(float*) / sizeof(float)) + 3);
    }

    // s[r, j] = scale · Σ_d q_r[d]·k_j[d] for the listed rows r (~r where masked) and the tile's nk keys; s[r, j ≥ nk] = −∞.
    // q_r: qRows[r] (HD).  keys: nk rows of HD at stride kvStride. Each score is its key's lane of an FMA
    // chain over d = 0 … HD − 1 from zero, then × scale: what Score8x32/Score1x32 (AVX2: Score4x16/Score1x16) compute
    // from the packed tile, bit for bit. Dims in chunks of 8, keys in groups of 8: the 8×8 block is transposed in
    // registers (the GEMM's OutIn packing transpose) and each listed row adds its 8 FMAs per key lane into s.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeScoreTile(float** qRows, int HD, float* keys, long kvStride, int nk, float scale, int* rows, int count, float* s)
    {
        int d0 = 0;
        for (; d0 + 8 <= HD; d0 += 8)
        {
            for (int j0 = 0; j0 < nk; j0 += 8)
            {
                // 8 keys × dims d0 … d0 + 7, keys past nk zero (never read)
                float* kr = keys + j0 * kvStride + d0;
                int n8 = Math.Min(8, nk - j0);
                Vector256<float> r0 = Avx.LoadVector256(kr), r1 = n8 > 1 ? Avx.LoadVector256(kr + kvStride) : default,
                    r2 = n8 > 2 ? Avx.LoadVector256(kr + 2 * kvStride) : default, r3 = n8 > 3 ? Avx.LoadVector256(kr + 3 * kvStride) : default,
                    r4 = n8 > 4 ? Avx.LoadVector256(kr + 4 * kvStride) : default, r5 = n8 > 5 ? Avx.LoadVector256(kr + 5 * kvStride) : default,
                    r6 = n8 > 6 ? Avx.LoadVector256(kr + 6 * kvStride) : default, r7 = n8 > 7 ? Avx.LoadVector256(kr + 7 * kvStride) : default;
                Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3),
                    t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
                Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE), u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE),
                    u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE), u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
                // kd = dim d0 + d of the 8 keys
                Vector256<float> k0 = Avx.Permute2x128(u0, u4, 0x20), k1 = Avx.Permute2x128(u1, u5, 0x20), k2 = Avx.Permute2x128(u2, u6, 0x20),
                    k3 = Avx.Permute2x128(u3, u7, 0x20), k4 = Avx.Permute2x128(u0, u4, 0x31), k5 = Avx.Permute2x128(u1, u5, 0x31),
                    k6 = Avx.Permute2x128(u2, u6, 0x31), k7 = Avx.Permute2x128(u3, u7, 0x31);
                for (int n = 0; n < count; n++)
                {
                    int r = rows[n] < 0 ? ~rows[n] : rows[n];
                    float* qd = qRows[r] + d0;
                    float* sr = s + r * BlockK + j0;
                    var acc = d0 == 0 ? Vector256<float>.Zero : Vector256.Load(sr);
                    acc = LaneFma(Vector256.Create(qd[0]), k0, acc);
                    acc = LaneFma(Vector256.Create(qd[1]), k1, acc);
                    acc = LaneFma(Vector256.Create(qd[2]), k2, acc);
                    acc = LaneFma(Vector256.Create(qd[3]), k3, acc);
                    acc = LaneFma(Vector256.Create(qd[4]), k4, acc);
                    acc = LaneFma(Vector256.Create(qd[5]), k5, acc);
                    acc = LaneFma(Vector256.Create(qd[6]), k6, acc);
                    acc = LaneFma(Vector256.Create(qd[7]), k7, acc);
                    acc.Store(sr);
                }
            }
        }
        for (int n = 0; n < count; n++)
        {
            int r = rows[n] < 0 ? ~rows[n] : rows[n];
            float* qr = qRows[r];
            float* sr = s + r * BlockK;
            if (d0 == HD)
            {
                var sc = Vector256.Create(scale);
                for (int j0 = 0; j0 < nk; j0 += 8) (Vector256.Load(sr + j0) * sc).Store(sr + j0);
            }
            else
            {
                for (int j = 0; j < nk; j++)
                {
                    // remainder dims (HD not a multiple of 8), key by key in the same lane order; then the scale
                    float dot = d0 == 0 ? 0f : sr[j];
                    for (int d = d0; d < HD; d++) dot = LaneFma(qr[d], keys[j * kvStride + d], dot);
                    sr[j] = dot * scale;
                }
            }
            new Span<float>(sr + nk, BlockK - nk).Fill(float.NegativeInfinity);
        }
    }

    // o (HD) += Σ_j<n p[j] · v_j, value rows at stride vStride read in place. Each column is the FMA chain over j that the
    // one-row value kernels (Value1x16Wide, Value1x16) run; 64 columns (AVX2: 32) at a time in four registers, so that four
    // chains advance together instead of one waiting on each FMA; the last HD mod 16 (AVX2: 8) columns lane by lane (a
    // wider load would read past the head — past the array for the last kv head).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeValueRow(float* p, int n, float* v, long vStride, int HD, float* o)
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; c + 64 <= HD; c += 64)
            {
                Vector512<float> a0 = Vector512.Load(o + c), a1 = Vector512.Load(o + c + 16), a2 = Vector512.Load(o + c + 32), a3 = Vector512.Load(o + c + 48);
                float* vj = v + c;
                for (int j = 0; j < n; j++, vj += vStride)
                {
                    var pj = Vector512.Create(p[j]);
                    a0 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj), a0);
                    a1 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vj + 48), a3);
                }
                a0.Store(o + c); a1.Store(o + c + 16); a2.Store(o + c + 32); a3.Store(o + c + 48);
            }
            for (; c + 16 <= HD; c += 16)
            {
                var a = Vector512.Load(o + c);
                float* vj = v + c;
                for (int j = 0; j < n; j++, vj += vStride) a = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(vj), a);
                a.Store(o + c);
            }
        }
        else
        {
            for (; c + 32 <= HD; c += 32)
            {
                Vector256<float> a0 = Vector256.Load(o + c), a1 = Vector256.Load(o + c + 8), a2 = Vector256.Load(o + c + 16), a3 = Vector256.Load(o + c + 24);
                float* vj = v + c;
                for (int j = 0; j < n; j++, vj += vStride)
                {
                    var pj = Vector256.Create(p[j]);
                    a0 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj), a0);
                    a1 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj + 8), a1);
                    a2 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj + 16), a2);
                    a3 = Vector256.MultiplyAddEstimate(pj, Vector256.Load(vj + 24), a3);
                }
                a0.Store(o + c); a1.Store(o + c + 8); a2.Store(o + c + 16); a3.Store(o + c + 24);
            }
            for (; c + 8 <= HD; c += 8)
            {
                var a = Vector256.Load(o + c);
                float* vj = v + c;
                for (int j = 0; j < n; j++, vj += vStride) a = Vector256.MultiplyAddEstimate(Vector256.Create(p[j]), Vector256.Load(vj), a);
                a.Store(o + c);
            }
        }
        // remainder columns
        for (; c < HD; c++)
        {
            float acc = o[c];
            for (int j = 0; j < n; j++) acc = LaneFma(p[j], v[j * vStride + c], acc);
            o[c] = acc;
        }
    }

    // one lane of the one-row micro-kernels' multiply-add: fused on AVX-512 (Vector512.FusedMultiplyAdd), else
    // Vector256.MultiplyAddEstimate (fused wherever the CPU has FMA)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> LaneFma(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Vector512.IsHardwareAccelerated ? Vector256.FusedMultiplyAdd(a, b, c) : Vector256.MultiplyAddEstimate(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float LaneFma(float a, float b, float c) =>
        Vector512.IsHardwareAccelerated || Fma.IsSupported ? MathF.FusedMultiplyAdd(a, b, c) : (a * b) + c;
}
