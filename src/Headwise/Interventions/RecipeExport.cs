using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Interventions;

/// <summary>
/// Bakes a recipe's weight-expressible interventions into a model's canonical weights, in recipe order, so that a plain run of
/// the model built from them (<see cref="TransformerModel.Create(CanonicalWeights, string?)"/>, or its checkpoint written by
/// <see cref="CanonicalWeights.SaveHf"/>) equals the intervened run:
/// <list type="bullet">
/// <item><c>scale</c>: W_O[h] × factor. The head's output is z_h·W_O[h] (+ b_O, shared by every head and left alone), so
/// scaling W_O[h] is scaling z_h.</item>
/// <item><c>ablate</c> zero: W_O[h] = 0.</item>
/// <item><c>edit_ov</c>, <c>edit_qk</c>: the same edit as <see cref="RecipeApplication"/> (through W_O[h] or W_Q[h]).</item>
/// </list>
/// Every other kind acts on activations of a particular run (the pattern, a mean over the run, another input's q/k/v) and is
/// refused with an <see cref="InvalidInputException"/> naming the item.
/// <code>
/// var weights = RecipeExport.Bake(Recipe.Load("edit.json"), model);
/// weights.SaveHf("out/");
/// </code>
/// </summary>
public static class RecipeExport
{
    /// <summary>The kinds <see cref="Bake"/> accepts (ablate only with method zero).</summary>
    public static readonly string[] BakeableKinds = ["scale", "ablate", "edit_ov", "edit_qk"];

    /// <summary>Checks <paramref name="recipe"/> against <paramref name="model"/> and returns the model's canonical weights with
    /// every intervention baked in; throws before touching anything when an item cannot be expressed as weights.</summary>
    public static CanonicalWeights Bake(Recipe recipe, TransformerModel model)
    {
        RecipeApplication.CheckFields(recipe);
        RecipeApplication.Check(recipe, model);
        for (int i = 0; i < recipe.Interventions.Count; i++)
        {
            if (WhyNotWeights(recipe.Interventions[i]) is { } why)
            {
                throw new InvalidInputException($"{recipe.Where(i)}: {why}, which no weight of a Hugging Face checkpoint can express; run it with --intervene instead");
            }
        }
        var weights = model.ToCanonical();
        for (int i = 0; i < recipe.Interventions.Count; i++)
        {
            switch (recipe.Interventions[i])
            {
                case ScaleHeads s:
                    foreach (var h in s.Heads.Distinct())
                    {
                        var wo = weights.Layers[h.Layer].Attention.O(h.Head); // (HD, C)
                        foreach (ref float w in wo)
                        {
                            w = (float)(w * s.Factor);
                        }
                    }
                    break;
                case AblateHeads a:
                    foreach (var h in a.Heads)
                    {
                        weights.Layers[h.Layer].Attention.O(h.Head).Clear();
                    }
                    break;
                case EditWeights e:
                    RecipeApplication.EditHead(weights, e, recipe.Where(i));
                    break;
            }
        }
        return weights;
    }

    // why an item acts on a run's activations rather than on weights, or null when it can be baked
    private static string? WhyNotWeights(Intervention item) => item switch
    {
        ScaleHeads or EditWeights or AblateHeads { Mean: false } => null,
        AblateHeads => "method mean replaces the head's output by its mean over the positions of each run (a value of the input)",
        SoftenHeads or RedistributeSink => "changes the attention pattern",
        InjectActivations => "takes the head's activations from a run on another input",
        _ => $"kind {item.Kind} is not a weight edit",
    };
}
