using Headwise.Loading;

namespace Headwise.Vision;

/// <summary>An image classifier's logits read as labels: softmax and the top K.</summary>
public static class Classification
{
    /// <summary>softmax(logits) in double (probabilities that sum to 1 to the printed precision).</summary>
    public static double[] Probabilities(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits)
        {
            max = Math.Max(max, l);
        }
        var p = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = Math.Exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.Length; i++)
        {
            p[i] /= sum;
        }
        return p;
    }

    /// <summary>The <paramref name="k"/> most probable labels (ties by id), with their probabilities.</summary>
    public static (int Id, string Label, double Probability)[] Top(ReadOnlySpan<float> logits, VisionConfig vision, int k)
    {
        var p = Probabilities(logits);
        return [.. Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ThenBy(i => i).Take(Math.Min(k, p.Length))
            .Select(i => (i, vision.Labels[i], p[i]))];
    }
}
