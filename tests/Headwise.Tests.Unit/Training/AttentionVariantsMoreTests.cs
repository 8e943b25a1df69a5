using Headwise.Training;
using Headwise.Training.Layers;
using static Headwise.Tests.Unit.Training.LayerGradientTests;

namespace Headwise.Tests.Unit.Training;

// random_features, dynamic_mask and tensor (docs/variants.md): each layer against a direct (slow, obvious) double-precision
// implementation — forward values, and the backward against central finite differences of it (LayerGradientTests.Check).
public class AttentionVariantsMoreTests
{
    private static double[] D(float[] a) => a.Select(x => (double)x).ToArray();

    // δ[j, h] = exp(a_h softplus(u[j, h])); query t keeps the top-W keys j ≤ t by δ (ties to the lower index); on those,
    // s = q·k/√HD + δ, p = softmax, z = Σ p v
    private static double DynamicMaskRef(double[] q, double[] k, double[] v, double[] u, double[] a, double[] dz, int B, int T, int NH, int NKV,
        int HD, int HDV, int W, double[]? att)
    {
        double s = 0;
        int g = NH / NKV;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++)
                {
                    double Delta(int j) => Math.Exp(a[h] * Math.Log(1 + Math.Exp(u[(b * T + j) * NH + h])));
                    var kept = Enumerable.Range(0, t + 1).OrderByDescending(Delta).ThenBy(j => j).Take(W).ToArray();
                    var sc = kept.Select(j => Enumerable.Range(0, HD).Sum(i => q[((b * T + t) * NH + h) * HD + i] * k[((b * T + j) * NKV + h / g) * HD + i]) / Math.Sqrt(HD) + Delta(j)).ToArray();
                    double max = sc.Max(), sum = sc.Sum(x => Math.Exp(x - max));
                    for (int r = 0; r < kept.Length; r++)
                    {
                        double p = Math.Exp(sc[r] - max) / sum;
                        if (att is not null) att[((b * NH + h) * T + t) * T + kept[r]] = p;
                        for (int i = 0; i < HDV; i++) s += p * v[((b * T + kept[r]) * NKV + h / g) * HDV + i] * dz[((b * T + t) * NH + h) * HDV + i];
                    }
                }
        return s;
    }

    [Theory]
    [InlineData(2, 2, 4, 2)]  // keep 2 of up to 5 keys
    [InlineData(4, 2, 3, 3)]  // grouped-query, value head size ≠ query head size
    [InlineData(2, 1, 4, 5)]  // W = T: every causal key (dense, plus δ)
    public void DynamicMaskMatchesTheReferenceAndFiniteDifferences(int NH, int NKV, int HDV, int W)
    {
        int B = 2, T = 5, HD = 4;
        var r = new Random(31);
        var q = Rand(r, B * T * NH * HD, 2);
        var k = Rand(r, B * T * NKV * HD, 2);
        var v = Rand(r, B * T * NKV * HDV);
        // per (batch, head) the keys' u at least 0.1 apart, so the top-W choice cannot flip under the finite-difference step
        var u = new float[B * T * NH];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
            {
                var order = Enumerable.Range(0, T).OrderBy(_ => r.Next()).ToArray();
                for (int j = 0; j < T; j++) u[(b * T + j) * NH + h] = (float)(order[j] * 0.4 - 1 + r.NextDouble() * 0.05);
            }
        var a = Enumerable.Range(0, NH).Select(i => 0.5f + 0.3f * i).ToArray();
        var dz = Rand(r, B * T * NH * HDV);
        var delta = new float[B * T * NH];
        DynamicMaskAttention.Strengths(u, a, delta, B * T, NH);
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        DynamicMaskAttention.Forward(q, k, v, delta, att, z, B, T, NH, NKV, HD, HDV, W, new int[T]);
        var attRef = new double[att.Length];
        DynamicMaskRef(D(q), D(k), D(v), D(u), D(a), D(dz), B, T, NH, NKV, HD, HDV, W, attRef);
        for (int i = 0; i < att.Length; i++) Assert.Equal(attRef[i], att[i], 1e-6);
        for (int row = 0; row < B * NH * T; row++)
        {
            int t = row % T;
            Assert.Equal(Math.Min(W, t + 1), att.AsSpan(row * T, T).ToArray().Count(p => p > 0));
        }
        var dq = Rand(r, q.Length); // all overwritten
        var dk = Rand(r, k.Length);
        var dv = Rand(r, v.Length);
        var dDelta = Rand(r, delta.Length);
        var du = Rand(r, u.Length);
        var da = new float[NH];
        DynamicMaskAttention.Backward(dz, q, k, v, att, dq, dk, dv, dDelta, B, T, NH, NKV, HD, HDV);
        DynamicMaskAttention.StrengthsBackward(dDelta, u, a, delta, du, da, B * T, NH);
        Check("dynamic_mask", [q, k, v, u, a], p => DynamicMaskRef(p[0], p[1], p[2], p[3], p[4], D(dz), B, T, NH, NKV, HD, HDV, W, null), [dq, dk, dv, du, da]);
    }

    // s[t, j1, j2] = ⟨q_t, k1_j1 ⊙ k2_j2⟩/√HD over causal pairs, p = softmax over the pairs, z_t = Σ p v1_j1 ⊙ v2_j2;
    // k, v: (B, T, 2·NKV, ·) with k1 heads first
    private static double TensorRef(double[] q, double[] k, double[] v, double[] dz, int B, int T, int NH, int NKV, int HD, int HDV, double[]? att)
    {
        double s = 0;
        int g = NH / NKV;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++)
                {
                    int kv = h / g;
                    int K1(int j, int D) => ((b * T + j) * 2 * NKV + kv) * D;
                    int K2(int j, int D) => ((b * T + j) * 2 * NKV + NKV + kv) * D;
                    var sc = new double[t + 1, t + 1];
                    double max = double.NegativeInfinity;
                    for (int j1 = 0; j1 <= t; j1++)
                        for (int j2 = 0; j2 <= t; j2++)
                        {
                            for (int i = 0; i < HD; i++) sc[j1, j2] += q[((b * T + t) * NH + h) * HD + i] * k[K1(j1, HD) + i] * k[K2(j2, HD) + i];
                            sc[j1, j2] /= Math.Sqrt(HD);
                            max = Math.Max(max, sc[j1, j2]);
                        }
                    double sum = 0;
                    for (int j1 = 0; j1 <= t; j1++)
                        for (int j2 = 0; j2 <= t; j2++) sum += Math.Exp(sc[j1, j2] - max);
                    for (int j1 = 0; j1 <= t; j1++)
                        for (int j2 = 0; j2 <= t; j2++)
                        {
                            double p = Math.Exp(sc[j1, j2] - max) / sum;
                            if (att is not null)
                            {
                                att[((b * NH + h) * T + t) * T + j1] += p / 2;
                                att[((b * NH + h) * T + t) * T + j2] += p / 2;
                            }
                            for (int i = 0; i < HDV; i++) s += p * v[K1(j1, HDV) + i] * v[K2(j2, HDV) + i] * dz[((b * T + t) * NH + h) * HDV + i];
                        }
                }
        return s;
    }

    [Theory]
    [InlineData(2, 2, 4)]
    [InlineData(4, 2, 3)]  // grouped-query, value head size ≠ query head size
    public void TensorAttentionMatchesTheReferenceAndFiniteDifferences(int NH, int NKV, int HDV)
    {
        int B = 2, T = 4, HD = 4;
        var r = new Random(32);
        var q = Rand(r, B * T * NH * HD, 1.5);
        var k = Rand(r, B * T * 2 * NKV * HD, 1.5);
        var v = Rand(r, B * T * 2 * NKV * HDV);
        var dz = Rand(r, B * T * NH * HDV);
        var pairs = new float[B * NH * T * T * T];
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        TensorAttention.Forward(q, k, v, pairs, att, z, B, T, NH, NKV, HD, HDV, new float[2 * HD + HDV]);
        var attRef = new double[att.Length];
        double zdz = TensorRef(D(q), D(k), D(v), D(dz), B, T, NH, NKV, HD, HDV, attRef);
        for (int i = 0; i < att.Length; i++) Assert.Equal(attRef[i], att[i], 1e-6);
        Assert.Equal(zdz, z.Select((x, i) => (double)x * dz[i]).Sum(), 1e-4);
        for (int row = 0; row < B * NH * T; row++) Assert.Equal(1.0, att.AsSpan(row * T, T).ToArray().Sum(x => (double)x), 1e-5);
        var dq = Rand(r, q.Length); // all overwritten
        var dk = Rand(r, k.Length);
        var dv = Rand(r, v.Length);
        TensorAttention.Backward(dz, q, k, v, pairs, dq, dk, dv, B, T, NH, NKV, HD, HDV, new float[T * T], new float[2 * HD + HDV]);
        Check("tensor", [q, k, v], p => TensorRef(p[0], p[1], p[2], D(dz), B, T, NH, NKV, HD, HDV, null), [dq, dk, dv]);
    }

    [Fact]
    public void TensorRefusesALongSequence()
    {
        var c = new TrainableConfig { VocabSize = 9, DModel = 8, NLayers = 1, NHeads = 2, SeqLen = TensorAttention.MaxSeqLen + 1, AttentionVariant = AttentionVariants.Tensor };
        var e = Assert.Throws<InvalidInputException>(c.Validate);
        Assert.Contains($"sequence length {TensorAttention.MaxSeqLen + 1} is above its limit {TensorAttention.MaxSeqLen}", e.Message);
        (c with { SeqLen = TensorAttention.MaxSeqLen }).Validate();
    }

    [Theory]
    [InlineData(TrainableArchitecture.Gpt2)]
    [InlineData(TrainableArchitecture.Llama)]
    public void RandomFeaturesAreFrozenAndTheForwardIsSoftmaxWithThem(TrainableArchitecture arch)
    {
        var c = new TrainableConfig
        {
            Architecture = arch,
            VocabSize = 13,
            DModel = 8,
            NLayers = 2,
            NHeads = 2,
            SeqLen = 8,
            DMlp = 12,
            InitStd = 0.2f,
            AttentionVariant = AttentionVariants.RandomFeatures,
            FeatureSeed = 17
        };
        var model = new TrainableTransformer(c, seed: 4);
        int HD = 4, C = 8;
        // no q, k rows among the parameters: only the v rows are trained
        Assert.Equal([2 * HD, C], model.Info("blocks.0.attn.w_qkv").Shape);
        var drawn = RandomFeaturesAttention.Draw(17, 2, 2, 2, HD, C);
        // N(0, 1/C): the sample std of 2·64 + … entries is near 1/√8
        double std = Math.Sqrt(drawn.SelectMany(w => w).Average(x => (double)x * x));
        Assert.InRange(std, 0.8 / Math.Sqrt(C), 1.2 / Math.Sqrt(C));
        Assert.Equal(drawn[1], model.FrozenQk(1).ToArray());
        // a few AdamW steps (weight decay on): the trained weights move, the frozen ones do not
        var before = (float[])model.Params.Clone();
        int[] data = Enumerable.Range(0, 400).Select(i => (i * 7 + i / 13) % 13).ToArray();
        new Trainer(model, new TrainerOptions { Steps = 4, BatchSize = 2, LearningRate = 0.05f, WeightDecay = 0.5f, HeldOutFraction = 0 }, data).Train();
        Assert.NotEqual(before, model.Params);
        for (int l = 0; l < 2; l++) Assert.Equal(drawn[l], model.FrozenQk(l).ToArray());
        // the forward is a softmax model whose w_qkv holds the frozen q | k rows above the trained v rows
        var soft = new TrainableTransformer(c with { AttentionVariant = AttentionVariants.Softmax }, seed: 4);
        foreach (var p in model.Parameters)
        {
            var mine = model.Param(p.Name);
            if (p.Name.EndsWith("attn.w_qkv", StringComparison.Ordinal))
            {
                int l = p.Name[7] - '0';
                drawn[l].CopyTo(soft.Param(p.Name));
                mine.CopyTo(soft.Param(p.Name)[drawn[l].Length..]);
            }
            else if (p.Name.EndsWith("attn.b_qkv", StringComparison.Ordinal))
            {
                soft.Param(p.Name).Clear();
                mine.CopyTo(soft.Param(p.Name)[(4 * HD)..]);
            }
            else mine.CopyTo(soft.Param(p.Name));
        }
        int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6];
        model.Forward(tokens, default, 1, 8);
        soft.Forward(tokens, default, 1, 8);
        var a = model.Logits.ToArray();
        var b = soft.Logits.ToArray();
        for (int i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 1e-5f);
        // the same seed in the config gives the same features in a model built again (a checkpoint stores the seed)
        Assert.Equal(drawn[0], new TrainableTransformer(TrainableConfig.FromJson(c.ToJson(), "round trip"), seed: 99).FrozenQk(0).ToArray());
    }
}
