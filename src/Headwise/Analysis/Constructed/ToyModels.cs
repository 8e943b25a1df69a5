using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Analysis.Constructed;

/// <summary>
/// Attention-only GPT-2-family models whose weights are written by hand, so that what each head does is known by construction:
/// the ground truth that head detectors, attribution and patching are tested against.
/// <para>
/// Sizes (all models): vocab V = 128, n_ctx P = 128, d_model C = 640, 4 heads per layer of d_head 160, d_mlp 4 (MLP weights and
/// biases zero, so every block is attention-only), no BOS token, untied unembedding.
/// The residual stream is five subspaces of 128 dims each:
/// <code>
///   [  0, 128)  TOK   the current token, one-hot (token embedding)
///   [128, 256)  POS   the position, one-hot (position embedding)
///   [256, 384)  PREV  the previous token, written by a previous-token head (layer 0)
///   [384, 512)  OUT   the predicted token, written by an induction head; the unembedding reads only this subspace
///   [512, 640)  —     unused (it makes d_head = 160 leave room for a constant query term in the induction head)
/// </code>
/// Every one-hot is centred within its subspace (e_i − 1/128), so each residual vector has zero mean over d_model and the
/// same norm at every position; LayerNorm is then a uniform scaling, and each ln_1 weight is set to undo it
/// (norm / √C), so a block's heads read the residual as it is.
/// </para>
/// <para>
/// Head kinds (query and key weights scaled so the chosen score exceeds the others by about <see cref="Sharpness"/> after
/// the 1/√d_head): <em>uniform</em> — all weights zero, so it attends uniformly to positions 0..q and writes nothing;
/// <em>self</em> — query POS · key POS, attends to its own position; <em>previous-token</em> — query POS shifted by one · key POS,
/// attends from q to q − 1 (position 0 to itself); <em>sink</em> — a constant query (q bias) · key POS₀, attends to position 0;
/// <em>induction</em> — query TOK · key PREV (K-composition with a previous-token head below it), attends from q to the position
/// after an earlier occurrence of the current token, and copies that position's TOK into OUT.
/// Only the previous-token head of <see cref="InductionCircuit"/> (TOK → PREV) and the induction head (TOK → OUT) write
/// anything; the other heads' OV circuits are zero.
/// </para>
/// </summary>
public static class ToyModels
{
    public const int VocabSize = 128;
    public const int Positions = 128;
    public const int DModel = 640;
    public const int HeadsPerLayer = 4;
    public const int DHead = 160;

    /// <summary>Residual offsets of the four subspaces.</summary>
    public const int Tok = 0, Pos = 128, Prev = 256, Out = 384;

    /// <summary>The score margin (in logits of the softmax) of the attended position over the others.</summary>
    public const float Sharpness = 25f;

    /// <summary>The logit margin of the token the induction head copies (unembedding scale).</summary>
    public const float UnembedScale = 20f;

    // ---------------------------------------------------------------------------------------------------------------
    // The models and their named heads

    /// <summary><see cref="PreviousTokenHead"/>: 0.1 attends from i to i − 1.</summary>
    public static HeadId PreviousTokenHeadId => new(0, 1);

    /// <summary>
    /// One layer: 0.0 uniform, <b>0.1 previous-token</b>, 0.2 self, 0.3 uniform. Nothing is written to the residual stream.
    /// </summary>
    public static TransformerModel PreviousTokenHead() =>
        Build("toy previous-token head", [[HeadKind.Uniform, HeadKind.PreviousToken, HeadKind.Self, HeadKind.Uniform]]);

    /// <summary><see cref="SinkHead"/>: 0.2 puts almost all attention on position 0.</summary>
    public static HeadId SinkHeadId => new(0, 2);

    /// <summary>One layer: 0.0 self, 0.1 uniform, <b>0.2 sink</b> (attends to position 0), 0.3 previous-token.</summary>
    public static TransformerModel SinkHead() =>
        Build("toy sink head", [[HeadKind.Self, HeadKind.Uniform, HeadKind.Sink, HeadKind.PreviousToken]]);

    /// <summary><see cref="InductionCircuit"/>: 0.0, the previous-token head that writes the previous token into PREV.</summary>
    public static HeadId InductionPreviousTokenHeadId => new(0, 0);

    /// <summary><see cref="InductionCircuit"/>: 1.0, the induction head (keys read PREV, queries read TOK, OV copies TOK → OUT).</summary>
    public static HeadId InductionHeadId => new(1, 0);

    /// <summary>
    /// Two layers, the induction circuit of Elhage et al. (2021) built by hand:
    /// layer 0: <b>0.0 previous-token</b> (writes the previous token into PREV), 0.1 uniform, 0.2 self, 0.3 uniform;
    /// layer 1: <b>1.0 induction</b> (K-composition with 0.0; copies the attended token into OUT), 1.1 uniform, 1.2 self, 1.3 uniform.
    /// On a repeated sequence of distinct tokens it predicts the second half almost perfectly (loss ≈ 0) and the first half no
    /// better than chance. Position 0's PREV holds its own token (a previous-token head there can only attend to itself), so the
    /// induction head's query carries a constant term (q bias) against the key's POS₀ coordinate that keeps it off position 0.
    /// </summary>
    public static TransformerModel InductionCircuit() =>
        Build("toy induction circuit", [
            [HeadKind.PreviousToken, HeadKind.Uniform, HeadKind.Self, HeadKind.Uniform],
            [HeadKind.Induction, HeadKind.Uniform, HeadKind.Self, HeadKind.Uniform],
        ]);

    // ---------------------------------------------------------------------------------------------------------------
    // Construction

    private enum HeadKind { Uniform, Self, PreviousToken, Sink, Induction }

    /// <summary>The GPT-2-family config every toy model shares (its layer count aside).</summary>
    public static ModelConfig Config(int layers) => new()
    {
        ModelType = "gpt2",
        Family = ArchitectureFamily.Gpt2,
        VocabSize = VocabSize,
        DModel = DModel,
        NLayers = layers,
        NHeads = HeadsPerLayer,
        NKvHeads = HeadsPerLayer,
        DHead = DHead,
        DMlp = 4,
        MaxPositions = Positions,
        NormEps = 1e-5f,
        Norm = NormKind.LayerNorm,
        Activation = ActivationFunction.GeluTanh,
        GatedMlp = false,
        Positions = PositionKind.Learned,
        TiedEmbeddings = false,
        QkvBias = true,
        OutputBias = true,
        MlpBias = true,
    };

    /// <summary>The canonical weights of a toy model with these head kinds (what <see cref="TransformerModel.Create(CanonicalWeights, string?)"/> builds).</summary>
    private static CanonicalWeights Weights(HeadKind[][] layers)
    {
        const int C = DModel, V = VocabSize, P = Positions, HD = DHead, NH = HeadsPerLayer;
        var config = Config(layers.Length);

        // Embeddings: centred one-hots, TOK for tokens and POS for positions.
        var tokenEmbed = new float[V * C];
        var posEmbed = new float[P * C];
        for (int t = 0; t < V; t++)
        {
            SetCentredOneHot(tokenEmbed.AsSpan(t * C, C), Tok, V, t);
        }
        for (int p = 0; p < P; p++)
        {
            SetCentredOneHot(posEmbed.AsSpan(p * C, C), Pos, P, p);
        }

        // The squared norm of one centred one-hot; the residual holds 2 (TOK, POS), then 3 (+PREV) after a previous-token head.
        float unit = (V - 1f) / V;
        float beta = Sharpness * MathF.Sqrt(HD);
        int subspaces = 2;
        NormWeights LayerNorm(float gamma)
        {
            var w = new float[C];
            Array.Fill(w, gamma);
            return new NormWeights(NormKind.LayerNorm, w, new float[C], config.NormEps);
        }
        var blocks = new LayerWeights[layers.Length];
        for (int l = 0; l < layers.Length; l++)
        {
            // LayerNorm as identity on the designed inputs: x / (‖x‖/√C) · (‖x‖/√C)
            var ln1 = LayerNorm(MathF.Sqrt(subspaces * unit / C));
            var a = AttentionWeights.Zero(config); // W_Q[h], W_K[h], W_V[h]: (C, HD), x·W; W_O[h]: (HD, C)
            bool writesPrev = false;
            for (int h = 0; h < NH; h++)
            {
                var wq = a.Q(h);
                var wk = a.K(h);
                var wv = a.V(h);
                var wo = a.O(h);
                void Set(Span<float> w, int row, int col, float value) => w[row * HD + col] = value;
                switch (layers[l][h])
                {
                    case HeadKind.Uniform:
                        break;
                    case HeadKind.Self:
                        for (int i = 0; i < P; i++)
                        {
                            Set(wq, Pos + i, i, beta);
                            Set(wk, Pos + i, i, 1f);
                        }
                        break;
                    case HeadKind.PreviousToken:
                        // query at position i asks for key position i − 1
                        for (int i = 1; i < P; i++)
                        {
                            Set(wq, Pos + i, i - 1, beta);
                        }
                        for (int i = 0; i < P; i++)
                        {
                            Set(wk, Pos + i, i, 1f);
                        }
                        if (l == 0 && layers.Length > 1)
                        {
                            // OV: the attended token (TOK) into PREV
                            for (int t = 0; t < V; t++)
                            {
                                Set(wv, Tok + t, t, 1f);
                                wo[t * C + Prev + t] = 1f;
                            }
                            writesPrev = true;
                        }
                        break;
                    case HeadKind.Sink:
                        // a constant query (bias) against the key's POS₀ coordinate: 1 − 1/P at position 0, −1/P elsewhere
                        a.BQ![h * HD] = beta;
                        Set(wk, Pos + 0, 0, 1f);
                        break;
                    case HeadKind.Induction:
                        // K-composition: query TOK(current) · key PREV(the token before the key) — equal right after an earlier copy
                        for (int t = 0; t < V; t++)
                        {
                            Set(wq, Tok + t, t, beta);
                            Set(wk, Prev + t, t, 1f);
                            // OV: the attended token (TOK) into OUT
                            Set(wv, Tok + t, t, 1f);
                            wo[t * C + Out + t] = 1f;
                        }
                        // never key 0: a constant query (bias −β) on a spare head dim against the key's POS₀ coordinate
                        a.BQ![h * HD + V] = -beta;
                        Set(wk, Pos + 0, V, 1f);
                        break;
                }
            }
            if (writesPrev)
            {
                subspaces++;
            }
            blocks[l] = new LayerWeights(ln1, a, LayerNorm(1f), MlpWeights.Zero(config));
        }

        // Final LayerNorm weight 1 (it multiplies x by √C/‖x‖); the unembedding reads OUT, scaled by ‖x‖/√C of the expected final
        // residual, so that a full centred one-hot in OUT gives the copied token a logit margin of UnembedScale.
        int finalSubspaces = subspaces + 1;
        float finalScale = MathF.Sqrt(finalSubspaces * unit / C);
        var unembed = new float[V * C]; // (V, C): row t reads token t's logit
        for (int t = 0; t < V; t++)
        {
            unembed[t * C + Out + t] = UnembedScale * finalScale;
        }
        return new CanonicalWeights(config, tokenEmbed, posEmbed, blocks, LayerNorm(1f), unembed);
    }

    private static TransformerModel Build(string name, HeadKind[][] layers) => TransformerModel.Create(Weights(layers), name);

    private static void SetCentredOneHot(Span<float> row, int offset, int size, int index)
    {
        row.Slice(offset, size).Fill(-1f / size);
        row[offset + index] += 1f;
    }
}
