using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Tests.Models.Analysis;

/// <summary>QK/OV circuits on the tiny golden models: the factored computations against explicit d_model × d_model
/// (and vocab × vocab) matrices, and the per-head weights against the activations the engine computes.</summary>
public class CircuitsTests
{
    public static TheoryData<string> Families => new() { "gpt2_tied", "llama_gqa", "neox_parallel" };

    private static double RelativeError(double want, double got) => Math.Abs(want - got) / Math.Max(1e-12, Math.Abs(want));

    [Theory]
    [MemberData(nameof(Families))]
    public void FactoredSingularValuesEqualTheDenseSvd(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        foreach (var head in HeadWeights.Read(m.Model).SelectMany(x => x))
        {
            foreach (var f in new[] { head.QK, head.OV })
            {
                var dense = f.Dense();
                var want = dense.Svd(computeVectors: false).S.ToArray();
                var got = f.SingularValues();
                Assert.Equal(m.Config.DHead, got.Length);
                for (int i = 0; i < got.Length; i++)
                {
                    Assert.True(Math.Abs(want[i] - got[i]) <= 1e-9 * want[0], $"{golden} {head.Head} σ{i}: {want[i]} vs {got[i]}");
                }
                Assert.True(RelativeError(dense.FrobeniusNorm(), f.FrobeniusNorm()) < 1e-9);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void CompositionScoresEqualTheExplicitFormula(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var heads = HeadWeights.Read(m.Model).SelectMany(x => x).ToArray();
        var r = CircuitAnalysis.Compute(m.Model, new CircuitOptions(CopyingScores: false));
        static double Score(Matrix<double> a, Matrix<double> b) => (a * b).FrobeniusNorm() / (a.FrobeniusNorm() * b.FrobeniusNorm());
        int checkedPairs = 0;
        foreach (var early in heads)
        {
            foreach (var late in heads)
            {
                if (early.Head.Layer >= late.Head.Layer)
                {
                    Assert.True(double.IsNaN(r.K![early.Head, late.Head]));
                    continue;
                }
                // W_OV = W_V W_O, W_QK = W_Q W_Kᵀ, formed explicitly (d_model × d_model)
                var ov1 = early.WV * early.WO;
                var qk2 = late.WQ * late.WK.Transpose();
                var ov2 = late.WV * late.WO;
                // the analysis takes the d_model-long inner product in float: 1e-5 relative
                Assert.True(RelativeError(Score(ov1, qk2), r.Q![early.Head, late.Head]) < 1e-5);
                Assert.True(RelativeError(Score(ov1, qk2.Transpose()), r.K![early.Head, late.Head]) < 1e-5);
                Assert.True(RelativeError(Score(ov1, ov2), r.V![early.Head, late.Head]) < 1e-5);
                checkedPairs++;
            }
        }
        Assert.Equal(m.Config.NHeads * m.Config.NHeads * m.Config.NLayers * (m.Config.NLayers - 1) / 2, checkedPairs);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void CopyingScoreEqualsTheEigenvaluesOfTheFullOvCircuit(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var c = m.Config;
        var heads = HeadWeights.Read(m.Model).SelectMany(x => x).ToArray();
        var r = CircuitAnalysis.Compute(m.Model, new CircuitOptions(SingularValues: false, Composition: false));
        // W_E (vocab × d_model) and W_U (d_model × vocab) built here from the tensors: W_U = centre(diag(γ_final) · unembedᵀ)
        var (embedName, headName, normName) = c.Family switch
        {
            ArchitectureFamily.Gpt2 => ("transformer.wte.weight", "lm_head.weight", "transformer.ln_f.weight"),
            ArchitectureFamily.Llama => ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"),
            _ => ("gpt_neox.embed_in.weight", "embed_out.weight", "gpt_neox.final_layer_norm.weight"),
        };
        var w = m.Model.Weights;
        var e = w.GetAnyShape(embedName).ToArray();
        var u = (c.TiedEmbeddings ? w.GetAnyShape(embedName) : w.GetAnyShape(headName)).ToArray();
        var gamma = w.GetAnyShape(normName).ToArray();
        int V = c.VocabSize, C = c.DModel;
        var WE = Matrix<double>.Build.Dense(V, C, (v, i) => e[v * C + i]);
        var WU = Matrix<double>.Build.Dense(C, V, (i, v) => gamma[i] * u[v * C + i]);
        if (c.Family != ArchitectureFamily.Llama)
        {
            var centre = Matrix<double>.Build.DenseIdentity(C) - Matrix<double>.Build.Dense(C, C, 1.0 / C);
            WU = centre * WU;
        }
        for (int i = 0; i < heads.Length; i++)
        {
            var full = WE * heads[i].WV * heads[i].WO * WU; // vocab × vocab
            var eig = full.Evd().EigenValues;
            double want = eig.Sum(x => x.Real) / eig.Sum(x => x.Magnitude);
            Assert.Equal(heads[i].Head, r.Heads[i].Head);
            Assert.True(Math.Abs(want - r.Heads[i].CopyingScore) < 1e-4, $"{golden} {heads[i].Head}: {want} vs {r.Heads[i].CopyingScore}");
        }
    }

    /// <summary>The per-head weights reproduce the engine's own q, k, v and per-head outputs: for two positions p1, p2,
    /// q[p1] − q[p2] = (x[p1]/s[p1] − x[p2]/s[p2])·W_Q (biases cancel; the folded, centred W_Q absorbs γ and the mean),
    /// and hook_result[p, h] = z[p, h]·W_O (+ the output bias split evenly, which cancels in the same difference).</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void HeadWeightsReproduceTheActivations(string golden)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        var c = m.Config;
        int[] ids = [3, 17, 5, 40, 11];
        var (_, cache) = m.Model.RunWithCache(ModelInput.Single(ids), n => n.EndsWith("hook_resid_pre") || n.EndsWith("ln1.hook_scale")
            || n.EndsWith("hook_q") || n.EndsWith("hook_k") || n.EndsWith("hook_v") || n.EndsWith("hook_z") || n.EndsWith("hook_result"));
        var weights = HeadWeights.Read(m.Model);
        int C = c.DModel, D = c.DHead, H = c.NHeads, KV = c.NKvHeads;
        const int p1 = 4, p2 = 1;
        for (int l = 0; l < c.NLayers; l++)
        {
            var x = cache[$"blocks.{l}.hook_resid_pre"].Data;
            var s = cache[$"blocks.{l}.ln1.hook_scale"].Data;
            var dx = Vector<double>.Build.Dense(C, i => x[p1 * C + i] / s[p1] - x[p2 * C + i] / s[p2]);
            for (int h = 0; h < H; h++)
            {
                var hw = weights[l][h];
                int kv = h / c.KvGroupSize;
                void Check(string hook, int heads, int index, Matrix<double> W)
                {
                    var a = cache[$"blocks.{l}.attn.{hook}"].Data;
                    var want = dx * W;
                    for (int d = 0; d < D; d++)
                    {
                        double got = a[(p1 * heads + index) * D + d] - a[(p2 * heads + index) * D + d];
                        Assert.True(Math.Abs(want[d] - got) < 1e-3, $"{golden} {l}.{h} {hook}[{d}]: {want[d]} vs {got}");
                    }
                }
                Check("hook_q", H, h, hw.WQ);
                Check("hook_k", KV, kv, hw.WK);
                Check("hook_v", KV, kv, hw.WV);
                var z = cache[$"blocks.{l}.attn.hook_z"].Data;
                var result = cache[$"blocks.{l}.attn.hook_result"].Data;
                var dz = Vector<double>.Build.Dense(D, d => z[(p1 * H + h) * D + d] - z[(p2 * H + h) * D + d]);
                var wantOut = dz * hw.WO;
                for (int i = 0; i < C; i++)
                {
                    double got = result[(p1 * H + h) * C + i] - result[(p2 * H + h) * C + i];
                    Assert.True(Math.Abs(wantOut[i] - got) < 1e-3, $"{golden} {l}.{h} W_O[{i}]: {wantOut[i]} vs {got}");
                }
            }
        }
    }
}
