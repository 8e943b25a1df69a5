namespace Headwise.Analysis.Vision;

/// <summary>One ViT head's scores on an image (<see cref="VisionHeads.Score"/>).</summary>
/// <param name="Distance">Mean attention distance in patches: for each patch query, Σ_k a(q,k)·‖pos(q) − pos(k)‖ over the
/// patch keys, divided by the attention on patch keys; averaged over the patch queries (the ViT paper's mean attention
/// distance, Dosovitskiy et al. 2021, Fig. 7, in patches: × patch size for pixels). 0 for a head that attends to itself;
/// queries that put (almost) nothing on patches are left out, and a head where all do (it reads only the CLS) has none: NaN.</param>
/// <param name="Entropy">Entropy of each query's attention row (nats), mean over every query, the CLS included.</param>
/// <param name="Cls">Mean attention of the patch queries on the CLS (position 0): 1 for a head that reads only the CLS.</param>
/// <param name="Sink">The most attention one patch key draws: max over patch keys k of the patch queries' mean attention on k
/// (a patch that soaks up attention, as the register tokens of "Vision Transformers Need Registers" do; 1/patches for a
/// uniform head, 1 for a head that reads one patch only).</param>
public sealed record VisionHeadScore(int Layer, int Head, double Distance, double Entropy, double Cls, double Sink)
{
    public HeadId Id => new(Layer, Head);
}

/// <summary>The vision papers' per-head scores from a ViT's attention patterns on one image.</summary>
public static class VisionHeads
{
    // a query whose attention on patches is below this has no meaningful distance (its renormalisation would amplify noise)
    private const double MinPatchMass = 1e-6;

    /// <summary>Scores every head of <paramref name="patterns"/> (from <see cref="Patterns.PatternAnalysis.RunImage"/>:
    /// position 0 the CLS, 1 + r·<paramref name="columns"/> + c the patch in row r, column c), most local head first
    /// (ascending distance, heads without one last; ties by layer, head).</summary>
    public static VisionHeadScore[] Score(AttentionPatterns patterns, int rows, int columns)
    {
        int T = patterns.Length;
        if (T != 1 + rows * columns)
        {
            throw new InvalidInputException($"patterns over {T} positions are not a CLS and a {rows}×{columns} patch grid");
        }
        var scores = new List<VisionHeadScore>();
        for (int l = 0; l < patterns.Layers; l++)
        {
            for (int h = 0; h < patterns.Heads; h++)
            {
                var a = patterns.Patterns[l][h]; // (T, T) row-major, query rows
                double distance = 0, entropy = 0, cls = 0;
                int counted = 0;
                var drawn = new double[T]; // drawn[k]: attention on key k summed over the patch queries
                for (int q = 0; q < T; q++)
                {
                    var row = a.AsSpan(q * T, T);
                    foreach (float p in row)
                    {
                        entropy -= p > 0 ? p * Math.Log(p) : 0;
                    }
                    if (q == 0)
                    {
                        continue; // the CLS has no place on the grid
                    }
                    cls += row[0];
                    int qr = (q - 1) / columns, qc = (q - 1) % columns;
                    double weighted = 0, mass = 0;
                    for (int k = 1; k < T; k++)
                    {
                        drawn[k] += row[k];
                        int dr = (k - 1) / columns - qr, dc = (k - 1) % columns - qc;
                        weighted += row[k] * Math.Sqrt(dr * dr + dc * dc);
                        mass += row[k];
                    }
                    if (mass > MinPatchMass)
                    {
                        distance += weighted / mass;
                        counted++;
                    }
                }
                int P = T - 1;
                scores.Add(new VisionHeadScore(l, h, counted > 0 ? distance / counted : double.NaN, entropy / T, cls / P, drawn.Max() / P));
            }
        }
        return Ranked(scores);
    }

    /// <summary>Each head's scores averaged over several images (each from <see cref="Score"/>), ranked as there: distance
    /// averaged over the images where the head has one (none if it has none on any).</summary>
    public static VisionHeadScore[] Average(IReadOnlyList<VisionHeadScore[]> perImage)
    {
        if (perImage.Count == 0)
        {
            throw new InvalidInputException("no images to average head scores over");
        }
        return Ranked(perImage.SelectMany(s => s).GroupBy(s => s.Id).Select(g =>
        {
            var withDistance = g.Where(s => !double.IsNaN(s.Distance)).ToArray();
            return new VisionHeadScore(g.Key.Layer, g.Key.Head, withDistance.Length > 0 ? withDistance.Average(s => s.Distance) : double.NaN,
                g.Average(s => s.Entropy), g.Average(s => s.Cls), g.Average(s => s.Sink));
        }));
    }

    // most local first: ascending distance, heads without one last; ties by layer, head
    private static VisionHeadScore[] Ranked(IEnumerable<VisionHeadScore> scores) =>
        [.. scores.OrderBy(s => double.IsNaN(s.Distance) ? double.PositiveInfinity : s.Distance).ThenBy(s => s.Layer).ThenBy(s => s.Head)];
}
