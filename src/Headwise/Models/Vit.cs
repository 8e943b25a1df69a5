using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using static Headwise.Compute.Kernels;
using static Headwise.Models.CanonicalLayout;

namespace Headwise.Models;

/// <summary>
/// The Vision Transformer (HF <c>ViTForImageClassification</c>, or <c>ViTModel</c>): images cut into p×p patches, each
/// projected to d_model (a convolution with stride p, i.e. one GEMM over flattened patches), a CLS token in front, learned
/// positions (bicubically interpolated for another image size, as <c>interpolate_pos_encoding</c> does), pre-LayerNorm
/// blocks with bidirectional attention and a GELU MLP, a final LayerNorm, and the classifier on the CLS.
/// Sequence positions: 0 is the CLS, 1 + r·(W/p) + c the patch in row r, column c.
/// "Logits" are the classifier's at every position ([B, T, labels]; HF's are those at position 0); a ViTModel without a
/// classifier returns its last_hidden_state instead (the unembedding is then the identity, vocabulary = d_model).
/// ViTModel's pooler (dense + tanh on the CLS) is not part of either output and is ignored.
/// </summary>
public sealed partial class Vit : TransformerModel
{
    private readonly Weight _cls;        // (1, 1, C)
    private readonly Weight _pos;        // (1, 1 + G·G, C), G = image_size / p
    private readonly Weight _patchW;     // (C, ch, p, p): as a matrix (C, ch·p·p), nn.Linear's (out, in)
    private readonly Weight _patchB;     // (C)
    private readonly BlockWeights[] _blocks;
    private readonly Weight _lnFW, _lnFB; // (C)
    private readonly Weight _head;       // (labels, C) classifier, or the (C, C) identity for a ViTModel
    private readonly Weight? _headB;     // (labels)
    private readonly Dictionary<(int, int), float[]> _positionsBySize = [];
    private float[] _patches = [];       // (P, ch·p·p) one image's patches, flattened as the conv kernel is

    private sealed record BlockWeights(
        Weight Ln1W, Weight Ln1B,                       // layernorm_before (C)
        Weight Wq, Weight? Bq, Weight Wk, Weight? Bk,   // attention.attention.{query,key,value}: (C, C) nn.Linear,
        Weight Wv, Weight? Bv,                          //   biases (C) when qkv_bias
        Weight Wo, Weight Bo,                           // attention.output.dense (C, C), (C)
        Weight Ln2W, Weight Ln2B,                       // layernorm_after (C)
        Weight Up, Weight UpB,                          // intermediate.dense (F, C), (F)
        Weight Down, Weight DownB);                     // output.dense (C, F), (C)

    public Vit(ModelConfig config, WeightSet w) : base(WithHead(config, w), w)
    {
        var c = Config;
        var vision = c.Vision!;
        int C = c.DModel, F = c.DMlp, G = vision.GridSize, p = vision.PatchSize, ch = vision.Channels;
        // ViTForImageClassification nests the ViTModel under "vit."; a saved ViTModel has no prefix
        string pre = w.Contains("vit.embeddings.cls_token") ? "vit." : "";
        _cls = w.Get(pre + "embeddings.cls_token", 1, 1, C);
        _pos = w.Get(pre + "embeddings.position_embeddings", 1, 1 + G * G, C);
        _patchW = w.Get(pre + "embeddings.patch_embeddings.projection.weight", C, ch, p, p);
        _patchB = w.Get(pre + "embeddings.patch_embeddings.projection.bias", C);
        _blocks = new BlockWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            string b = $"{pre}encoder.layer.{l}.";
            string a = b + "attention.attention.";
            Weight? Bias(string name) => c.QkvBias ? w.Get(a + name + ".bias", C) : null;
            _blocks[l] = new BlockWeights(
                w.Get(b + "layernorm_before.weight", C), w.Get(b + "layernorm_before.bias", C),
                w.Get(a + "query.weight", C, C), Bias("query"), w.Get(a + "key.weight", C, C), Bias("key"),
                w.Get(a + "value.weight", C, C), Bias("value"),
                w.Get(b + "attention.output.dense.weight", C, C), w.Get(b + "attention.output.dense.bias", C),
                w.Get(b + "layernorm_after.weight", C), w.Get(b + "layernorm_after.bias", C),
                w.Get(b + "intermediate.dense.weight", F, C), w.Get(b + "intermediate.dense.bias", F),
                w.Get(b + "output.dense.weight", C, F), w.Get(b + "output.dense.bias", C));
        }
        _lnFW = w.Get(pre + "layernorm.weight", C);
        _lnFB = w.Get(pre + "layernorm.bias", C);
        if (vision.HasClassifier)
        {
            _head = w.Get("classifier.weight", c.VocabSize, C);
            _headB = w.Get("classifier.bias", c.VocabSize);
        }
        else
        {
            var identity = new float[C * C];
            for (int i = 0; i < C; i++)
            {
                identity[i * C + i] = 1;
            }
            _head = Weight.FromArray("identity (ViTModel: no classifier)", identity, C, C);
        }
    }

    // a checkpoint without classifier.weight is a ViTModel: no labels, and its output is the hidden state (vocabulary = C)
    private static ModelConfig WithHead(ModelConfig config, WeightSet w) =>
        config.Vision is null ? throw new ModelFormatException($"{w.Source}: a ViT config needs its image fields")
        : w.Contains("classifier.weight") ? config
        : config with { VocabSize = config.DModel, Vision = config.Vision with { Labels = [] } };

    protected override void Embed()
    {
        var px = Step.Pixels!;
        var vision = Config.Vision!;
        int B = Step.B, T = Step.T, C = Config.DModel, p = vision.PatchSize, ch = px.Channels;
        int gh = px.Height / p, gw = px.Width / p, P = gh * gw, K = ch * p * p;
        if (_patches.Length < P * K)
        {
            _patches = new float[P * K];
        }
        for (int b = 0; b < B; b++)
        {
            // embeddings = self.projection(pixel_values).flatten(2).transpose(1, 2): the stride-p conv is a GEMM of the
            // flattened patches (P, ch·p·p) with the kernel (C, ch·p·p), written after the CLS row of image b
            Patchify(px, b, p, _patches);
            MatMul(_patches.AsSpan(0, P * K), _patchW.Span, _patchB.Span, S.X.AsSpan((b * T + 1) * C, P * C), P, K, C, WeightLayout.OutIn);
            // embeddings = torch.cat((cls_tokens, embeddings), dim=1)
            _cls.Span.CopyTo(S.X.AsSpan(b * T * C, C));
        }
        HookResid(HookPoint.ModelLevel, HookKind.Embed, S.X);

        // embeddings = embeddings + self.position_embeddings (interpolated for another grid: interpolate_pos_encoding)
        var positions = PositionEmbeddingFor(px.Height, px.Width);
        for (int b = 0; b < B; b++)
        {
            positions.CopyTo(S.Tmp.AsSpan(b * T * C, T * C));
        }
        HookResid(HookPoint.ModelLevel, HookKind.PosEmbed, S.Tmp);
        Add(S.X.AsSpan(0, B * T * C), S.Tmp.AsSpan(0, B * T * C), S.X.AsSpan(0, B * T * C));
    }

    // image b's patches, row-major over the grid, each flattened in the conv kernel's (channel, ky, kx) order: (P, ch·p·p)
    private static void Patchify(ImagePixels px, int b, int p, float[] patches)
    {
        int ch = px.Channels, H = px.Height, W = px.Width;
        Patchify(px.Data.AsSpan(b * ch * H * W, ch * H * W), ch, H, W, p, patches);
    }

    // image: (ch, H, W) → patches: (P, ch·p·p), as above (shared with the trainer's ViT, TrainableVit)
    internal static void Patchify(ReadOnlySpan<float> image, int ch, int H, int W, int p, Span<float> patches)
    {
        int gw = W / p, K = ch * p * p;
        for (int gy = 0; gy < H / p; gy++)
        {
            for (int gx = 0; gx < gw; gx++)
            {
                var patch = patches.Slice((gy * gw + gx) * K, K);
                for (int c = 0; c < ch; c++)
                {
                    for (int ky = 0; ky < p; ky++)
                    {
                        image.Slice(c * H * W + (gy * p + ky) * W + gx * p, p).CopyTo(patch.Slice((c * p + ky) * p, p));
                    }
                }
            }
        }
    }

    /// <summary>The position embeddings for an image of <paramref name="height"/>×<paramref name="width"/> pixels, (T, C)
    /// with T = 1 + (height/p)·(width/p): the checkpoint's table at its own size, else its patch rows resized bicubically
    /// (align_corners=False, a = −0.75) to the new grid, as HF's <c>interpolate_pos_encoding</c> does; the CLS row is kept.
    /// Computed once per size.</summary>
    public ReadOnlySpan<float> PositionEmbeddingFor(int height, int width)
    {
        var vision = Config.Vision!;
        int p = vision.PatchSize, G = vision.GridSize, C = Config.DModel;
        if (height % p != 0 || width % p != 0 || height < p || width < p)
        {
            throw new InvalidInputException($"an image of {height}×{width} pixels is not a whole number of {p}×{p} patches: the position embeddings cannot be interpolated to it");
        }
        int gh = height / p, gw = width / p;
        var table = _pos.Span; // (1 + G·G, C)
        if (gh == G && gw == G)
        {
            return table;
        }
        if (!_positionsBySize.TryGetValue((gh, gw), out var resized))
        {
            // class_pos_embed = self.position_embeddings[:, :1]; the patch rows as a (C, G, G) image, interpolated to (C, gh, gw)
            resized = new float[(1 + gh * gw) * C];
            table[..C].CopyTo(resized);
            BicubicResize(table[C..], G, G, C, resized.AsSpan(C), gh, gw);
            _positionsBySize[(gh, gw)] = resized;
        }
        return resized;
    }

    // torch's F.interpolate(mode="bicubic", align_corners=False) on rows of C channels: src (inH·inW, C) → dst (outH·outW, C).
    // Source coordinate x = (i + 0.5)·in/out − 0.5 (not clamped), taps floor(x) − 1 .. floor(x) + 2 clamped to the border,
    // Keys' cubic convolution with a = −0.75 (the same as torch's upsample_bicubic2d), x first, then y; float math as torch's.
    private static void BicubicResize(ReadOnlySpan<float> src, int inH, int inW, int C, Span<float> dst, int outH, int outW)
    {
        Span<float> wy = stackalloc float[4], wx = stackalloc float[4];
        Span<int> iy = stackalloc int[4], ix = stackalloc int[4];
        for (int oy = 0; oy < outH; oy++)
        {
            CubicTaps(oy, inH, outH, iy, wy);
            for (int ox = 0; ox < outW; ox++)
            {
                CubicTaps(ox, inW, outW, ix, wx);
                var o = dst.Slice((oy * outW + ox) * C, C);
                for (int c = 0; c < C; c++)
                {
                    float sum = 0;
                    for (int j = 0; j < 4; j++)
                    {
                        int row = iy[j] * inW;
                        float across = wx[0] * src[(row + ix[0]) * C + c] + wx[1] * src[(row + ix[1]) * C + c]
                            + wx[2] * src[(row + ix[2]) * C + c] + wx[3] * src[(row + ix[3]) * C + c];
                        sum += wy[j] * across;
                    }
                    o[c] = sum;
                }
            }
        }
    }

    private static void CubicTaps(int i, int inSize, int outSize, Span<int> index, Span<float> weight)
    {
        const float A = -0.75f;
        float scale = (float)inSize / outSize;
        float x = scale * (i + 0.5f) - 0.5f;
        int x0 = (int)MathF.Floor(x);
        float t = x - x0;
        // Keys: |s| ≤ 1: (A+2)|s|³ − (A+3)|s|² + 1;  1 < |s| < 2: A|s|³ − 5A|s|² + 8A|s| − 4A
        static float Near(float s) => ((A + 2) * s - (A + 3)) * s * s + 1;
        static float Far(float s) => ((A * s - 5 * A) * s + 8 * A) * s - 4 * A;
        weight[0] = Far(t + 1);
        weight[1] = Near(t);
        weight[2] = Near(1 - t);
        weight[3] = Far(2 - t);
        for (int j = 0; j < 4; j++)
        {
            index[j] = Math.Clamp(x0 - 1 + j, 0, inSize - 1);
        }
    }

    protected override (Weight W, WeightLayout Layout) OutputProjection(int layer) => (_blocks[layer].Wo, WeightLayout.OutIn);

    protected override void Block(int l)
    {
        int N = Step.N, C = Config.DModel;
        var blk = _blocks[l];
        HookResid(l, HookKind.ResidPre, S.X);

        // self.layernorm_before(hidden_states)  # in ViT, layernorm is applied before self-attention
        Norm(l, HookKind.Ln1Scale, S.X, blk.Ln1W, blk.Ln1B, S.XNorm);

        // key_layer = self.key(hidden_states); value_layer = ...; query_layer = ...  (bias=config.qkv_bias)
        Linear(S.XNorm, C, blk.Wq, blk.Bq, S.Q, C, WeightLayout.OutIn);
        Linear(S.XNorm, C, blk.Wk, blk.Bk, S.K, C, WeightLayout.OutIn);
        Linear(S.XNorm, C, blk.Wv, blk.Bv, S.V, C, WeightLayout.OutIn);

        // softmax(query·keyᵀ · scaling) · value with is_causal = False (Config.Bidirectional), then attention.output.dense
        Attention(l, blk.Wo, blk.Bo, WeightLayout.OutIn, S.Tmp);

        // hidden_states = attention_output + hidden_states  (first residual connection)
        Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
        HookResid(l, HookKind.ResidMid, S.X);
        MlpSublayer(l);
    }

    protected override void MlpSublayer(int l)
    {
        int N = Step.N, C = Config.DModel, F = Config.DMlp;
        var blk = _blocks[l];

        // layer_output = self.layernorm_after(hidden_states); self.intermediate(layer_output): dense + hidden_act
        Norm(l, HookKind.Ln2Scale, S.X, blk.Ln2W, blk.Ln2B, S.XNorm);
        Linear(S.XNorm, C, blk.Up, blk.UpB, S.Hidden, F, WeightLayout.OutIn);
        Hook(l, HookKind.MlpPre, S.Hidden, Step.B, Step.T, F);
        Activate(S.Hidden);
        Hook(l, HookKind.MlpPost, S.Hidden, Step.B, Step.T, F);
        Linear(S.Hidden, F, blk.Down, blk.DownB, S.Tmp, C, WeightLayout.OutIn);
        HookResid(l, HookKind.MlpOut, S.Tmp);

        // hidden_states = hidden_states + input_tensor  (second residual connection, in ViTOutput)
        Add(S.X.AsSpan(0, N * C), S.Tmp.AsSpan(0, N * C), S.X.AsSpan(0, N * C));
        HookResid(l, HookKind.ResidPost, S.X);
    }

    protected override void FinalNorm()
    {
        // sequence_output = self.layernorm(sequence_output); then logits = self.classifier(sequence_output[:, 0, :])
        Norm(HookPoint.ModelLevel, HookKind.LnFinalScale, S.X, _lnFW, _lnFB, S.XNorm);
        ClearPrunedRows();
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The canonical weights: the blocks and the head; a ViT has no token embedding

    /// <summary>A ViT reads patches, not tokens: there is no W_E (analyses that need one refuse the model).</summary>
    public override Weight TokenEmbedding => throw new InvalidInputException(
        $"{Weights.Source}: a ViT has no token embedding (its input is image patches); this analysis needs a language model");

    /// <summary>W_pos (1 + G·G, C) at the checkpoint's image size; row 0 is the CLS's.</summary>
    public override Weight? PositionEmbedding => _pos;

    public override (Weight W, Weight? Bias) Unembedding => (_head, _headB);

    protected override (Weight W, Weight? Bias) NormTensors(int layer, HookKind site) => site switch
    {
        HookKind.Ln1Scale => (_blocks[layer].Ln1W, _blocks[layer].Ln1B),
        HookKind.Ln2Scale => (_blocks[layer].Ln2W, _blocks[layer].Ln2B),
        _ => (_lnFW, _lnFB),
    };

    public override AttentionWeights GetAttentionWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, NH = Config.NHeads, HD = Config.DHead;
        float[]? HeadBias(Weight? b) => b is null ? null : ReadHeadBias(b.Span, NH, 0, HD, HD);
        return new AttentionWeights(NH, NH, C, HD,
            ReadHeads(blk.Wq.Span, WeightLayout.OutIn, C, NH, 0, HD, C, HD),
            ReadHeads(blk.Wk.Span, WeightLayout.OutIn, C, NH, 0, HD, C, HD),
            ReadHeads(blk.Wv.Span, WeightLayout.OutIn, C, NH, 0, HD, C, HD),
            OutputWeightsPerHead(layer), HeadBias(blk.Bq), HeadBias(blk.Bk), HeadBias(blk.Bv), blk.Bo.ToArray());
    }

    // intermediate.dense (F, C) and output.dense (C, F) are nn.Linear: transposed into x·W
    public override MlpWeights GetMlpWeights(int layer)
    {
        var blk = _blocks[RequireLayer(layer)];
        int C = Config.DModel, F = Config.DMlp;
        return new MlpWeights(Transposed(blk.Up.Span, F, C), blk.UpB.ToArray(), null, null, Transposed(blk.Down.Span, C, F), blk.DownB.ToArray());
    }

    /// <summary>Canonical weights hold no patch embedding or CLS token, so they cannot make a ViT checkpoint.</summary>
    internal static IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> CheckpointTensors(CanonicalWeights w) =>
        throw new InvalidInputException("a ViT checkpoint cannot be written from canonical weights: they hold no patch embedding or CLS token");
}
