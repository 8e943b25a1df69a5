using Headwise.Analysis;
using Headwise.Analysis.Interventions;
using Headwise.Interventions;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Restructure;

/// <summary>
/// Head pruning, in two forms (docs/restructure.md). <see cref="Removed"/>: Headwise's own format, per-layer head counts
/// (<see cref="LayerHeads"/>) — the pruned heads' rows of W_Q, W_K, W_V and W_O are gone, so parameters, FLOPs and the KV cache
/// shrink. <see cref="Zeroed"/>: what a Hugging Face checkpoint can hold (one head count for every layer) — a pruned head's W_O is
/// set to zero, so it writes nothing but is still computed and cached. Both compute what the model computes with those heads
/// zero-ablated.
/// </summary>
public static class HeadPruning
{
    /// <summary>The <paramref name="count"/> heads whose zero ablation raises the loss on <paramref name="calibration"/> least
    /// (<see cref="Ablation.Importance"/>, zero ablation, loss; the text slides through the context window), fewest first.</summary>
    public static HeadId[] LeastImportant(TransformerModel model, int[] calibration, int count, IProgress<AnalysisProgress>? progress = null,
        CancellationToken cancel = default)
    {
        var c = model.Config;
        c.RequireUniformHeads("pruning by importance");
        if (count < 1 || count >= c.NLayers * c.NHeads)
        {
            throw new InvalidInputException($"--by-importance {count}: prune between 1 and {c.NLayers * c.NHeads - 1} of the model's {c.NLayers * c.NHeads} heads");
        }
        int window = Math.Min(c.MaxPositions, calibration.Length);
        var target = InterventionTarget.FromLongTokens(calibration, window, Math.Max(1, window / 2));
        var importance = Ablation.Importance(model, target, AblationMethod.Zero, MetricKind.Loss, progress, cancel);
        return importance.Ranked(descending: false).Take(count).Select(x => x.Head).ToArray();
    }

    /// <summary>Refuses heads that <paramref name="model"/> cannot prune, in one line: one already pruned per layer, a family
    /// without per-head weights, a head named twice or outside the model. No heads at all is allowed: pruning nothing is lossless.</summary>
    public static void Check(ModelConfig c, IReadOnlyList<HeadId> heads)
    {
        CheckModel(c);
        foreach (var h in heads)
        {
            if (h.Layer < 0 || h.Layer >= c.NLayers || h.Head < 0 || h.Head >= c.NHeads)
            {
                throw new InvalidInputException($"head {h} does not exist: the model has layers 0..{c.NLayers - 1} and heads 0..{c.NHeads - 1}");
            }
        }
        if (heads.GroupBy(h => h).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new InvalidInputException($"--heads: head {twice.Key} is named twice");
        }
    }

    /// <summary>Refuses, in one line, a model whose heads cannot be pruned: one pruned per layer already, or a family without
    /// per-head q/k/v weights (deepseek_v3's latent, ViT).</summary>
    public static void CheckModel(ModelConfig c)
    {
        c.RequireUniformHeads("convert prune");
        if (c.Family is not (ArchitectureFamily.Gpt2 or ArchitectureFamily.Llama or ArchitectureFamily.GptNeoX))
        {
            throw new InvalidInputException($"convert prune: {c.ModelType} models are not supported (GPT-2, the Llama family and GPT-NeoX are)");
        }
    }

    /// <summary>The model's canonical weights with W_O of every head in <paramref name="heads"/> zeroed.</summary>
    public static CanonicalWeights Zeroed(TransformerModel model, IReadOnlyList<HeadId> heads)
    {
        Check(model.Config, heads);
        return RecipeExport.Bake(new Recipe("prune", [new AblateHeads(heads, Mean: false)]), model);
    }

    /// <summary>What <see cref="Removed"/> did: the weights (per-layer head counts), and the pruned heads it had to keep as
    /// zeroed heads (W_O = 0) because the format needs them: the other query heads of a kv head that stays (grouped-query
    /// attention keeps whole groups), or one group of a layer whose every head was pruned.</summary>
    public sealed record Result(CanonicalWeights Weights, HeadId[] KeptZeroed);

    /// <summary>
    /// The model with the heads in <paramref name="heads"/> removed: layer L keeps the query heads of every kv head that still
    /// serves an unpruned query head, renumbered 0 .. NH_L − 1 in their old order (their W_Q, W_K, W_V, biases and W_O rows
    /// copied; b_O as it is). With grouped-query attention a kv head stays while any of its NH/NKV query heads does, and its
    /// pruned query heads stay too, zeroed (W_O = 0): every kv head keeps serving NH/NKV query heads, so the kernels' grouping
    /// is unchanged. A layer whose every head is pruned keeps its first group, zeroed: its attention writes nothing (only b_O).
    /// Exactly the zero-ablated model, with fewer parameters, FLOPs and cached floats.
    /// </summary>
    public static Result Removed(TransformerModel model, IReadOnlyList<HeadId> heads)
    {
        var c = model.Config;
        Check(c, heads);
        var src = model.ToCanonical();
        int C = c.DModel, HD = c.DHead, G = c.KvGroupSize, NKV = c.NKvHeads;
        var layers = new LayerWeights[c.NLayers];
        var queryHeads = new int[c.NLayers];
        var kvHeads = new int[c.NLayers];
        var kept = new int[c.NLayers][];
        var keptZeroed = new List<HeadId>();
        for (int l = 0; l < c.NLayers; l++)
        {
            var pruned = heads.Where(h => h.Layer == l).Select(h => h.Head).ToHashSet();
            int[] groups = [.. Enumerable.Range(0, NKV).Where(j => Enumerable.Range(j * G, G).Any(h => !pruned.Contains(h)))];
            if (groups.Length == 0)
            {
                groups = [0]; // every head pruned: one zeroed group keeps the layer's shape
            }
            int[] q = [.. groups.SelectMany(j => Enumerable.Range(j * G, G))];
            keptZeroed.AddRange(q.Where(pruned.Contains).Select(h => new HeadId(l, h)));
            var a = src.Layers[l].Attention;
            var wo = Heads(a.WO, q, HD * C);
            foreach (int i in Enumerable.Range(0, q.Length).Where(i => pruned.Contains(q[i])))
            {
                wo.AsSpan(i * HD * C, HD * C).Clear();
            }
            var attention = new AttentionWeights(q.Length, groups.Length, C, HD,
                Heads(a.WQ, q, C * HD), Heads(a.WK, groups, C * HD), Heads(a.WV, groups, C * HD), wo,
                HeadsOrNull(a.BQ, q, HD), HeadsOrNull(a.BK, groups, HD), HeadsOrNull(a.BV, groups, HD), a.BO);
            layers[l] = src.Layers[l] with { Attention = attention };
            (queryHeads[l], kvHeads[l], kept[l]) = (q.Length, groups.Length, q);
        }
        var config = c with { LayerHeads = new LayerHeads(queryHeads, kvHeads, kept) };
        return new Result(src with { Config = config, Layers = layers }, [.. keptZeroed]);
    }

    // the blocks of `size` floats of the heads in `which`, in that order, from (heads, size)
    private static float[] Heads(float[] all, int[] which, int size)
    {
        var dst = new float[which.Length * size];
        for (int i = 0; i < which.Length; i++)
        {
            all.AsSpan(which[i] * size, size).CopyTo(dst.AsSpan(i * size, size));
        }
        return dst;
    }

    private static float[]? HeadsOrNull(float[]? all, int[] which, int size) => all is null ? null : Heads(all, which, size);

    /// <summary>A model pruned per layer back in its source's shape: every layer with the config's NHeads and NKvHeads, the
    /// removed heads all zero (W_Q, W_K, W_V, biases, W_O) at their source positions (<see cref="LayerHeads.Kept"/>). It
    /// computes exactly what the pruned model computes; the trainer (heal) runs this form and <see cref="Repruned"/> takes
    /// the removed heads out again.</summary>
    public static CanonicalWeights Expanded(CanonicalWeights pruned)
    {
        var c = pruned.Config;
        if (c.LayerHeads is not { } lh)
        {
            return pruned;
        }
        int C = c.DModel, HD = c.DHead, G = c.KvGroupSize;
        var layers = new LayerWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            var a = pruned.Layers[l].Attention;
            int[] q = lh.Kept[l], groups = [.. q.Where(h => h % G == 0).Select(h => h / G)];
            float[] Place(float[] part, int[] which, int heads, int size)
            {
                var dst = new float[heads * size];
                for (int i = 0; i < which.Length; i++)
                {
                    part.AsSpan(i * size, size).CopyTo(dst.AsSpan(which[i] * size, size));
                }
                return dst;
            }
            float[]? PlaceOrNull(float[]? part, int[] which, int heads) => part is null ? null : Place(part, which, heads, HD);
            layers[l] = pruned.Layers[l] with
            {
                Attention = new AttentionWeights(c.NHeads, c.NKvHeads, C, HD,
                    Place(a.WQ, q, c.NHeads, C * HD), Place(a.WK, groups, c.NKvHeads, C * HD), Place(a.WV, groups, c.NKvHeads, C * HD),
                    Place(a.WO, q, c.NHeads, HD * C), PlaceOrNull(a.BQ, q, c.NHeads), PlaceOrNull(a.BK, groups, c.NKvHeads),
                    PlaceOrNull(a.BV, groups, c.NKvHeads), a.BO),
            };
        }
        return pruned with { Config = c with { LayerHeads = null }, Layers = layers };
    }

    /// <summary>Weights in the source's shape (what <see cref="Expanded"/> gives, after training) pruned per layer as
    /// <paramref name="heads"/> says again: each layer keeps the source heads in <see cref="LayerHeads.Kept"/>.</summary>
    public static CanonicalWeights Repruned(CanonicalWeights full, LayerHeads heads)
    {
        var c = full.Config;
        int C = c.DModel, HD = c.DHead, G = c.KvGroupSize;
        var layers = new LayerWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            var a = full.Layers[l].Attention;
            int[] q = heads.Kept[l], groups = [.. q.Where(h => h % G == 0).Select(h => h / G)];
            layers[l] = full.Layers[l] with
            {
                Attention = new AttentionWeights(q.Length, groups.Length, C, HD,
                    Heads(a.WQ, q, C * HD), Heads(a.WK, groups, C * HD), Heads(a.WV, groups, C * HD), Heads(a.WO, q, HD * C),
                    HeadsOrNull(a.BQ, q, HD), HeadsOrNull(a.BK, groups, HD), HeadsOrNull(a.BV, groups, HD), a.BO),
            };
        }
        return full with { Config = c with { LayerHeads = heads }, Layers = layers };
    }
}
