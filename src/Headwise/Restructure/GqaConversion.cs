using System.Numerics;
using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Restructure;

/// <summary>How each group of key/value heads becomes one.</summary>
public enum GqaMethod
{
    /// <summary>The mean of the group's W_K, W_V (and biases): the mean-pooling initialisation of GQA up-training
    /// (Ainslie et al., 2023). Queries and outputs are untouched.</summary>
    Mean,

    /// <summary>The linear fusion of the group's keys and values that reconstructs them best on the calibration text
    /// (after DHA, Decoupled-Head Attention): one fused head plus a per-member map, folded into that member's W_Q (keys)
    /// and W_O (values). Exact when a group has one member.</summary>
    Fuse,
}

/// <summary>One layer of a conversion: which old key/value heads form each new one, and how well the new ones reconstruct
/// the old keys and values on the calibration text (Σ‖K − K̂‖² / Σ‖K‖²; 0 = exact).</summary>
public sealed record GqaLayerReport(int Layer, int[][] Groups, double KeyError, double ValueError);

/// <summary>The converted weights; <paramref name="QueryHeadOrigin"/>[layer][new head] = the old query head it was.</summary>
public sealed record GqaConversionResult(CanonicalWeights Weights, GqaMethod Method, IReadOnlyList<GqaLayerReport> Layers, int[][] QueryHeadOrigin);

/// <summary>
/// Grouped-query attention by head fusion [DHA; GQA]: the NKV key/value heads of every layer become G, each new one shared by
/// the query heads of the NKV/G old heads it replaces.
///
/// 1. Calibrate: run the text once, read hook_k and hook_v (pre-RoPE) of every layer: K_j, V_j (T, HD) per kv head j.
/// 2. Group: greedily, the lowest unassigned head with the NKV/G − 1 unassigned heads most similar to it (cosine of their
///    concatenated keys and values on the text).
/// 3. Fuse each group (<see cref="GqaMethod"/>). Keys keep RoPE exact: on the rotary dims the per-member map is one complex
///    number per frequency pair (a scaled rotation, which commutes with RoPE's rotation); the fused pair is the top complex
///    principal component of the members' pairs. On non-rotary dims and values the fused head is the top-HD principal
///    subspace of the members' stacked activations, the map its block for that member.
/// 4. Permute query heads so that each group's query heads are contiguous (head h reads kv head h / (NH/G)); W_O permutes
///    with them, so the sum over heads is unchanged.
/// Families whose Hugging Face format has no grouped-query attention (GPT-2, GPT-NeoX) are refused.
/// </summary>
public static class GqaConversion
{
    /// <param name="groups">The groups of old key/value heads per layer ([layer][group][member]), instead of grouping by
    /// similarity; every kv head exactly once per layer, NKV / kvHeads per group.</param>
    public static GqaConversionResult Convert(TransformerModel model, int kvHeads, GqaMethod method, int[] calibration,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default, int[][][]? groups = null)
    {
        var c = model.Config;
        if (c.Family != ArchitectureFamily.Llama)
        {
            throw new InvalidInputException($"convert gqa: {c.ModelType} checkpoints have no grouped-query form (Hugging Face's {c.ModelType} attention has one key/value head per query head); "
                + "models of the Llama family (llama, mistral, qwen2, llama2.c) can be converted");
        }
        int NKV = c.NKvHeads, NH = c.NHeads, HD = c.DHead, C = c.DModel;
        if (kvHeads < 1 || kvHeads > NKV || NKV % kvHeads != 0)
        {
            throw new InvalidInputException($"--kv-heads {kvHeads} must divide the model's {NKV} key/value heads (1 to {NKV})");
        }
        if (calibration.Length < 2)
        {
            throw new InvalidInputException($"the calibration text has {calibration.Length} token(s); it needs at least 2");
        }
        int T = Math.Min(calibration.Length, c.MaxPositions);
        var tokens = calibration[..T];
        int r = NKV / kvHeads, qPerKv = NH / NKV;

        var (_, cache) = model.RunWithCache(ModelInput.Single(tokens), n => n.EndsWith("attn.hook_k", StringComparison.Ordinal) || n.EndsWith("attn.hook_v", StringComparison.Ordinal));
        var src = model.ToCanonical();
        var layers = new LayerWeights[c.NLayers];
        var reports = new List<GqaLayerReport>();
        var origin = new int[c.NLayers][];
        for (int l = 0; l < c.NLayers; l++)
        {
            cancel.ThrowIfCancellationRequested();
            var k = cache[new HookPoint(l, HookKind.K).Name].Data; // (1, T, NKV, HD)
            var v = cache[new HookPoint(l, HookKind.V).Name].Data;
            var layerGroups = groups is null ? Group(k, v, T, NKV, HD, r) : CheckGroups(groups, l, c.NLayers, NKV, r);
            var a = src.Layers[l].Attention;
            var wq = new float[NH * C * HD];
            var wo = new float[NH * HD * C];
            float[]? bq = a.BQ is null ? null : new float[NH * HD];
            var wk = new float[kvHeads * C * HD];
            var wv = new float[kvHeads * C * HD];
            float[]? bk = a.BK is null ? null : new float[kvHeads * HD];
            float[]? bv = a.BV is null ? null : new float[kvHeads * HD];
            origin[l] = new int[NH];
            double kErr = 0, kNorm = 0, vErr = 0, vNorm = 0;
            for (int g = 0; g < kvHeads; g++)
            {
                var members = layerGroups[g];
                // query heads of the group, in member order: member i's heads land at g·(NH/G) + i·qPerKv + s
                for (int i = 0; i < r; i++)
                {
                    for (int s = 0; s < qPerKv; s++)
                    {
                        int oldH = members[i] * qPerKv + s, newH = g * r * qPerKv + i * qPerKv + s;
                        origin[l][newH] = oldH;
                        a.Q(oldH).CopyTo(wq.AsSpan(newH * C * HD, C * HD));
                        a.O(oldH).CopyTo(wo.AsSpan(newH * HD * C, HD * C));
                        a.BQ?.AsSpan(oldH * HD, HD).CopyTo(bq.AsSpan(newH * HD, HD));
                    }
                }
                var key = FuseGroup(a.WK, a.BK, k, members, T, NKV, C, HD, c.RotaryDims, c.RopeLayout, method, rotary: true);
                var val = FuseGroup(a.WV, a.BV, v, members, T, NKV, C, HD, 0, c.RopeLayout, method, rotary: false);
                key.W.CopyTo(wk.AsSpan(g * C * HD, C * HD));
                val.W.CopyTo(wv.AsSpan(g * C * HD, C * HD));
                key.B?.CopyTo(bk.AsSpan(g * HD, HD));
                val.B?.CopyTo(bv.AsSpan(g * HD, HD));
                (kErr, kNorm, vErr, vNorm) = (kErr + key.Error, kNorm + key.Norm, vErr + val.Error, vNorm + val.Norm);
                if (method == GqaMethod.Fuse)
                {
                    for (int i = 0; i < r; i++)
                    {
                        for (int s = 0; s < qPerKv; s++)
                        {
                            int newH = g * r * qPerKv + i * qPerKv + s;
                            key.FoldIntoQuery(i, wq.AsSpan(newH * C * HD, C * HD), C, bq is null ? default : bq.AsSpan(newH * HD, HD));
                            val.FoldIntoOutput(i, wo.AsSpan(newH * HD * C, HD * C), C);
                        }
                    }
                }
            }
            var attention = new AttentionWeights(NH, kvHeads, C, HD, wq, wk, wv, wo, bq, bk, bv, a.BO is null ? null : (float[])a.BO.Clone());
            layers[l] = src.Layers[l] with { Attention = attention };
            reports.Add(new GqaLayerReport(l, layerGroups, kNorm == 0 ? 0 : kErr / kNorm, vNorm == 0 ? 0 : vErr / vNorm));
            progress?.Report((l + 1, c.NLayers));
        }
        var weights = src with { Config = c with { NKvHeads = kvHeads }, Layers = layers };
        weights.Validate();
        return new GqaConversionResult(weights, method, reports, origin);
    }

    private static int[][] CheckGroups(int[][][] groups, int layer, int layers, int NKV, int r)
    {
        if (groups.Length != layers)
        {
            throw new InvalidInputException($"groups are given for {groups.Length} layers; the model has {layers}");
        }
        var g = groups[layer];
        if (g.Length != NKV / r || g.Any(x => x.Length != r) || !g.SelectMany(x => x).Order().SequenceEqual(Enumerable.Range(0, NKV)))
        {
            throw new InvalidInputException($"layer {layer}: the groups must hold each of the {NKV} key/value heads once, {r} per group");
        }
        return g;
    }

    /// <summary>Groups of <paramref name="r"/> kv heads: the lowest unassigned head and the r − 1 unassigned heads whose
    /// concatenated keys and values on the text have the highest cosine similarity with its own.</summary>
    internal static int[][] Group(float[] k, float[] v, int T, int NKV, int HD, int r)
    {
        double Dot(int a, int b)
        {
            double s = 0;
            for (int t = 0; t < T; t++)
            {
                for (int d = 0; d < HD; d++)
                {
                    int ia = (t * NKV + a) * HD + d, ib = (t * NKV + b) * HD + d;
                    s += (double)k[ia] * k[ib] + (double)v[ia] * v[ib];
                }
            }
            return s;
        }
        var norm = Enumerable.Range(0, NKV).Select(j => Math.Sqrt(Dot(j, j))).ToArray();
        var free = new SortedSet<int>(Enumerable.Range(0, NKV));
        var groups = new List<int[]>();
        while (free.Count > 0)
        {
            int lead = free.Min;
            free.Remove(lead);
            var rest = free.OrderByDescending(j => Dot(lead, j) / Math.Max(norm[lead] * norm[j], 1e-30)).ThenBy(j => j).Take(r - 1).ToArray();
            foreach (int j in rest)
            {
                free.Remove(j);
            }
            groups.Add([lead, .. rest]);
        }
        return groups.ToArray();
    }

    /// <summary>A group's fused projection (C, HD) and bias, the per-member maps, and its reconstruction error on the text.</summary>
    private sealed class Fused(float[] w, float[]? b, double error, double norm)
    {
        public float[] W { get; } = w;
        public float[]? B { get; } = b;
        public double Error { get; } = error;
        public double Norm { get; } = norm;

        /// <summary>Per member i, per rotary pair p: d = (re, im), member's key pair ≈ conj(d)·fused pair.</summary>
        public (double Re, double Im)[][]? Pairs { get; init; }

        /// <summary>Per member i: P_i (D, D) over the real (non-rotary) dims, member's dims ≈ fused dims · P_iᵀ.</summary>
        public double[][,]? Blocks { get; init; }

        public int[] RealDims { get; init; } = [];

        public (int A, int B)[] PairDims { get; init; } = [];

        /// <summary>q' = q·d per pair (complex), q'_real = q_real·P_i: the score against the fused key equals the score
        /// against the member's reconstructed key.</summary>
        public void FoldIntoQuery(int member, Span<float> wq, int C, Span<float> bq)
        {
            for (int row = 0; row <= C; row++)
            {
                if (row == C && bq.IsEmpty)
                {
                    break;
                }
                var x = row < C ? wq.Slice(row * PairDimsStride, PairDimsStride) : bq;
                Apply(member, x);
            }
        }

        /// <summary>W_O' = P_iᵀ·W_O: the head's output from the fused value equals that from the member's reconstructed value.</summary>
        public void FoldIntoOutput(int member, Span<float> wo, int C)
        {
            var p = Blocks![member];
            int D = RealDims.Length;
            var tmp = new double[D];
            for (int col = 0; col < C; col++)
            {
                for (int i = 0; i < D; i++)
                {
                    double s = 0;
                    for (int j = 0; j < D; j++)
                    {
                        s += p[j, i] * wo[RealDims[j] * C + col]; // (P_iᵀ)[i, j] = P_i[j, i]
                    }
                    tmp[i] = s;
                }
                for (int i = 0; i < D; i++)
                {
                    wo[RealDims[i] * C + col] = (float)tmp[i];
                }
            }
        }

        public int PairDimsStride { get; init; }

        private void Apply(int member, Span<float> q)
        {
            for (int p = 0; p < PairDims.Length; p++)
            {
                var (re, im) = Pairs![member][p];
                var (ia, ib) = PairDims[p];
                double qa = q[ia], qb = q[ib];
                q[ia] = (float)(re * qa - im * qb);
                q[ib] = (float)(re * qb + im * qa);
            }
            if (RealDims.Length > 0)
            {
                var m = Blocks![member];
                int D = RealDims.Length;
                Span<double> tmp = stackalloc double[D];
                for (int j = 0; j < D; j++)
                {
                    double s = 0;
                    for (int i = 0; i < D; i++)
                    {
                        s += q[RealDims[i]] * m[i, j];
                    }
                    tmp[j] = s;
                }
                for (int j = 0; j < D; j++)
                {
                    q[RealDims[j]] = (float)tmp[j];
                }
            }
        }
    }

    /// <summary>
    /// Fuses the members' projections w: (NKV, C, HD) into one (C, HD). act: (T, NKV, HD), the members' activations (x·W + b).
    /// Mean: the average. Fuse: rotary pairs by complex PCA (rank 1 per pair), other dims by real PCA (rank D of r·D).
    /// </summary>
    private static Fused FuseGroup(float[] w, float[]? b, float[] act, int[] members, int T, int NKV, int C, int HD, int rotaryDims, RopeLayout layout,
        GqaMethod method, bool rotary)
    {
        int r = members.Length;
        var pairs = new List<(int A, int B)>();
        if (rotary)
        {
            for (int p = 0; p < rotaryDims / 2; p++)
            {
                pairs.Add(layout == RopeLayout.RotateHalf ? (p, p + rotaryDims / 2) : (2 * p, 2 * p + 1));
            }
        }
        var inPair = new HashSet<int>(pairs.SelectMany(p => new[] { p.A, p.B }));
        int[] real = Enumerable.Range(0, HD).Where(d => !inPair.Contains(d)).ToArray();
        int D = real.Length;
        double At(int t, int m, int d) => act[(t * NKV + members[m]) * HD + d];
        double W(int m, int row, int d) => row < C ? w[(members[m] * C + row) * HD + d] : b![members[m] * HD + d];
        int rows = b is null ? C : C + 1; // the bias is one more row of the projection: x·W + b = [x, 1]·[W; b]

        var fused = new double[rows, HD];
        var dPairs = new (double Re, double Im)[r][];
        var blocks = new double[r][,];
        for (int m = 0; m < r; m++)
        {
            dPairs[m] = new (double, double)[pairs.Count];
            blocks[m] = new double[D, D];
        }
        if (method == GqaMethod.Mean)
        {
            for (int row = 0; row < rows; row++)
            {
                for (int d = 0; d < HD; d++)
                {
                    double s = 0;
                    for (int m = 0; m < r; m++)
                    {
                        s += W(m, row, d);
                    }
                    fused[row, d] = s / r;
                }
            }
        }
        else
        {
            // rotary pairs: Z (T, r) complex, H = Zᴴ Z; d = its top eigenvector; fused = Σ_m d_m z_m, member ≈ conj(d_m)·fused
            for (int p = 0; p < pairs.Count; p++)
            {
                var (ia, ib) = pairs[p];
                var h = Matrix<Complex>.Build.Dense(r, r);
                for (int x = 0; x < r; x++)
                {
                    for (int y = 0; y < r; y++)
                    {
                        Complex s = 0;
                        for (int t = 0; t < T; t++)
                        {
                            s += Complex.Conjugate(new Complex(At(t, x, ia), At(t, x, ib))) * new Complex(At(t, y, ia), At(t, y, ib));
                        }
                        h[x, y] = s;
                    }
                }
                var evd = h.Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Hermitian);
                int top = TopIndex(evd.EigenValues.Select(e => e.Real).ToArray());
                for (int m = 0; m < r; m++)
                {
                    var dm = evd.EigenVectors[m, top];
                    dPairs[m][p] = (dm.Real, dm.Imaginary);
                }
                for (int row = 0; row < rows; row++)
                {
                    double re = 0, im = 0;
                    for (int m = 0; m < r; m++)
                    {
                        var (a, bb) = dPairs[m][p];
                        double pa = W(m, row, ia), qb = W(m, row, ib);
                        re += a * pa - bb * qb;
                        im += a * qb + bb * pa;
                    }
                    fused[row, ia] = re;
                    fused[row, ib] = im;
                }
            }
            // real dims: S = stacked (T, r·D) second moment; P = its top-D eigenvectors (r·D, D); fused = stacked·P
            if (D > 0)
            {
                var s = Matrix<double>.Build.Dense(r * D, r * D);
                for (int t = 0; t < T; t++)
                {
                    for (int x = 0; x < r * D; x++)
                    {
                        double ax = At(t, x / D, real[x % D]);
                        if (ax == 0)
                        {
                            continue;
                        }
                        for (int y = 0; y < r * D; y++)
                        {
                            s[x, y] += ax * At(t, y / D, real[y % D]);
                        }
                    }
                }
                var evd = s.Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Symmetric);
                var order = Enumerable.Range(0, r * D).OrderByDescending(i => evd.EigenValues[i].Real).Take(D).ToArray();
                for (int m = 0; m < r; m++)
                {
                    for (int i = 0; i < D; i++)
                    {
                        for (int j = 0; j < D; j++)
                        {
                            blocks[m][i, j] = evd.EigenVectors[m * D + i, order[j]];
                        }
                    }
                }
                for (int row = 0; row < rows; row++)
                {
                    for (int j = 0; j < D; j++)
                    {
                        double acc = 0;
                        for (int m = 0; m < r; m++)
                        {
                            for (int i = 0; i < D; i++)
                            {
                                acc += W(m, row, real[i]) * blocks[m][i, j];
                            }
                        }
                        fused[row, real[j]] = acc;
                    }
                }
            }
        }

        // reconstruction error on the text, in the fused head's own terms (fused activation = [x, 1]·fused = Σ_m act_m·map_m)
        double err = 0, norm = 0;
        var f = new double[HD];
        for (int t = 0; t < T; t++)
        {
            Array.Clear(f);
            for (int d = 0; d < HD; d++)
            {
                if (method == GqaMethod.Mean)
                {
                    for (int m = 0; m < r; m++)
                    {
                        f[d] += At(t, m, d) / r;
                    }
                }
            }
            if (method == GqaMethod.Fuse)
            {
                foreach (var ((ia, ib), p) in pairs.Select((x, i) => (x, i)))
                {
                    double re = 0, im = 0;
                    for (int m = 0; m < r; m++)
                    {
                        var (a, bb) = dPairs[m][p];
                        re += a * At(t, m, ia) - bb * At(t, m, ib);
                        im += a * At(t, m, ib) + bb * At(t, m, ia);
                    }
                    (f[ia], f[ib]) = (re, im);
                }
                for (int j = 0; j < D; j++)
                {
                    double acc = 0;
                    for (int m = 0; m < r; m++)
                    {
                        for (int i = 0; i < D; i++)
                        {
                            acc += At(t, m, real[i]) * blocks[m][i, j];
                        }
                    }
                    f[real[j]] = acc;
                }
            }
            for (int m = 0; m < r; m++)
            {
                for (int d = 0; d < HD; d++)
                {
                    double rec = f[d];
                    if (method == GqaMethod.Fuse)
                    {
                        int p = pairs.FindIndex(x => x.A == d || x.B == d);
                        if (p >= 0)
                        {
                            var (a, bb) = dPairs[m][p];
                            var (ia, ib) = pairs[p];
                            // conj(d)·(f_a + i f_b) = (a f_a + b f_b) + i (a f_b − b f_a)
                            rec = d == ia ? a * f[ia] + bb * f[ib] : a * f[ib] - bb * f[ia];
                        }
                        else
                        {
                            int i = Array.IndexOf(real, d);
                            rec = 0;
                            for (int j = 0; j < D; j++)
                            {
                                rec += f[real[j]] * blocks[m][i, j];
                            }
                        }
                    }
                    double x = At(t, m, d);
                    err += (x - rec) * (x - rec);
                    norm += x * x;
                }
            }
        }

        var wf = new float[C * HD];
        for (int row = 0; row < C; row++)
        {
            for (int d = 0; d < HD; d++)
            {
                wf[row * HD + d] = (float)fused[row, d];
            }
        }
        float[]? bf = null;
        if (b is not null)
        {
            bf = new float[HD];
            for (int d = 0; d < HD; d++)
            {
                bf[d] = (float)fused[C, d];
            }
        }
        return new Fused(wf, bf, err, norm)
        {
            Pairs = dPairs,
            Blocks = blocks,
            RealDims = real,
            PairDims = pairs.ToArray(),
            PairDimsStride = HD,
        };
    }

    private static int TopIndex(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }
        return best;
    }
}
