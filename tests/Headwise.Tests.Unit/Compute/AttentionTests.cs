using Headwise.Compute.Reference;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Tolerances. Scores: the dot product sums in a different (vector) order; q, k ∈ [−1, 1] so |Δ| ≤ 1e-6·(HD + 1)·scale.
// Softmax: float vector exp (≤ 1 ulp) and a float sum instead of double: rel 4e-6 + abs 1e-9.
// Outputs z: v ∈ [−1, 1] and the pattern sums to 1, so the score and softmax errors give |Δ| ≤ 2e-5 absolute.
[Collection(KernelThreadsCollection.Name)]
public sealed class AttentionTests
{
    private static (float[] Q, float[] Kx, float[] V, byte[] Mask) Inputs(Random rng, int T, int S, int NH, int NKV, int HD, bool masked)
    {
        float[] q = RandomArray(rng, T * NH * HD), k = RandomArray(rng, S * NKV * HD), v = RandomArray(rng, S * NKV * HD);
        byte[] mask = [];
        if (masked)
        {
            mask = new byte[S];
            for (int j = 0; j < S; j++) mask[j] = (byte)(rng.Next(4) == 0 ? 0 : 1);
        }
        return (q, k, v, mask);
    }

    public static TheoryData<int> Threads => [1, 2];

    [Theory]
    [MemberData(nameof(Threads))]
    public void FusedAttentionMatchesTwin(int threads)
    {
        var rng = new Random(31 + threads);
        using var scope = new ThreadScope(threads);
        // (NH, NKV): MHA, GQA 2:1 and 4:1, MQA
        (int NH, int NKV)[] heads = [(2, 2), (4, 2), (4, 1), (8, 2)];
        int[] hds = [1, 7, 16, 33, 64];
        int caseNo = 0;
        foreach (int T in new[] { 1, 2, 5, 17 })
        {
            foreach (int pastLen in new[] { 0, 3, 40 })
            {
                int S = pastLen + T + (caseNo % 3 == 0 ? 2 : 0); // sometimes keys beyond the causal edge
                foreach (int window in new[] { 0, 1, 4, 100 })
                {
                    foreach (bool masked in new[] { false, true })
                    {
                        var (NH, NKV) = heads[caseNo % heads.Length];
                        int HD = hds[caseNo % hds.Length];
                        caseNo++;
                        float scale = 1f / MathF.Sqrt(HD);
                        var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, masked);
                        float[] expected = new float[T * NH * HD], actual = new float[T * NH * HD];
                        actual.AsSpan().Fill(float.NaN);
                        ScalarKernels.Attention(q, k, v, expected, T, S, NH, NKV, HD, pastLen, scale, mask, window);
                        K.Attention(q, k, v, actual, T, S, NH, NKV, HD, pastLen, scale, mask, window);
                        string what = $"Attention T={T} S={S} NH={NH} NKV={NKV} HD={HD} past={pastLen} window={window} masked={masked}";
                        AssertClose(expected, actual, 0, 2e-5, what);

                        // side outputs for observers: the same scores and pattern the three-pass twins produce
                        float[] es = new float[NH * T * S], ep = new float[NH * T * S];
                        ScalarKernels.AttentionScores(q, k, es, T, S, NH, NKV, HD, pastLen, scale, mask, window);
                        es.CopyTo(ep, 0);
                        ScalarKernels.MaskedSoftmax(ep, NH * T, S);
                        float[] @as = new float[NH * T * S], ap = new float[NH * T * S], az = new float[T * NH * HD];
                        @as.AsSpan().Fill(float.NaN);
                        ap.AsSpan().Fill(float.NaN);
                        K.Attention(q, k, v, az, T, S, NH, NKV, HD, pastLen, scale, mask, window, @as, ap);
                        Assert.Equal(actual, az);
                        AssertClose(es, @as, 0, 1e-6 * (HD + 1) * scale, what + " scoresOut");
                        AssertClose(ep, ap, 4e-6, 1e-9 + 1e-5, what + " patternOut");
                        // and bit for bit what the three-pass path (MaskedSoftmax of the scores) gives observers' writers
                        var threePass = @as.ToArray();
                        K.MaskedSoftmax(threePass, NH * T, S);
                        Assert.Equal(threePass, ap);
                    }
                }
            }
        }
    }

    [Fact]
    public void FullyMaskedRowsAreZero()
    {
        var rng = new Random(5);
        const int T = 3, S = 3, NH = 2, NKV = 1, HD = 8;
        var (q, k, v, _) = Inputs(rng, T, S, NH, NKV, HD, false);
        var z = new float[T * NH * HD];
        z.AsSpan().Fill(float.NaN);
        K.Attention(q, k, v, z, T, S, NH, NKV, HD, 0, 1f, new byte[S], 0);
        Assert.All(z, value => Assert.Equal(0f, value));
        // S = 0: nothing to attend to
        K.Attention(q, [], [], z, T, 0, NH, NKV, HD, 0, 1f, [], 0);
        Assert.All(z, value => Assert.Equal(0f, value));
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void ThreePassesMatchTwins(int threads)
    {
        var rng = new Random(41 + threads);
        using var scope = new ThreadScope(threads);
        foreach (int S in new[] { 1, 2, 15, 16, 17, 64, 130 })
        {
            foreach (int window in new[] { 0, 5 })
            {
                const int NH = 4, NKV = 2, HD = 32;
                int T = Math.Min(S, 9), pastLen = S - T;
                float scale = 1f / MathF.Sqrt(HD);
                var (q, k, v, mask) = Inputs(rng, T, S, NH, NKV, HD, S % 2 == 0);
                string what = $"S={S} window={window}";

                float[] es = new float[NH * T * S], @as = new float[NH * T * S];
                ScalarKernels.AttentionScores(q, k, es, T, S, NH, NKV, HD, pastLen, scale, mask, window);
                K.AttentionScores(q, k, @as, T, S, NH, NKV, HD, pastLen, scale, mask, window);
                AssertClose(es, @as, 0, 1e-6 * (HD + 1) * scale, "AttentionScores " + what);

                ScalarKernels.MaskedSoftmax(es, NH * T, S);
                K.MaskedSoftmax(@as, NH * T, S);
                AssertClose(es, @as, 4e-6, 1e-9 + 1e-5, "MaskedSoftmax " + what); // abs term: inherited score error

                float[] ez = new float[T * NH * HD], az = new float[T * NH * HD];
                ScalarKernels.AttentionApply(es, v, ez, T, S, NH, NKV, HD);
                K.AttentionApply(es, v, az, T, S, NH, NKV, HD);
                AssertClose(ez, az, 0, 1e-6 * (S + 1), "AttentionApply " + what); // fp32 sum order over S terms
            }
        }
    }

    [Fact]
    public void MaskedSoftmaxMatchesTwinForEveryLength()
    {
        var rng = new Random(51);
        for (int S = 0; S <= 257; S++)
        {
            const int R = 3;
            float[] x = RandomArray(rng, R * S, -20, 20);
            for (int i = 0; i < x.Length; i++) if (rng.Next(3) == 0) x[i] = float.NegativeInfinity;
            for (int j = 0; j < S; j++) x[S + j] = float.NegativeInfinity; // an all-masked row
            float[] e = (float[])x.Clone(), a = (float[])x.Clone();
            ScalarKernels.MaskedSoftmax(e, R, S);
            K.MaskedSoftmax(a, R, S);
            AssertClose(e, a, 4e-6, 1e-9, $"MaskedSoftmax S={S}");
        }
    }

    [Fact]
    public void HeadsMustDivide() =>
        Assert.Throws<ArgumentException>(() => K.Attention(new float[3], new float[2], new float[2], new float[3], 1, 1, 3, 2, 1, 0, 1f, [], 0));
}
