using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;

namespace Headwise.Models;

// The canonical, family-independent view of the weights (CanonicalWeights.cs has the layout): embeddings and unembedding as
// views of the loaded tensors, everything per layer as owned copies in TransformerLens' x·W convention. Each family reads its
// own tensors into this layout (the overrides) and writes it back under its names (its static CheckpointTensors);
// CanonicalLayout does the per-head slicing both ways, for Conv1D (C, out) and nn.Linear (out, C) storage alike.
public abstract partial class TransformerModel
{
    /// <summary>W_E (V, C): row t is token t's embedding. A view of the loaded tensor (no copy).</summary>
    public abstract Weight TokenEmbedding { get; }

    /// <summary>W_pos (P, C) for <see cref="PositionKind.Learned"/> positions, else null. A view (no copy).</summary>
    public virtual Weight? PositionEmbedding => null;

    /// <summary>The unembedding W_U stored (V, C) like nn.Linear — logits = x·W_Uᵀ (+ bias (V)) — the token embedding itself
    /// when tied. Views (no copy).</summary>
    public abstract (Weight W, Weight? Bias) Unembedding { get; }

    /// <summary>Layer <paramref name="layer"/>'s attention as owned copies: W_Q (NH, C, HD), W_K and W_V (NKV, C, HD),
    /// W_O (NH, HD, C) and the biases the model has.</summary>
    public abstract AttentionWeights GetAttentionWeights(int layer);

    /// <summary>Layer <paramref name="layer"/>'s MLP as owned copies: W_in (C, F), W_gate (C, F) when gated, W_out (F, C), biases.</summary>
    public abstract MlpWeights GetMlpWeights(int layer);

    /// <summary>The norm before layer <paramref name="layer"/>'s attention (ln1), copied.</summary>
    public NormWeights AttentionNorm(int layer) => NormOf(RequireLayer(layer), HookKind.Ln1Scale);

    /// <summary>The norm before layer <paramref name="layer"/>'s MLP (ln2), copied. With a parallel residual it reads resid_pre too.</summary>
    public NormWeights MlpNorm(int layer) => NormOf(RequireLayer(layer), HookKind.Ln2Scale);

    /// <summary>The final norm before the unembedding (ln_final), copied.</summary>
    public NormWeights FinalNormWeights => NormOf(HookPoint.ModelLevel, HookKind.LnFinalScale);

    /// <summary>Every weight of the model in the canonical layout (owned copies): the input of
    /// <see cref="Create(CanonicalWeights, string?)"/> and <see cref="CanonicalWeights.SaveHf"/>, and what an edit of the weights starts from.</summary>
    public CanonicalWeights ToCanonical()
    {
        var layers = new LayerWeights[Config.NLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = new LayerWeights(AttentionNorm(l), GetAttentionWeights(l), MlpNorm(l), GetMlpWeights(l));
        }
        return new CanonicalWeights(Config, TokenEmbedding.ToArray(), PositionEmbedding?.ToArray(), layers, FinalNormWeights,
            Config.TiedEmbeddings ? null : Unembedding.W.ToArray());
    }

    private NormWeights NormOf(int layer, HookKind site)
    {
        var (w, b) = NormTensors(layer, site);
        return new NormWeights(Config.Norm, w.ToArray(), b?.ToArray(), Config.NormEps);
    }

    /// <summary>Throws unless <paramref name="layer"/> is a block of this model; returns it.</summary>
    protected int RequireLayer(int layer) => (uint)layer < (uint)Config.NLayers ? layer
        : throw new InvalidInputException($"layer {layer} is outside 0..{Config.NLayers - 1}");

    /// <summary>W_O (NH, HD, C) of <paramref name="layer"/>, a fresh copy: what a family's <see cref="GetAttentionWeights"/> returns.</summary>
    protected float[] OutputWeightsPerHead(int layer) => OutputWeights(RequireLayer(layer));
}
