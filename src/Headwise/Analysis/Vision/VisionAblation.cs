using Headwise.Analysis.Interventions;
using Headwise.Hooks;
using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Analysis.Vision;

/// <summary>What ablating heads does to an image classifier's prediction (<see cref="VisionAblation.Ablate"/>).</summary>
/// <param name="Kl">KL(clean ‖ ablated) of the label distributions at the CLS, in nats.</param>
/// <param name="CleanTop">The clean run's most probable label id; <paramref name="CleanProbability"/> its probability,
/// <paramref name="AblatedProbability"/> the same label's after the ablation.</param>
/// <param name="AblatedTop">The ablated run's most probable label id.</param>
public sealed record VisionAblationResult(HeadId[] Heads, AblationMethod Method, double Kl, int CleanTop, double CleanProbability,
    double AblatedProbability, int AblatedTop);

/// <summary>Head ablation on one image of a ViT classifier: the heads' z (blocks.L.attn.hook_z) replaced together, zero or
/// their mean over the image's positions, and the label distribution at the CLS compared with the clean run.</summary>
public static class VisionAblation
{
    public static VisionAblationResult Ablate(TransformerModel model, ModelInput image, IReadOnlyList<HeadId> heads, AblationMethod method,
        Action<HookSet>? baseHooks = null)
    {
        var vision = model.Config.Vision ?? throw new InvalidInputException("VisionAblation: the model reads token ids, not images");
        if (!vision.HasClassifier)
        {
            throw new InvalidInputException($"{model.Weights.Source} has no classifier: there is no label distribution to compare");
        }
        if (method == AblationMethod.Resample)
        {
            throw new InvalidInputException("--method resample needs a second input of the same length; on an image use zero or mean");
        }
        int V = model.Config.VocabSize, NH = model.Config.NHeads, HD = model.Config.DHead;
        var clean = Classification.Probabilities(Run(model, image, baseHooks, null)[..V]);
        var ablated = Classification.Probabilities(Run(model, image, baseHooks, hooks =>
        {
            foreach (var layer in heads.GroupBy(h => h.Layer))
            {
                int[] inLayer = [.. layer.Select(h => h.Head)];
                hooks.Add($"blocks.{layer.Key}.attn.hook_z", a => Replace(a.Data.Span, a.Shape[0] * a.Shape[1], NH, HD, inLayer, method));
            }
        })[..V]);
        double kl = 0;
        for (int i = 0; i < V; i++)
        {
            kl += clean[i] > 0 ? clean[i] * Math.Log(clean[i] / Math.Max(ablated[i], double.Epsilon)) : 0;
        }
        int cleanTop = ArgMax(clean), ablatedTop = ArgMax(ablated);
        return new VisionAblationResult([.. heads], method, kl, cleanTop, clean[cleanTop], ablated[cleanTop], ablatedTop);
    }

    private static float[] Run(TransformerModel model, ModelInput image, Action<HookSet>? baseHooks, Action<HookSet>? ablation)
    {
        var hooks = new HookSet(model.Config.NLayers);
        baseHooks?.Invoke(hooks);
        ablation?.Invoke(hooks);
        return model.Forward(image, hooks);
    }

    // z: (rows, NH, HD); each ablated head's slice set to 0, or to its mean over the rows (every position of the image)
    private static void Replace(Span<float> z, int rows, int NH, int HD, int[] heads, AblationMethod method)
    {
        Span<float> mean = stackalloc float[HD];
        foreach (int h in heads)
        {
            mean.Clear();
            if (method == AblationMethod.Mean)
            {
                for (int r = 0; r < rows; r++)
                {
                    var zh = z.Slice((r * NH + h) * HD, HD);
                    for (int d = 0; d < HD; d++)
                    {
                        mean[d] += zh[d] / rows;
                    }
                }
            }
            for (int r = 0; r < rows; r++)
            {
                mean.CopyTo(z.Slice((r * NH + h) * HD, HD));
            }
        }
    }

    private static int ArgMax(double[] p)
    {
        int best = 0;
        for (int i = 1; i < p.Length; i++)
        {
            if (p[i] > p[best])
            {
                best = i;
            }
        }
        return best;
    }
}
