using Headwise.Analysis;
using Headwise.Analysis.Constructed;
using Headwise.Models;

namespace Headwise.Tests.Models.Analysis;

/// <summary>The hand-built models do what their documentation says, checked by running them.</summary>
public class ToyModelTests
{
    private static float[] Pattern(TransformerModel model, int[] tokens, HeadId head)
    {
        var (_, cache) = model.RunWithCache(ModelInput.Single(tokens), n => n == $"blocks.{head.Layer}.attn.hook_pattern");
        var p = cache[$"blocks.{head.Layer}.attn.hook_pattern"]; // [1, head, q, k]
        int T = tokens.Length;
        return p.Data.AsSpan(head.Head * T * T, T * T).ToArray();
    }

    private static int[] RandomTokens(int seed, int n)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(32, ToyModels.VocabSize)).ToArray();
    }

    [Fact]
    public void PreviousTokenHeadAttendsToThePreviousPosition()
    {
        using var model = ToyModels.PreviousTokenHead();
        var tokens = RandomTokens(1, 40);
        var p = Pattern(model, tokens, ToyModels.PreviousTokenHeadId);
        Assert.Equal(1f, p[0], 1e-5f);
        for (int q = 1; q < tokens.Length; q++)
        {
            Assert.True(p[q * tokens.Length + q - 1] > 0.99f, $"query {q}: {p[q * tokens.Length + q - 1]}");
        }
        // 0.0 is uniform, 0.2 attends to itself
        var uniform = Pattern(model, tokens, new HeadId(0, 0));
        Assert.Equal(1f / 10, uniform[9 * tokens.Length + 3], 1e-4f);
        var self = Pattern(model, tokens, new HeadId(0, 2));
        Assert.True(self[20 * tokens.Length + 20] > 0.99f);
    }

    [Fact]
    public void SinkHeadAttendsToPositionZero()
    {
        using var model = ToyModels.SinkHead();
        var tokens = RandomTokens(2, 60);
        var p = Pattern(model, tokens, ToyModels.SinkHeadId);
        for (int q = 0; q < tokens.Length; q++)
        {
            Assert.True(p[q * tokens.Length] > 0.99f, $"query {q}: {p[q * tokens.Length]}");
        }
    }

    [Fact]
    public void InductionCircuitAttendsAfterTheEarlierCopyAndPredictsTheRepeat()
    {
        using var model = ToyModels.InductionCircuit();
        // 40 distinct tokens, repeated
        var rng = new Random(3);
        var first = Enumerable.Range(32, ToyModels.VocabSize - 32).OrderBy(_ => rng.Next()).Take(40).ToArray();
        int n = first.Length, T = 2 * n;
        var tokens = first.Concat(first).ToArray();

        var prev = Pattern(model, tokens, ToyModels.InductionPreviousTokenHeadId);
        for (int q = 1; q < T; q++)
        {
            Assert.True(prev[q * T + q - 1] > 0.99f);
        }
        var ind = Pattern(model, tokens, ToyModels.InductionHeadId);
        for (int q = n; q < T; q++)
        {
            Assert.True(ind[q * T + q - n + 1] > 0.99f, $"query {q}: {ind[q * T + q - n + 1]}");
        }

        var logits = model.Forward(ModelInput.Single(tokens));
        double firstHalf = MeanLoss(logits, tokens, 0, n - 1), secondHalf = MeanLoss(logits, tokens, n, T - 1);
        Assert.True(firstHalf > 3, $"first half loss {firstHalf}");
        Assert.True(secondHalf < 0.01, $"second half loss {secondHalf}");
    }

    // mean next-token NLL over predicting positions [from, to)
    private static double MeanLoss(float[] logits, int[] tokens, int from, int to)
    {
        int V = ToyModels.VocabSize;
        double sum = 0;
        for (int i = from; i < to; i++)
        {
            var row = logits.AsSpan(i * V, V);
            float max = float.NegativeInfinity;
            foreach (var x in row)
            {
                max = MathF.Max(max, x);
            }
            double z = 0;
            foreach (var x in row)
            {
                z += Math.Exp(x - max);
            }
            sum += -(row[tokens[i + 1]] - max - Math.Log(z));
        }
        return sum / (to - from);
    }
}
