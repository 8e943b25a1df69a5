using Headwise.Hooks;
using static Headwise.Compute.Kernels;

namespace Headwise.Models;

/// <summary>Where and how much a ViT forward prunes patches (<see cref="Vit.ForwardPruned"/>).</summary>
/// <param name="Layers">Blocks after which patches are dropped (0-based, ascending).</param>
/// <param name="Keep">Share of the patches still present kept at each of those blocks, in (0, 1]; 1 prunes nothing.</param>
/// <param name="HeadWeights">[layer][head] ≥ 0, the head importance weighting the CLS attention (e.g. pruning importance);
/// null: every head alike. Each layer's weights are normalised to sum to 1 (all zero: alike).</param>
public sealed record TokenPruning(IReadOnlyList<int> Layers, double Keep, float[][]? HeadWeights = null)
{
    /// <summary>The blocks at L/4, L/2 and 3L/4 (rounded down, distinct), leaving out the last block (nothing after it to
    /// speed up): 3, 6, 9 for a 12-layer ViT-Base, as DynamicViT and Adaptive Sparse ViT prune.</summary>
    public static int[] DefaultLayers(int nLayers) =>
        [.. new[] { nLayers / 4, nLayers / 2, 3 * nLayers / 4 }.Where(l => l < nLayers - 1).Distinct().Order()];

    public void Validate(int nLayers, int nHeads)
    {
        if (!(Keep > 0 && Keep <= 1))
        {
            throw new InvalidInputException($"token pruning: keep = {Keep}; expected a share in (0, 1]");
        }
        if (Layers.Any(l => l < 0 || l >= nLayers))
        {
            throw new InvalidInputException($"token pruning: layers {string.Join(",", Layers)}; expected blocks 0..{nLayers - 1}");
        }
        if (HeadWeights is not null && (HeadWeights.Length != nLayers || HeadWeights.Any(l => l.Length != nHeads || l.Any(w => !(w >= 0)))))
        {
            throw new InvalidInputException($"token pruning: head weights must be [{nLayers}][{nHeads}] values ≥ 0");
        }
    }

    /// <summary>Head <paramref name="head"/>'s share of layer <paramref name="layer"/>'s weight (sums to 1 over the heads).</summary>
    public float Weight(int layer, int head)
    {
        if (HeadWeights is null || HeadWeights[layer].Sum() <= 0)
        {
            return 1f / (HeadWeights?[layer].Length ?? 1);
        }
        return HeadWeights[layer][head] / HeadWeights[layer].Sum();
    }
}

/// <summary>A pruned forward's output.</summary>
/// <param name="Output">The CLS's logits (or a ViTModel's CLS hidden state).</param>
/// <param name="TokensPerLayer">Tokens (CLS included) each block ran on.</param>
/// <param name="Kept">The original positions left after the last pruning (0 = the CLS, 1 + r·columns + c a patch).</param>
public sealed record TokenPruningResult(float[] Output, int[] TokensPerLayer, int[] Kept);

public sealed partial class Vit
{
    // Adaptive token pruning [Adaptive Sparse ViT]: state of the forward in progress, null outside ForwardPruned
    private TokenPruning? _pruning;
    private int[]? _tokensPerLayer;     // (L) tokens each block ran on
    private int _fullLength;            // T of the image before pruning
    private int[] _origin = [];         // (T) the original position of each current row
    private float[] _clsAttention = []; // (T) head-weighted attention of the CLS on each row

    /// <summary>
    /// A forward of one image that drops patches between blocks [Adaptive Sparse ViT]: after each block in
    /// <see cref="TokenPruning.Layers"/>, the patches with the highest head-weighted CLS attention of that block are kept —
    /// ⌈keep · patches⌉ of those still present, at least 1; the CLS always — and the others are removed from the sequence,
    /// so the later blocks run on fewer tokens (faster: they are gone, not masked). Patch j's score is
    /// Σ_h w_h · softmax_k(q_CLS,h · k_k,h / √HD)[j] from the block's own q and k (every key: bidirectional), w the layer's
    /// head weights. Keep = 1 prunes nothing: the output equals <see cref="TransformerModel.Forward(ModelInput, HookSet?)"/>'s
    /// at the CLS. Hooks after a pruning block see the shorter sequence.
    /// </summary>
    public TokenPruningResult ForwardPruned(ModelInput image, TokenPruning pruning, HookSet? hooks = null)
    {
        if (image.Pixels is null || image.Batch != 1)
        {
            throw new InvalidInputException("token pruning runs one image at a time (batch 1)");
        }
        pruning.Validate(Config.NLayers, Config.NHeads);
        _fullLength = image.SeqLen;
        if (_origin.Length < _fullLength)
        {
            _origin = new int[_fullLength];
            _clsAttention = new float[_fullLength];
        }
        for (int i = 0; i < _fullLength; i++)
        {
            _origin[i] = i;
        }
        var tokens = new int[Config.NLayers];
        _pruning = pruning;
        _tokensPerLayer = tokens;
        try
        {
            var output = Forward(image, hooks);
            return new TokenPruningResult(output[..Config.VocabSize], tokens, _origin[..Step.T]);
        }
        finally
        {
            _pruning = null;
            _tokensPerLayer = null;
        }
    }

    protected override void AfterBlock(int layer)
    {
        if (_pruning is not { } plan)
        {
            return;
        }
        _tokensPerLayer![layer] = Step.T;
        int T = Step.T, C = Config.DModel, NH = Config.NHeads, HD = Config.DHead, patches = T - 1;
        int keep = Math.Max(1, (int)Math.Ceiling(plan.Keep * patches - 1e-9));
        if (!plan.Layers.Contains(layer) || keep >= patches)
        {
            return;
        }
        // pass 1: the CLS's attention per head, softmax_k(q_CLS · k_k / √HD), weighted into the score; S.Q, S.K are (T, NH, HD)
        var score = _clsAttention.AsSpan(0, T);
        score.Clear();
        float scale = 1f / MathF.Sqrt(HD);
        for (int h = 0; h < NH; h++)
        {
            float w = plan.Weight(layer, h);
            var q = S.Q.AsSpan(h * HD, HD);
            float max = float.NegativeInfinity, sum = 0;
            for (int k = 0; k < T; k++)
            {
                max = MathF.Max(max, Dot(q, S.K.AsSpan((k * NH + h) * HD, HD)) * scale);
            }
            for (int k = 0; k < T; k++)
            {
                sum += MathF.Exp(Dot(q, S.K.AsSpan((k * NH + h) * HD, HD)) * scale - max);
            }
            for (int k = 0; k < T; k++)
            {
                score[k] += w * MathF.Exp(Dot(q, S.K.AsSpan((k * NH + h) * HD, HD)) * scale - max) / sum;
            }
        }
        // pass 2: the `keep` highest-scoring patches (ties: the earlier one), back in their order
        var scores = _clsAttention;
        int[] kept = [.. Enumerable.Range(1, patches).OrderByDescending(k => scores[k]).ThenBy(k => k).Take(keep).Order()];
        // pass 3: compact the residual rows: the CLS stays at 0, kept patch i moves to 1 + i (never after its source row)
        for (int i = 0; i < keep; i++)
        {
            S.X.AsSpan(kept[i] * C, C).CopyTo(S.X.AsSpan((1 + i) * C, C));
            _origin[1 + i] = _origin[kept[i]];
        }
        Step.T = 1 + keep;
        Step.N = 1 + keep;
    }

    // after the final norm of a pruned forward: the rows past the kept tokens hold stale values; cleared, so the unembed
    // (which covers the image's full length) gives the bias alone there
    private void ClearPrunedRows()
    {
        if (_pruning is not null)
        {
            S.XNorm.AsSpan(Step.N * Config.DModel, (_fullLength - Step.T) * Config.DModel).Clear();
        }
    }
}
