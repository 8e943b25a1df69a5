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

    [Theory]
    [InlineData("flash", "unknown attention variant 'flash' (known: softmax, symmetric_qk")]
    [InlineData("moh-active", "moh active heads (--moh-active) 4 must be between 1 and the 3 routed heads")]
    [InlineData("moh-shared", "moh shared heads (--moh-shared) 4 must be below the head count 4")]
    [InlineData("symmetric-gqa", "symmetric_qk ties keys to queries, so it needs key/value heads = heads")]
    public void BadVariantOptionsAreRefusedByName(string what, string message)
    {
        var c = new TrainableConfig { VocabSize = 9, DModel = 8, NLayers = 1, NHeads = 4, SeqLen = 6 };
        c = what switch
        {
            "flash" => c with { AttentionVariant = "flash" },
            "moh-active" => c with { AttentionVariant = AttentionVariants.Moh, MohShared = 1, MohActive = 4 },
            "moh-shared" => c with { AttentionVariant = AttentionVariants.Moh, MohShared = 4 },
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
