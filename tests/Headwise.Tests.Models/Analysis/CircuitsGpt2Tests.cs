using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Loading;
using Xunit.Abstractions;

namespace Headwise.Tests.Models.Analysis;

/// <summary>GPT-2 small's real attention weights through the circuits analysis. The token embedding is random and the MLPs are
/// zero (see <see cref="Gpt2SmallAttention"/>): every assertion here concerns the attention weights only.</summary>
public class CircuitsGpt2Tests(ITestOutputHelper output)
{
    [Fact]
    public void Gpt2SmallCircuits()
    {
        using var ckpt = Gpt2SmallAttention.Create();
        if (ckpt is null)
        {
            output.WriteLine("../shared/models/gpt2-small-attention not found; skipped");
            return;
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var m = ModelLoader.Load(ckpt.Dir);
        output.WriteLine($"load {sw.ElapsedMilliseconds} ms");
        HeadWeights.Read(m.Config, m.Model.Weights);
        output.WriteLine($"read {sw.ElapsedMilliseconds} ms");
        HeadWeights.UnembedEmbed(m.Config, m.Model.Weights);
        output.WriteLine($"G {sw.ElapsedMilliseconds} ms");
        var r = CircuitAnalysis.Compute(m.Model, new CircuitOptions(SingularValues: false, Composition: false));
        output.WriteLine($"copying {sw.ElapsedMilliseconds} ms");
        foreach (var h in r.Heads)
        {
            output.WriteLine($"{h.Head} {h.CopyingScore:F3}");
        }
    }
}
