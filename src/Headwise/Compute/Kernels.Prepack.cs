namespace Headwise.Compute;

/// <summary>
/// A linear weight packed once into the GEMM's B panels (Kernels.MatMul.cs), so that prefill reads them instead of packing
/// the weight again on every call. Made by <see cref="Kernels.PackWeight"/>; read-only afterwards.
/// </summary>
// Panels: for each block of NC output columns (n = 0, NC, 2·NC, …), for each depth block of KC (pc = 0, KC, …):
// ⌈nc/NR⌉ panels of kc × NR, NR contiguous, zero-padded past OC — exactly what PackB writes for that (n, pc) block.
// Every column block but the last is NC wide (a multiple of NR), so block (n, pc) starts at n·C + pc·⌈nc/NR⌉·NR.
public sealed class PackedWeight
{
    internal PackedWeight(float[] panels, int c, int oc, WeightLayout layout, int nr)
    {
        Panels = panels;
        C = c;
        OC = oc;
        Layout = layout;
        PanelWidth = nr;
    }

    /// <summary>The panels: ⌈OC/NR⌉·NR × C floats, pinned.</summary>
    internal float[] Panels { get; }

    /// <summary>Input features (the depth of the product).</summary>
    public int C { get; }

    /// <summary>Output features.</summary>
    public int OC { get; }

    /// <summary>How the source weight was stored.</summary>
    public WeightLayout Layout { get; }

    /// <summary>NR, the register tile's width on this machine (32 with AVX-512, 16 with AVX2, 8 otherwise).</summary>
    public int PanelWidth { get; }

    /// <summary>Bytes the panels occupy (the weight's own size, plus zero padding of the last panel).</summary>
    public long Bytes => Panels.LongLength * sizeof(float);

    internal bool Matches(int c, int oc, WeightLayout layout) => C == c && OC == oc && Layout == layout;
}

public static unsafe partial class Kernels
{
    /// <summary>Bytes <see cref="PackWeight"/> allocates for a (C → OC) weight on this machine.</summary>
    public static long PackedWeightBytes(int C, int OC) => (long)RoundUp(OC, GemmNR) * C * sizeof(float);

    /// <summary>Packs <paramref name="w"/> into the GEMM's panels once, for <see cref="MatMul(ReadOnlySpan{float}, ReadOnlySpan{float}, PackedWeight?, ReadOnlySpan{float}, Span{float}, int, int, int, WeightLayout)"/>.</summary>
    // w: (OC, C) for OutIn or (C, OC) for InOut → panels as in the GEMM's PackB, every (column block, depth block) in turn
    public static PackedWeight PackWeight(ReadOnlySpan<float> w, int C, int OC, WeightLayout layout)
    {
        fixed (float* pw = w)
        {
            float* src = pw;
            return PackPanels(w.Length, C, OC, layout, (n0, pc, nc, kc, dst) => PackB(src, C, OC, layout, pc, kc, n0, nc, GemmNR, dst));
        }
    }

    /// <summary>Packs an F16 or BF16 weight straight from its stored bits into the GEMM's panels: the same panels as
    /// <see cref="PackWeight"/> of the weight converted to float32 (the conversion is exact), without converting the whole
    /// weight first — each (column block, depth block) is converted into a scratch of its own and packed from there.</summary>
    // w: (OC, C) for OutIn or (C, OC) for InOut, F16 or BF16 bits → panels as PackWeight
    public static PackedWeight PackWeight(ReadOnlySpan<ushort> w, bool bfloat16, int C, int OC, WeightLayout layout)
    {
        fixed (ushort* pw = w)
        {
            ushort* src = pw;
            return PackPanels(w.Length, C, OC, layout, (n0, pc, nc, kc, dst) =>
            {
                // the block as a (nc, kc) OutIn or (kc, nc) InOut matrix of its own (at most 1 MiB), then PackB as usual
                var block = GC.AllocateUninitializedArray<float>(nc * kc);
                bool outIn = layout == WeightLayout.OutIn;
                int rows = outIn ? nc : kc, cols = outIn ? kc : nc;
                for (int r = 0; r < rows; r++)
                {
                    long from = outIn ? (long)(n0 + r) * C + pc : (long)(pc + r) * OC + n0;
                    var bits = new ReadOnlySpan<ushort>(src + from, cols);
                    var row = block.AsSpan(r * cols, cols);
                    if (bfloat16) BFloat16ToSingle(bits, row); else HalfToSingle(bits, row);
                }
                fixed (float* pb = block)
                {
                    PackB(pb, kc, nc, layout, 0, kc, 0, nc, GemmNR, dst);
                }
            });
        }
    }

    // packs one (column block n0, nc wide; depth block pc, kc deep) of a weight into dst, its place in the panels
    private delegate void BlockPacker(int n0, int pc, int nc, int kc, float* dst);

    // allocates a (C → OC) weight's panels and fills every (column block, depth block) with packBlock, spread over the
    // cores: the blocks are independent (the unembedding has ~50 × 3)
    private static PackedWeight PackPanels(long wLength, int C, int OC, WeightLayout layout, BlockPacker packBlock)
    {
        Require(C >= 0 && OC >= 0, "PackWeight: negative dimension");
        Require(wLength >= (long)C * OC, "PackWeight: w is shorter than C·OC");
        long n = (long)RoundUp(OC, GemmNR) * C;
        Require(n <= Array.MaxLength, "PackWeight: the packed weight would exceed the largest array");
        var panels = GC.AllocateUninitializedArray<float>((int)n, pinned: true);
        int nr = GemmNR;
        int colBlocks = (OC + GemmNC - 1) / GemmNC, depthBlocks = (C + GemmKC - 1) / GemmKC;
        fixed (float* pp = panels)
        {
            float* dst = pp;
            Parallel.For(0, colBlocks * depthBlocks, new ParallelOptions { MaxDegreeOfParallelism = MaxThreads }, task =>
            {
                int n0 = task / depthBlocks * GemmNC, pc = task % depthBlocks * GemmKC;
                int nc = Math.Min(GemmNC, OC - n0), kc = Math.Min(GemmKC, C - pc);
                packBlock(n0, pc, nc, kc, dst + PackedBlockOffset(n0, pc, nc, C, nr));
            });
        }
        return new PackedWeight(panels, C, OC, layout, nr);
    }

    // where the panels of column block n (nc wide) and depth block pc start in a packed weight (layout above)
    private static long PackedBlockOffset(int n, int pc, int nc, int C, int nr) => (long)n * C + (long)pc * RoundUp(nc, nr);

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
