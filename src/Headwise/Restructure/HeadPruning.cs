using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Restructure;

/// <summary>
/// Head pruning as a Hugging Face checkpoint can hold it: a pruned head's W_O is set to zero, so it writes nothing — the
/// model computes what it computes with those heads zero-ablated. The format has one head count for every layer, so the
/// heads stay (same parameters, same FLOPs); a format with per-layer head counts, which would remove them, is not built yet.
/// </summary>
public static class HeadPruning
{
    /// <summary>The <paramref name="count"/> heads whose zero ablation raises the loss on <paramref name="calibration"/> least
    /// (<see cref="Ablation.Importance"/>, zero ablation, loss; the text slides through the context window), fewest first.</summary>
    public static HeadId[] LeastImportant(TransformerModel model, int[] calibration, int count, IProgress<AnalysisProgress>? progress = null,
        CancellationToken cancel = default)
    {
        var c = model.Config;
        if (count < 1 || count >= c.NLayers * c.NHeads)
        {
            throw new InvalidInputException($"--by-importance {count}: prune between 1 and {c.NLayers * c.NHeads - 1} of the model's {c.NLayers * c.NHeads} heads");
        }
        int window = Math.Min(c.MaxPositions, calibration.Length);
        var target = InterventionTarget.FromLongTokens(calibration, window, Math.Max(1, window / 2));
        var importance = Ablation.Importance(model, target, AblationMethod.Zero, MetricKind.Loss, progress, cancel);
        return importance.Ranked(descending: false).Take(count).Select(x => x.Head).ToArray();
    }

    /// <summary>The model's canonical weights with W_O of every head in <paramref name="heads"/> zeroed.</summary>
    public static CanonicalWeights Zeroed(TransformerModel model, IReadOnlyList<HeadId> heads) =>
        RecipeExport.Bake(new Recipe("prune", [new AblateHeads(heads, Mean: false)]), model);
}
