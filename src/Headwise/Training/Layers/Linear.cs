using Headwise.Compute;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>A dense layer in nn.Linear layout: out = x·Wᵀ + b, W stored (OC, C). All three products go through Kernels.MatMul.</summary>
public static class Linear
{
    // x: (N, C)  w: (OC, C)  b: (OC) or empty  out: (N, OC)
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> output, int N, int C, int OC)
        => K.MatMul(x, w, b, output, N, C, OC, WeightLayout.OutIn);

    /// <summary>Scratch floats <see cref="Backward"/> needs: a transposed dout (OC·N) and a product buffer (max(OC·C, N·C)).</summary>
    public static (long Transposed, long Product) ScratchSize(int N, int C, int OC) => ((long)OC * N, Math.Max((long)OC * C, (long)N * C));

    // dout: (N, OC)  dx: (N, C) — overwritten, or += when accumulateDx; empty to skip  dw: (OC, C) +=  db: (OC) += or empty
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> dx, Span<float> dw,
        Span<float> db, Span<float> scratchT, Span<float> scratchP, int N, int C, int OC, bool accumulateDx = false)
    {
        // dW = doutᵀ · x: MatMul computes a·b with a row-major, so transpose dout to (OC, N) and read x (N, C) as an
        // InOut weight whose "input" dimension is N.
        var dT = scratchT[..(OC * N)];
        Transpose(dout, dT, N, OC);
        var prod = scratchP[..(OC * C)];
        // undoes: out = x·Wᵀ   (∂/∂W)
        K.MatMul(dT, x, default, prod, OC, N, C, WeightLayout.InOut);
        K.Add(dw[..(OC * C)], prod, dw);
        if (!db.IsEmpty)
        {
            // undoes: + b — the column sums of dout, rows added in order (vectorized along OC)
            var sum = prod[..OC];
            sum.Clear();
            for (int n = 0; n < N; n++) K.Add(sum, dout.Slice(n * OC, OC), sum);
            K.Add(db[..OC], sum, db);
        }
        if (dx.IsEmpty)
        {
            return;
        }
        // undoes: out = x·Wᵀ   (∂/∂x): dx = dout·W, with W (OC, C) read as an InOut weight whose input dimension is OC
        if (accumulateDx)
        {
            var tmp = scratchP[..(N * C)];
            K.MatMul(dout, w, default, tmp, N, OC, C, WeightLayout.InOut);
            K.Add(dx[..(N * C)], tmp, dx);
        }
        else
        {
            K.MatMul(dout, w, default, dx, N, OC, C, WeightLayout.InOut);
        }
    }

    /// <summary>t = aᵀ, in 32×32 tiles.</summary>
    // a: (R, S) → t: (S, R)
    public static unsafe void Transpose(ReadOnlySpan<float> a, Span<float> t, int R, int S)
    {
        const int Tile = 32;
        int tilesR = (R + Tile - 1) / Tile;
        fixed (float* pa = a, pt = t)
        {
            float* src = pa, dst = pt;
            Par.For(tilesR, (long)Tile * S, tr =>
            {
                int r0 = tr * Tile, r1 = Math.Min(R, r0 + Tile);
                for (int s0 = 0; s0 < S; s0 += Tile)
                {
                    int s1 = Math.Min(S, s0 + Tile);
                    // writes run along t's rows; the 32 source rows being read stay in L1 across the s loop
                    for (int s = s0; s < s1; s++)
                    {
                        for (int r = r0; r < r1; r++)
                        {
                            dst[(long)s * R + r] = src[(long)r * S + s];
                        }
                    }
                }
            });
        }
    }
}
