using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Loading;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Tests.Models.Analysis;

/// <summary>GPT-2 small's real attention weights through the circuits analysis. The token embedding is random and the MLPs are
/// zero (see <see cref="Gpt2SmallAttention"/>): every assertion here concerns the attention weights only.</summary>
public class CircuitsGpt2Tests(ITestOutputHelper output)
{
    /// <summary>
    /// Elhage et al. report that many heads of trained models have OV circuits with mostly positive eigenvalues (copying).
    /// With a random isotropic embedding, W_U·W_E ≈ c·centre(diag γ_final), so the measure here is the eigenvalue sign of each
    /// head's own W_OV in the residual stream — a property of the attention weights. Most of GPT-2's later heads copy in this
    /// sense (about a third of layers 6–11 score above 0.9; a random W_OV scores near 0).
    /// </summary>
    [Fact]
    public void ManyLaterGpt2HeadsHaveCopyingOvCircuits()
    {
        using var ckpt = Gpt2SmallAttention.Create();
        using var m = ModelLoader.Load(ckpt.Dir);
        var later = Enumerable.Range(6, 6).SelectMany(l => Enumerable.Range(0, 12).Select(h => new HeadId(l, h))).ToArray();
        var r = CircuitAnalysis.Compute(m.Model, new CircuitOptions(later, SingularValues: false, Composition: false));
        Assert.Equal(later, r.Heads.Select(h => h.Head));
        Assert.All(r.Heads, h => Assert.InRange(h.CopyingScore, -1 - 1e-9, 1 + 1e-9));
        int copying = r.Heads.Count(h => h.CopyingScore > 0.9);
        output.WriteLine($"{copying} of {later.Length} heads in layers 6–11 score > 0.9: {string.Join(" ", r.Heads.Where(h => h.CopyingScore > 0.9).Select(h => h.Head))}");
        Assert.True(copying >= 15, $"only {copying} heads with copying score > 0.9");
        // the same measure on a random W_OV of the same shape: no preference for positive eigenvalues
        var rng = new Random(3);
        var a = Matrix<double>.Build.Dense(768, 64, (_, _) => rng.NextDouble() - 0.5);
        var b = Matrix<double>.Build.Dense(64, 768, (_, _) => rng.NextDouble() - 0.5);
        var g = Matrix<double>.Build.Dense(768, 768, (i, j) => i == j ? 1 : 0); // W_U·W_E of an isotropic embedding, up to scale
        double random = CircuitAnalysis.CopyingScore(new FactoredMatrix(a, b), g);
        output.WriteLine($"random W_OV: {random:F3}");
        Assert.InRange(random, -0.5, 0.5);
    }
}
