using Headwise.Training;
using Headwise.Training.Layers;
using static Headwise.Tests.Unit.Training.LayerGradientTests;

namespace Headwise.Tests.Unit.Training;

// Each attention variant's layer: backward against finite differences of a direct (slow, obvious) double-precision forward
// (LayerGradientTests.Check), and the float forward against that same reference. The whole-model checks of every variant
// are in ModelGradientTests.
public class AttentionVariantTests
{
    [Theory]
    [InlineData(4, 1, 2)]  // one shared head, two of three routed heads active
    [InlineData(4, 0, 1)]  // no shared head, top-1
    [InlineData(3, 2, 1)]  // one routed head, always selected
    public void MohGatesMatchTheReferenceAndFiniteDifferences(int NH, int S, int topK)
    {
        int N = 5, HDV = 3, W = MohAttention.RouterWidth(NH);
        var r = new Random(21);
        // logits at least 0.05 apart within a token, so the top-k choice cannot flip under the finite-difference step
        var logits = new float[N * W];
        for (int n = 0; n < N; n++)
        {
            var order = Enumerable.Range(0, W).OrderBy(_ => r.Next()).ToArray();
            for (int i = 0; i < W; i++) logits[n * W + i] = (float)(order[i] * 0.3 - 1 + r.NextDouble() * 0.05);
        }
        var zRaw = Rand(r, N * NH * HDV);
        var dz = Rand(r, N * NH * HDV);
        var gates = new float[N * NH];
        var z = new float[N * NH * HDV];
        MohAttention.Forward(logits, gates, zRaw, z, N, NH, HDV, S, topK);
        var dzRaw = Rand(r, zRaw.Length); // overwritten
        var dLogits = Rand(r, logits.Length);
        MohAttention.Backward(dz, logits, gates, zRaw, dzRaw, dLogits, N, NH, HDV, S, topK);

        double[] Gates(double[] l, int n)
        {
            var g = new double[NH];
            double a0 = Math.Exp(l[n * W + NH]), a1 = Math.Exp(l[n * W + NH + 1]);
            double shared = 0, routed = 0;
            for (int i = 0; i < S; i++) shared += Math.Exp(l[n * W + i]);
            for (int i = S; i < NH; i++) routed += Math.Exp(l[n * W + i]);
            var top = Enumerable.Range(S, NH - S).OrderByDescending(i => l[n * W + i]).ThenBy(i => i).Take(topK).ToHashSet();
            for (int i = 0; i < NH; i++)
            {
                g[i] = i < S ? a0 / (a0 + a1) * Math.Exp(l[n * W + i]) / shared
                    : top.Contains(i) ? a1 / (a0 + a1) * Math.Exp(l[n * W + i]) / routed : 0;
            }
            return g;
        }
        var dl = logits.Select(v => (double)v).ToArray();
        for (int n = 0; n < N; n++)
        {
            var g = Gates(dl, n);
            for (int h = 0; h < NH; h++)
            {
                Assert.Equal(g[h], gates[n * NH + h], 1e-6);
                for (int d = 0; d < HDV; d++) Assert.Equal(g[h] * zRaw[(n * NH + h) * HDV + d], z[(n * NH + h) * HDV + d], 1e-6);
            }
            Assert.Equal(topK + S, Enumerable.Range(0, NH).Count(h => gates[n * NH + h] > 0));
        }
        double Ref(double[][] p)
        {
            double s = 0;
            for (int n = 0; n < N; n++)
            {
                var g = Gates(p[0], n);
                for (int h = 0; h < NH; h++)
                    for (int d = 0; d < HDV; d++) s += g[h] * p[1][(n * NH + h) * HDV + d] * dz[(n * NH + h) * HDV + d];
            }
            return s;
        }
        Check("moh", [logits, zRaw], Ref, [dLogits, dzRaw]);
    }

    // z_t = Σ_{j≤t} φ(q_t)·φ(k_j) v_j / Σ_{j≤t} φ(q_t)·φ(k_j), φ = elu + 1
    private static double LinearRef(double[] q, double[] k, double[] v, double[] dz, int B, int T, int NH, int NKV, int HD, int HDV, double[]? z)
    {
        static double Phi(double x) => x > 0 ? x + 1 : Math.Exp(x);
        double s = 0;
        int g = NH / NKV;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++)
                {
                    var w = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                        for (int i = 0; i < HD; i++) w[j] += Phi(q[((b * T + t) * NH + h) * HD + i]) * Phi(k[((b * T + j) * NKV + h / g) * HD + i]);
                    double sum = w.Sum();
                    for (int i = 0; i < HDV; i++)
                    {
                        double zi = 0;
                        for (int j = 0; j <= t; j++) zi += w[j] / sum * v[((b * T + j) * NKV + h / g) * HDV + i];
                        if (z is not null) z[((b * T + t) * NH + h) * HDV + i] = zi;
                        s += zi * dz[((b * T + t) * NH + h) * HDV + i];
                    }
                }
        return s;
    }

    [Theory]
    [InlineData(2, 2, 4)]
    [InlineData(4, 2, 3)]  // grouped-query, value head size ≠ query head size
    public void LinearAttentionMatchesTheReferenceAndFiniteDifferences(int NH, int NKV, int HDV)
    {
        int B = 2, T = 5, HD = 4;
        var r = new Random(22);
        var q = Rand(r, B * T * NH * HD);
        var k = Rand(r, B * T * NKV * HD);
        var v = Rand(r, B * T * NKV * HDV);
        var dz = Rand(r, B * T * NH * HDV);
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        LinearAttention.Forward(q, k, v, att, z, B, T, NH, NKV, HD, HDV);
        var zRef = new double[z.Length];
        static double[] D(float[] a) => a.Select(x => (double)x).ToArray();
        LinearRef(D(q), D(k), D(v), D(dz), B, T, NH, NKV, HD, HDV, zRef);
        for (int i = 0; i < z.Length; i++) Assert.Equal(zRef[i], z[i], 1e-5);
        var dq = Rand(r, q.Length); // all overwritten
        var dk = Rand(r, k.Length);
        var dv = Rand(r, v.Length);
        LinearAttention.Backward(dz, q, k, v, att, dq, dk, dv, B, T, NH, NKV, HD, HDV);
        Check("linear", [q, k, v], p => LinearRef(p[0], p[1], p[2], D(dz), B, T, NH, NKV, HD, HDV, null), [dq, dk, dv]);
    }

    [Fact]
    public void LinearAttentionRecurrentFormEqualsTheParallelForm()
    {
        int B = 1, T = 12, NH = 2, HD = 4, HDV = 3;
        var r = new Random(23);
        var q = Rand(r, B * T * NH * HD, 2);
        var k = Rand(r, B * T * NH * HD, 2);
        var v = Rand(r, B * T * NH * HDV);
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        LinearAttention.Forward(q, k, v, att, z, B, T, NH, NH, HD, HDV);
        for (int h = 0; h < NH; h++)
        {
            var state = new float[HD * HDV];
            var norm = new float[HD];
            var zt = new float[HDV];
            for (int t = 0; t < T; t++)
            {
                int qo = (t * NH + h) * HD, vo = (t * NH + h) * HDV;
                LinearAttention.Step(state, norm, q.AsSpan(qo, HD), k.AsSpan(qo, HD), v.AsSpan(vo, HDV), zt, HD, HDV);
                for (int i = 0; i < HDV; i++) Assert.Equal(z[vo + i], zt[i], 1e-5f * Math.Max(1, Math.Abs(z[vo + i])));
            }
        }
    }

    // the causal Sinkhorn form of SinkhornAttention, written out directly in double
    private static double SinkhornRef(double[] q, double[] k, double[] v, double[] dz, int B, int T, int NH, int NKV, int HD, int HDV, int iters,
        double[]? att)
    {
        static double Lse(IEnumerable<double> x)
        {
            var a = x.ToArray();
            double m = a.Max();
            return m + Math.Log(a.Sum(u => Math.Exp(u - m)));
        }
        double s = 0;
        int g = NH / NKV;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
            {
                var L = new double[T, T];
                for (int t = 0; t < T; t++)
                    for (int j = 0; j <= t; j++)
                    {
                        for (int i = 0; i < HD; i++) L[t, j] += q[((b * T + t) * NH + h) * HD + i] * k[((b * T + j) * NKV + h / g) * HD + i];
                        L[t, j] /= Math.Sqrt(HD);
                    }
                for (int it = 0; it < iters; it++)
                {
                    var R = new double[T, T];
                    for (int t = 0; t < T; t++)
                    {
                        double lse = Lse(Enumerable.Range(0, t + 1).Select(j => L[t, j]));
                        for (int j = 0; j <= t; j++) R[t, j] = L[t, j] - lse;
                    }
                    for (int t = 0; t < T; t++)
                        for (int j = 0; j <= t; j++) L[t, j] = R[t, j] - Lse(Enumerable.Range(j, t - j + 1).Select(u => R[u, j]));
                }
                for (int t = 0; t < T; t++)
                {
                    double lse = Lse(Enumerable.Range(0, t + 1).Select(j => L[t, j]));
                    for (int j = 0; j <= t; j++)
                    {
                        double p = Math.Exp(L[t, j] - lse);
                        if (att is not null) att[((b * NH + h) * T + t) * T + j] = p;
                        for (int i = 0; i < HDV; i++) s += p * v[((b * T + j) * NKV + h / g) * HDV + i] * dz[((b * T + t) * NH + h) * HDV + i];
                    }
                }
            }
        return s;
    }

    [Theory]
    [InlineData(2, 2, 4, 3)]
    [InlineData(4, 2, 3, 2)]  // grouped-query, value head size ≠ query head size
    [InlineData(2, 1, 4, 0)]  // no iteration: softmax
    public void SinkhornAttentionMatchesTheReferenceAndFiniteDifferences(int NH, int NKV, int HDV, int iters)
    {
        int B = 2, T = 5, HD = 4;
        var r = new Random(24);
        var q = Rand(r, B * T * NH * HD, 2);
        var k = Rand(r, B * T * NKV * HD, 2);
        var v = Rand(r, B * T * NKV * HDV);
        var dz = Rand(r, B * T * NH * HDV);
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        SinkhornAttention.Forward(q, k, v, att, z, B, T, NH, NKV, HD, HDV, iters);
        static double[] D(float[] a) => a.Select(x => (double)x).ToArray();
        var attRef = new double[att.Length];
        SinkhornRef(D(q), D(k), D(v), D(dz), B, T, NH, NKV, HD, HDV, iters, attRef);
        for (int i = 0; i < att.Length; i++) Assert.Equal(attRef[i], att[i], 1e-6);
        if (iters == 0)
        {
            var soft = new float[att.Length];
            Attention.Forward(q, k, v, soft, new float[z.Length], B, T, NH, NKV, HD, HDV);
            for (int i = 0; i < att.Length; i++) Assert.Equal(soft[i], att[i], 1e-6);
        }
        var dq = Rand(r, q.Length); // all overwritten
        var dk = Rand(r, k.Length);
        var dv = Rand(r, v.Length);
        SinkhornAttention.Backward(dz, q, k, v, att, dq, dk, dv, B, T, NH, NKV, HD, HDV, iters);
        Check("sinkhorn", [q, k, v], p => SinkhornRef(p[0], p[1], p[2], D(dz), B, T, NH, NKV, HD, HDV, iters, null), [dq, dk, dv]);
    }

    [Fact]
    public void SymmetricScoresAreSymmetricAndCollapsedScoresAreTheBilinearForm()
    {
        var c = new TrainableConfig { VocabSize = 9, DModel = 8, NLayers = 1, NHeads = 2, SeqLen = 6, AttentionOnly = true, UseNorm = false, UseBias = false, UsePositions = false, InitStd = 0.5f };
        int[] tokens = [1, 5, 2, 7, 3, 8];
        // symmetric_qk: the pre-softmax scores s[t, j] = q_t·q_j / √HD; recover them from the causal pattern: log p[t, j] − log p[t, 0]
        // = s[t, j] − s[t, 0], and check against the direct product of the embedded rows with W_Q
        var sym = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.SymmetricQk }, seed: 3);
        Assert.Equal(2 * 8 * 8, sym.Info("blocks.0.attn.w_qkv").Length); // q and v rows only
        var col = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.CollapsedQk }, seed: 3);
        Assert.Equal([2 * 8 + 8, 8], col.Info("blocks.0.attn.w_qkv").Shape); // W_QK (NH·C rows) and v rows
        foreach (var (model, hk) in new[] { (sym, 4), (col, 8) })
        {
            model.Forward(tokens, default, 1, tokens.Length);
            var pattern = model.AttentionPattern(0).ToArray();
            var wte = model.Param("wte").ToArray();
            var w = model.Param("blocks.0.attn.w_qkv").ToArray();
            for (int h = 0; h < 2; h++)
            {
                double[] Q(int tok)
                {
                    var o = new double[hk];
                    for (int i = 0; i < hk; i++)
                        for (int d = 0; d < 8; d++) o[i] += (double)w[(h * hk + i) * 8 + d] * wte[tok * 8 + d];
                    return o;
                }
                double[] Key(int tok) => hk == 4 ? Q(tok) : Enumerable.Range(0, 8).Select(d => (double)wte[tok * 8 + d]).ToArray();
                for (int t = 1; t < tokens.Length; t++)
                    for (int j = 1; j <= t; j++)
                    {
                        double s(int jj) => Q(tokens[t]).Zip(Key(tokens[jj])).Sum(p => p.First * p.Second) / Math.Sqrt(hk);
                        double expected = s(j) - s(0);
                        double got = Math.Log(pattern[(h * 6 + t) * 6 + j]) - Math.Log(pattern[(h * 6 + t) * 6]);
                        Assert.Equal(expected, got, 1e-4);
                    }
            }
        }
    }

    // softmax attention written out in double, with gaussian's distance bias and affine_scaled's α·p + β/(t+1) when given:
    // bias(h, t, j) added to the scores; affine(n, h) = (α, β) for the row n = b·T + t
    private static double ScoredRef(double[] q, double[] k, double[] v, double[] dz, int B, int T, int NH, int NKV, int HD, int HDV,
        Func<int, int, int, double>? bias, Func<int, int, (double Alpha, double Beta)>? affine, double[]? z)
    {
        double s = 0;
        int g = NH / NKV;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++)
                {
                    var w = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                    {
                        for (int i = 0; i < HD; i++) w[j] += q[((b * T + t) * NH + h) * HD + i] * k[((b * T + j) * NKV + h / g) * HD + i];
                        w[j] = w[j] / Math.Sqrt(HD) + (bias?.Invoke(h, t, j) ?? 0);
                    }
                    double m = w.Max(), sum = w.Sum(x => Math.Exp(x - m));
                    var (alpha, beta) = affine?.Invoke(b * T + t, h) ?? (1, 0);
                    for (int j = 0; j <= t; j++) w[j] = alpha * Math.Exp(w[j] - m) / sum + beta / (t + 1);
                    for (int i = 0; i < HDV; i++)
                    {
                        double zi = 0;
                        for (int j = 0; j <= t; j++) zi += w[j] * v[((b * T + j) * NKV + h / g) * HDV + i];
                        if (z is not null) z[((b * T + t) * NH + h) * HDV + i] = zi;
                        s += zi * dz[((b * T + t) * NH + h) * HDV + i];
                    }
                }
        return s;
    }

    private static double[] D(float[] a) => a.Select(x => (double)x).ToArray();

    [Theory]
    [InlineData(2, 2, 4)]
    [InlineData(4, 2, 3)]  // grouped-query, value head size ≠ query head size
    public void AffineScaledAttentionMatchesTheReferenceAndFiniteDifferences(int NH, int NKV, int HDV)
    {
        int B = 2, T = 5, HD = 4, W = AffineScaledAttention.ProjectionWidth(NH);
        var r = new Random(25);
        var q = Rand(r, B * T * NH * HD, 2);
        var k = Rand(r, B * T * NKV * HD, 2);
        var v = Rand(r, B * T * NKV * HDV);
        var logits = Rand(r, B * T * W, 2);
        var dz = Rand(r, B * T * NH * HDV);
        var att = new float[B * NH * T * T];
        var zRaw = new float[B * T * NH * HDV];
        var z = new float[zRaw.Length];
        Attention.Forward(q, k, v, att, zRaw, B, T, NH, NKV, HD, HDV);
        AffineScaledAttention.Forward(logits, zRaw, v, z, B, T, NH, NKV, HDV);
        // α = 2σ(a[h]), β = tanh(a[NH + h])
        Func<int, int, (double, double)> Affine(double[] l) => (n, h) => (2 / (1 + Math.Exp(-l[n * W + h])), Math.Tanh(l[n * W + NH + h]));
        var zRef = new double[z.Length];
        ScoredRef(D(q), D(k), D(v), D(dz), B, T, NH, NKV, HD, HDV, null, Affine(D(logits)), zRef);
        for (int i = 0; i < z.Length; i++) Assert.Equal(zRef[i], z[i], 1e-5);
        // a zero projection is plain softmax attention
        AffineScaledAttention.Forward(new float[logits.Length], zRaw, v, z, B, T, NH, NKV, HDV);
        Assert.Equal(zRaw, z);

        var dzRaw = Rand(r, z.Length); // all overwritten
        var dLogits = Rand(r, logits.Length);
        var dq = Rand(r, q.Length);
        var dk = Rand(r, k.Length);
        var dv = Rand(r, v.Length);
        AffineScaledAttention.Backward(dz, logits, zRaw, v, dzRaw, dLogits, B, T, NH, NKV, HDV);
        Attention.Backward(dzRaw, q, k, v, att, dq, dk, dv, B, T, NH, NKV, HD, HDV);
        AffineScaledAttention.BackwardValues(dz, logits, dv, B, T, NH, NKV, HDV);
        Check("affine_scaled", [q, k, v, logits], p => ScoredRef(p[0], p[1], p[2], D(dz), B, T, NH, NKV, HD, HDV, null, Affine(p[3]), null),
            [dq, dk, dv, dLogits]);
    }

    [Theory]
    [InlineData(2, 2, 4)]
    [InlineData(4, 2, 3)]
    public void GaussianAttentionMatchesTheReferenceAndFiniteDifferences(int NH, int NKV, int HDV)
    {
        int B = 2, T = 5, HD = 4, context = 8;
        var r = new Random(26);
        var q = Rand(r, B * T * NH * HD, 2);
        var k = Rand(r, B * T * NKV * HD, 2);
        var v = Rand(r, B * T * NKV * HDV);
        var mu = Rand(r, NH);
        var logVar = Rand(r, NH, 2);
        var dz = Rand(r, B * T * NH * HDV);
        var bias = new float[NH * T * T];
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        GaussianAttention.Bias(mu, logVar, bias, NH, T, context);
        Attention.Forward(q, k, v, att, z, B, T, NH, NKV, HD, HDV, bias);
        // the log-density of N(μ_h, e^{s_h}) at the distance (t − j)/context, without its constant
        Func<int, int, int, double> Gauss(double[] m, double[] lv) => (h, t, j) => -Math.Pow((double)(t - j) / context - m[h], 2) / (2 * Math.Exp(lv[h]));
        var zRef = new double[z.Length];
        ScoredRef(D(q), D(k), D(v), D(dz), B, T, NH, NKV, HD, HDV, Gauss(D(mu), D(logVar)), null, zRef);
        for (int i = 0; i < z.Length; i++) Assert.Equal(zRef[i], z[i], 1e-5);

        var dq = Rand(r, q.Length); // all overwritten
        var dk = Rand(r, k.Length);
        var dv = Rand(r, v.Length);
        var dScores = new float[att.Length];
        var dMu = new float[NH];
        var dLogVar = new float[NH];
        Attention.Backward(dz, q, k, v, att, dq, dk, dv, B, T, NH, NKV, HD, HDV, dScores);
        GaussianAttention.Backward(dScores, mu, logVar, dMu, dLogVar, B, NH, T, context);
        Check("gaussian", [q, k, v, mu, logVar], p => ScoredRef(p[0], p[1], p[2], D(dz), B, T, NH, NKV, HD, HDV, Gauss(p[3], p[4]), null, null),
            [dq, dk, dv, dMu, dLogVar]);
    }

    [Fact]
    public void LowRankProjectionMatchesTheReferenceAndFiniteDifferences()
    {
        int N = 4, C = 6, R = 2, QKV = 9;
        var r = new Random(27);
        var x = Rand(r, N * C);
        var wDown = Rand(r, R * C);
        var wUp = Rand(r, QKV * R);
        var bias = Rand(r, QKV);
        var dqkv = Rand(r, N * QKV);
        var u = new float[N * R];
        var qkv = new float[N * QKV];
        LowRankAttention.Forward(x, wDown, wUp, bias, u, qkv, N, C, R, QKV);
        // qkv = (x·W_downᵀ)·W_upᵀ + b
        double Ref(double[][] p, double[]? y)
        {
            double s = 0;
            for (int n = 0; n < N; n++)
                for (int o = 0; o < QKV; o++)
                {
                    double v = p[3][o];
                    for (int k = 0; k < R; k++)
                    {
                        double un = 0;
                        for (int c = 0; c < C; c++) un += p[0][n * C + c] * p[1][k * C + c];
                        v += p[2][o * R + k] * un;
                    }
                    if (y is not null) y[n * QKV + o] = v;
                    s += v * dqkv[n * QKV + o];
                }
            return s;
        }
        var yRef = new double[qkv.Length];
        Ref([D(x), D(wDown), D(wUp), D(bias)], yRef);
        for (int i = 0; i < qkv.Length; i++) Assert.Equal(yRef[i], qkv[i], 1e-5);
        // the product is the same projection (what export writes)
        var full = LowRankAttention.Product(wUp, wDown, QKV, R, C);
        var direct = new float[qkv.Length];
        Linear.Forward(x, full, bias, direct, N, C, QKV);
        for (int i = 0; i < qkv.Length; i++) Assert.Equal(qkv[i], direct[i], 1e-5);

        var (st, sp) = Linear.ScratchSize(N, C, Math.Max(R, QKV));
        var (st2, sp2) = Linear.ScratchSize(N, R, QKV);
        var dx = Rand(r, x.Length); // overwritten
        var dwDown = new float[wDown.Length];
        var dwUp = new float[wUp.Length];
        var db = new float[bias.Length];
        LowRankAttention.Backward(dqkv, x, u, wDown, wUp, new float[N * R], dx, dwDown, dwUp, db, new float[Math.Max(st, st2)],
            new float[Math.Max(sp, sp2)], N, C, R, QKV);
        Check("low_rank", [x, wDown, wUp, bias], p => Ref(p, null), [dx, dwDown, dwUp, db]);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(1)]  // one tap: a per-channel scale, no relative position
    [InlineData(5)]  // the kernel as long as the sequence
    public void RelativeConvMatchesTheReferenceAndFiniteDifferences(int KW)
    {
        int B = 2, T = 5, CH = 3;
        var r = new Random(28);
        var x = Rand(r, B * T * CH);
        var w = Rand(r, CH * KW);
        var dy = Rand(r, x.Length);
        var y = new float[x.Length];
        RelativeConvAttention.Forward(x, w, y, B, T, CH, KW);
        // y[b, t, c] = Σ_{i ≤ min(KW − 1, t)} w[c, i]·x[b, t − i, c]
        double Ref(double[][] p, double[]? yr)
        {
            double s = 0;
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++)
                    for (int c = 0; c < CH; c++)
                    {
                        double v = 0;
                        for (int i = 0; i < KW; i++)
                            if (t - i >= 0) v += p[1][c * KW + i] * p[0][(b * T + t - i) * CH + c];
                        if (yr is not null) yr[(b * T + t) * CH + c] = v;
                        s += v * dy[(b * T + t) * CH + c];
                    }
            return s;
        }
        var yRef = new double[y.Length];
        Ref([D(x), D(w)], yRef);
        for (int i = 0; i < y.Length; i++) Assert.Equal(yRef[i], y[i], 1e-5);
        var dx = Rand(r, x.Length); // overwritten
        var dw = new float[w.Length];
        RelativeConvAttention.Backward(dy, x, w, dx, dw, B, T, CH, KW);
        Check("relative_conv", [x, w], p => Ref(p, null), [dx, dw]);
    }

    [Fact]
    public void NewVariantsStartAtSoftmaxAttention()
    {
        // the init of affine_scaled (W_a ≈ 0 → α ≈ 1, β ≈ 0) and relative_conv (identity kernels) is the softmax model;
        // gaussian starts with a bias in [−½, 0]
        var c = new TrainableConfig { VocabSize = 9, DModel = 8, NLayers = 1, NHeads = 2, SeqLen = 6 };
        var conv = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.RelativeConv }, seed: 4);
        Assert.Equal([1f, 0f, 0f, 1f, 0f, 0f], conv.Param("blocks.0.attn.conv_qkv")[..6].ToArray());
        Assert.False(conv.Info("blocks.0.attn.conv_qkv").Decay);
        var gauss = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.Gaussian }, seed: 4);
        Assert.All(gauss.Param("blocks.0.attn.gauss_mu").ToArray(), m => Assert.Equal(0f, m));
        var lowRank = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.LowRank }, seed: 4);
        Assert.Equal([2, 8], lowRank.Info("blocks.0.attn.w_down").Shape); // default rank d_model / 4
        Assert.Equal([3 * 8, 2], lowRank.Info("blocks.0.attn.w_qkv").Shape);
        var affine = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.AffineScaled, InitStd = 0.5f }, seed: 4);
        var soft = new TrainableTransformer(c with { InitStd = 0.5f }, seed: 4);
        foreach (var p in soft.Parameters) soft.Param(p.Name).CopyTo(affine.Param(p.Name));
        affine.Param("blocks.0.attn.w_affine").Clear(); // α = 2σ(0) = 1, β = tanh(0) = 0
        int[] tokens = [1, 5, 2, 7, 3, 8];
        affine.Forward(tokens, default, 1, 6);
        soft.Forward(tokens, default, 1, 6);
        for (int i = 0; i < soft.Logits.Length; i++) Assert.Equal(soft.Logits[i], affine.Logits[i], 1e-6f);
    }

    [Theory]
    [InlineData("flash", "unknown attention variant 'flash' (known: softmax, symmetric_qk")]
    [InlineData("moh-active", "moh active heads (--moh-active) 4 must be between 1 and the 3 routed heads")]
    [InlineData("moh-shared", "moh shared heads (--moh-shared) 4 must be below the head count 4")]
    [InlineData("symmetric-gqa", "symmetric_qk ties keys to queries, so it needs key/value heads = heads")]
    [InlineData("low-rank", "low_rank rank (--low-rank) 9 must be between 1 and d_model 8")]
    [InlineData("conv-kernel", "relative_conv kernel (--conv-kernel) 7 must be between 1 and the sequence length 6")]
    public void BadVariantOptionsAreRefusedByName(string what, string message)
    {
        var c = new TrainableConfig { VocabSize = 9, DModel = 8, NLayers = 1, NHeads = 4, SeqLen = 6 };
        c = what switch
        {
            "flash" => c with { AttentionVariant = "flash" },
            "moh-active" => c with { AttentionVariant = AttentionVariants.Moh, MohShared = 1, MohActive = 4 },
            "moh-shared" => c with { AttentionVariant = AttentionVariants.Moh, MohShared = 4 },
            "low-rank" => c with { AttentionVariant = AttentionVariants.LowRank, LowRank = 9 },
            "conv-kernel" => c with { AttentionVariant = AttentionVariants.RelativeConv, ConvKernel = 7 },
            _ => c with { AttentionVariant = AttentionVariants.SymmetricQk, NKvHeads = 2 },
        };
        var e = Assert.Throws<InvalidInputException>(c.Validate);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void ConfigWithoutAVariantReadsAsSoftmax()
    {
        var c = TrainableConfig.FromJson("""{"vocab_size": 9, "d_model": 8, "n_layers": 1, "n_heads": 2, "seq_len": 4}""", "test");
        Assert.Equal(AttentionVariants.Softmax, c.AttentionVariant);
        var moh = new TrainableConfig { VocabSize = 9, DModel = 8, NLayers = 1, NHeads = 4, SeqLen = 6, AttentionVariant = AttentionVariants.Moh, MohActive = 2 };
        Assert.Equal(moh, TrainableConfig.FromJson(moh.ToJson(), "round trip"));
    }
}
