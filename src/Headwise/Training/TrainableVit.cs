using Headwise.Models;
using Headwise.Training.Layers;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training;

/// <summary>The shape of a <see cref="TrainableVit"/>: square images of <see cref="Channels"/> channels cut into
/// <see cref="PatchSize"/>² patches, <see cref="NLayers"/> pre-LayerNorm blocks of <see cref="NHeads"/> bidirectional heads.</summary>
public sealed record VitTrainingConfig(int ImageSize = 28, int PatchSize = 7, int Channels = 1, int DModel = 64, int NLayers = 4,
    int NHeads = 4, int MlpWidth = 256, int Labels = 10, float NormEps = 1e-6f)
{
    /// <summary>Patches per side, G = image_size / patch_size.</summary>
    public int Grid => ImageSize / PatchSize;

    /// <summary>T = 1 + G²: the CLS, then the patches row by row.</summary>
    public int SeqLen => 1 + Grid * Grid;

    /// <summary>The flattened patch, channel · p · p values (the conv kernel's (channel, ky, kx) order).</summary>
    public int PatchDim => Channels * PatchSize * PatchSize;

    /// <summary>One image's pixel values, channel · H · W.</summary>
    public int ImageDim => Channels * ImageSize * ImageSize;

    public void Validate()
    {
        string? problem =
            PatchSize <= 0 || ImageSize % PatchSize != 0 ? $"image size {ImageSize} is not a whole number of {PatchSize}-pixel patches"
            : Channels <= 0 ? "channels must be positive"
            : DModel <= 0 || NHeads <= 0 || DModel % NHeads != 0 ? $"d_model {DModel} is not a multiple of the {NHeads} heads"
            : NLayers <= 0 ? "layers must be positive"
            : MlpWidth <= 0 ? "the MLP width must be positive"
            : Labels < 2 ? "a classifier needs at least 2 labels"
            : null;
        if (problem is not null) throw new InvalidInputException($"ViT training config: {problem}");
    }
}

/// <summary>
/// A Vision Transformer that trains (HF <c>ViTForImageClassification</c>, <see cref="Vit"/>'s architecture): the stride-p
/// patch convolution as one linear map of each flattened patch, a CLS token in front, learned positions, pre-LayerNorm
/// blocks with bidirectional attention and a GELU (tanh, <c>gelu_new</c>) MLP, the final LayerNorm and the classifier on
/// the CLS, cross-entropy over the labels. Forward saves the activations; <see cref="Backward"/> adds into
/// <see cref="Grads"/> (every layer's backward is checked by finite differences in the tests).
/// Parameters are named with Hugging Face's tensor names and shapes, so export is a plain write (TrainableVit.Export.cs).
/// </summary>
/// <remarks>Legend (Layers/Par.cs): B images, P = G² patches, T = 1 + P tokens, N = B·T rows, C = d_model, NH heads of
/// HD = C / NH, F = MLP width, KP = channels·p·p the flattened patch, NL labels.</remarks>
public sealed partial class TrainableVit
{
    private sealed class Block
    {
        // parameter offsets
        public int Ln1W, Ln1B, Wq, Bq, Wk, Bk, Wv, Bv, Wo, Bo, Ln2W, Ln2B, WIn, BIn, WOut, BOut;
        // activations saved for the backward: the block input (N, C), layernorm_before (N, C) with its mean, rstd (N),
        // q, k, v, z (N, C), the pattern (B, NH, T, T), the residual after attention (N, C), layernorm_after, the MLP's
        // pre-activation and GELU (N, F)
        public float[] X = [], Ln1 = [], Ln1Mean = [], Ln1Rstd = [], Q = [], K = [], V = [], Att = [], Z = [];
        public float[] X1 = [], Ln2 = [], Ln2Mean = [], Ln2Rstd = [], H = [], G = [];
    }

    private readonly List<ParameterInfo> _params = [];
    private readonly Dictionary<string, ParameterInfo> _byName = [];
    private readonly Block[] _blocks;
    private readonly int C, L, NH, HD, F, NL, P, T, KP, p, G, ch, S;
    private readonly int _patchW, _patchB, _cls, _pos, _lnfW, _lnfB, _headW, _headB;

    // activations and scratch for the current batch of B images
    private int _B;
    private int[] _labels = [];
    private float[] _patches = [], _emb = [], _xOut = [], _clsRows = [], _lnf = [], _lnfMean = [], _lnfRstd = [], _logits = [], _probs = [], _losses = [];
    private float[] _tmp = [], _dX = [], _dLn = [], _dQ = [], _dK = [], _dV = [], _dZ = [], _dH = [], _dG = [], _dLnf = [], _dCls = [], _dEmb = [];
    private float[] _scratchT = [], _scratchP = [];
    private int _capacity;

    public VitTrainingConfig Config { get; }

    /// <summary>All parameters, flat, in the order of <see cref="Parameters"/>.</summary>
    public float[] Params { get; }

    /// <summary>Gradients laid out like <see cref="Params"/>; <see cref="Backward"/> adds into them.</summary>
    public float[] Grads { get; }

    public IReadOnlyList<ParameterInfo> Parameters => _params;

    /// <summary>The logits of the last forward, (B, NL).</summary>
    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _B * NL);

    /// <summary>Builds the model; weights drawn from <paramref name="seed"/> as HF's ViT initialises them (normal, σ = 0.02;
    /// biases 0, LayerNorm γ = 1).</summary>
    public TrainableVit(VitTrainingConfig config, ulong seed = 0)
    {
        config.Validate();
        Config = config;
        C = config.DModel; L = config.NLayers; NH = config.NHeads; HD = C / NH; F = config.MlpWidth; NL = config.Labels;
        p = config.PatchSize; G = config.Grid; P = G * G; T = config.SeqLen; ch = config.Channels; KP = config.PatchDim;
        S = config.ImageSize;
        int offset = 0;
        int Add(string name, int[] shape, bool decay)
        {
            var info = new ParameterInfo(name, offset, shape, decay);
            _params.Add(info);
            _byName[name] = info;
            offset = checked(offset + info.Length);
            return info.Offset;
        }
        // HF's names: ViTForImageClassification nests the ViTModel under "vit."
        _cls = Add("vit.embeddings.cls_token", [1, 1, C], false);
        _pos = Add("vit.embeddings.position_embeddings", [1, T, C], false);
        _patchW = Add("vit.embeddings.patch_embeddings.projection.weight", [C, ch, p, p], true);
        _patchB = Add("vit.embeddings.patch_embeddings.projection.bias", [C], false);
        _blocks = new Block[L];
        for (int l = 0; l < L; l++)
        {
            string b = $"vit.encoder.layer.{l}.", a = b + "attention.attention.";
            _blocks[l] = new Block
            {
                Ln1W = Add(b + "layernorm_before.weight", [C], false),
                Ln1B = Add(b + "layernorm_before.bias", [C], false),
                Wq = Add(a + "query.weight", [C, C], true),
                Bq = Add(a + "query.bias", [C], false),
                Wk = Add(a + "key.weight", [C, C], true),
                Bk = Add(a + "key.bias", [C], false),
                Wv = Add(a + "value.weight", [C, C], true),
                Bv = Add(a + "value.bias", [C], false),
                Wo = Add(b + "attention.output.dense.weight", [C, C], true),
                Bo = Add(b + "attention.output.dense.bias", [C], false),
                Ln2W = Add(b + "layernorm_after.weight", [C], false),
                Ln2B = Add(b + "layernorm_after.bias", [C], false),
                WIn = Add(b + "intermediate.dense.weight", [F, C], true),
                BIn = Add(b + "intermediate.dense.bias", [F], false),
                WOut = Add(b + "output.dense.weight", [C, F], true),
                BOut = Add(b + "output.dense.bias", [C], false),
            };
        }
        _lnfW = Add("vit.layernorm.weight", [C], false);
        _lnfB = Add("vit.layernorm.bias", [C], false);
        _headW = Add("classifier.weight", [NL, C], true);
        _headB = Add("classifier.bias", [NL], false);
        Params = new float[offset];
        Grads = new float[offset];
        var rng = new TrainingRng(seed);
        foreach (var info in _params)
        {
            var span = Params.AsSpan(info.Offset, info.Length);
            if (info.Name.EndsWith("layernorm_before.weight", StringComparison.Ordinal) || info.Name.EndsWith("layernorm_after.weight", StringComparison.Ordinal)
                || info.Name == "vit.layernorm.weight")
            {
                span.Fill(1f);
            }
            else if (info.Shape.Length > 1)
            {
                for (int i = 0; i < span.Length; i++) span[i] = (float)(0.02 * rng.NextGaussian());
            }
        }
    }

    /// <summary>The parameter <paramref name="name"/> (a view of <see cref="Params"/>).</summary>
    public Span<float> Param(string name) => _byName.TryGetValue(name, out var info)
        ? Params.AsSpan(info.Offset, info.Length) : throw new InvalidInputException($"TrainableVit: no parameter '{name}'");

    /// <summary>The gradient of the parameter <paramref name="name"/>.</summary>
    public Span<float> Grad(string name) => Grads.AsSpan(_byName[name].Offset, _byName[name].Length);

    public void ZeroGrad() => Array.Clear(Grads);

    private Span<float> W(int offset, int length) => Params.AsSpan(offset, length);

    private Span<float> D(int offset, int length) => Grads.AsSpan(offset, length);

    private void Ensure(int B)
    {
        _B = B;
        if (B <= _capacity)
        {
            return;
        }
        _capacity = B;
        int N = B * T;
        _labels = new int[B];
        _patches = new float[B * P * KP];
        _emb = new float[B * P * C];
        foreach (var b in _blocks)
        {
            b.X = new float[N * C]; b.Ln1 = new float[N * C]; b.Ln1Mean = new float[N]; b.Ln1Rstd = new float[N];
            b.Q = new float[N * C]; b.K = new float[N * C]; b.V = new float[N * C]; b.Att = new float[B * NH * T * T]; b.Z = new float[N * C];
            b.X1 = new float[N * C]; b.Ln2 = new float[N * C]; b.Ln2Mean = new float[N]; b.Ln2Rstd = new float[N];
            b.H = new float[N * F]; b.G = new float[N * F];
        }
        _xOut = new float[N * C];
        _clsRows = new float[B * C]; _lnf = new float[B * C]; _lnfMean = new float[B]; _lnfRstd = new float[B];
        _logits = new float[B * NL]; _probs = new float[B * NL]; _losses = new float[B];
        _tmp = new float[N * C]; _dX = new float[N * C]; _dLn = new float[N * C];
        _dQ = new float[N * C]; _dK = new float[N * C]; _dV = new float[N * C]; _dZ = new float[N * C];
        _dH = new float[N * F]; _dG = new float[N * F]; _dLnf = new float[B * C]; _dCls = new float[B * C]; _dEmb = new float[B * P * C];
        // Linear.Backward's scratch for the largest layer: the MLP (N rows × F), the patch embedding (B·P rows × KP)
        long t = Math.Max(Math.Max((long)F * N, (long)C * N), (long)C * B * P);
        long prod = new[] { (long)F * C, (long)N * F, (long)N * C, (long)B * P * KP, (long)C * KP, (long)NL * C, (long)B * C }.Max();
        _scratchT = new float[t];
        _scratchP = new float[prod];
    }

    /// <summary>
    /// The forward of B images (pixels (B, channels, H, W), already preprocessed); with <paramref name="labels"/> the mean
    /// cross-entropy, which <see cref="Backward"/> then differentiates, else NaN. The logits are in <see cref="Logits"/>.
    /// </summary>
    public float Forward(ReadOnlySpan<float> pixels, int B, ReadOnlySpan<int> labels = default)
    {
        if (B <= 0 || pixels.Length != B * Config.ImageDim)
        {
            throw new InvalidInputException($"TrainableVit.Forward: {pixels.Length} pixel values are not {B} images of {Config.ImageDim} ({ch}×{S}×{S})");
        }
        Ensure(B);
        int N = B * T;
        // embeddings = self.projection(pixel_values).flatten(2).transpose(1, 2): the stride-p conv is a linear map of each
        // flattened patch (B·P, KP) with the kernel (C, KP)
        for (int b = 0; b < B; b++)
        {
            Vit.Patchify(pixels.Slice(b * Config.ImageDim, Config.ImageDim), ch, S, S, p, _patches.AsSpan(b * P * KP, P * KP));
        }
        Linear.Forward(_patches, W(_patchW, C * KP), W(_patchB, C), _emb, B * P, KP, C);
        // embeddings = cat(cls_token, embeddings) + position_embeddings
        var pos = W(_pos, T * C);
        var x0 = _blocks[0].X;
        for (int b = 0; b < B; b++)
        {
            K.Add(W(_cls, C), pos[..C], x0.AsSpan(b * T * C, C));
            K.Add(_emb.AsSpan(b * P * C, P * C), pos[C..], x0.AsSpan((b * T + 1) * C, P * C));
        }
        for (int l = 0; l < L; l++)
        {
            BlockForward(l, N, l + 1 < L ? _blocks[l + 1].X : _xOut);
        }
        // sequence_output = self.layernorm(sequence_output); logits = self.classifier(sequence_output[:, 0, :]) — the
        // final norm is per row, so only the CLS rows need it
        for (int b = 0; b < B; b++) _xOut.AsSpan(b * T * C, C).CopyTo(_clsRows.AsSpan(b * C, C));
        LayerNorm.Forward(_clsRows, W(_lnfW, C), W(_lnfB, C), _lnf, _lnfMean, _lnfRstd, B, C, Config.NormEps);
        Linear.Forward(_lnf.AsSpan(0, B * C), W(_headW, NL * C), W(_headB, NL), _logits, B, C, NL);
        if (labels.IsEmpty) return float.NaN;
        if (labels.Length != B) throw new InvalidInputException($"TrainableVit.Forward: {labels.Length} labels for {B} images");
        labels.CopyTo(_labels);
        return CrossEntropy.Forward(_logits.AsSpan(0, B * NL), _labels.AsSpan(0, B), _probs, _losses, B, NL);
    }

    // x (N, C) → output (N, C): one pre-LayerNorm block, as HF's ViTLayer
    private void BlockForward(int l, int N, float[] output)
    {
        var b = _blocks[l];
        int B = _B;
        // self.layernorm_before(hidden_states)
        LayerNorm.Forward(b.X, W(b.Ln1W, C), W(b.Ln1B, C), b.Ln1, b.Ln1Mean, b.Ln1Rstd, N, C, Config.NormEps);
        // query, key, value: nn.Linear (C, C) with bias; then softmax(q·kᵀ/√HD)·v over every key (no causal mask)
        Linear.Forward(b.Ln1, W(b.Wq, C * C), W(b.Bq, C), b.Q, N, C, C);
        Linear.Forward(b.Ln1, W(b.Wk, C * C), W(b.Bk, C), b.K, N, C, C);
        Linear.Forward(b.Ln1, W(b.Wv, C * C), W(b.Bv, C), b.V, N, C, C);
        Attention.Forward(b.Q, b.K, b.V, b.Att, b.Z, B, T, NH, NH, HD, HD, causal: false);
        // hidden_states = attention.output.dense(z) + hidden_states
        Linear.Forward(b.Z, W(b.Wo, C * C), W(b.Bo, C), _tmp, N, C, C);
        K.Add(b.X.AsSpan(0, N * C), _tmp.AsSpan(0, N * C), b.X1);
        // layer_output = output.dense(gelu(intermediate.dense(layernorm_after(hidden_states)))) + hidden_states
        LayerNorm.Forward(b.X1, W(b.Ln2W, C), W(b.Ln2B, C), b.Ln2, b.Ln2Mean, b.Ln2Rstd, N, C, Config.NormEps);
        Linear.Forward(b.Ln2, W(b.WIn, F * C), W(b.BIn, F), b.H, N, C, F);
        Gelu.Forward(b.H.AsSpan(0, N * F), b.G);
        Linear.Forward(b.G, W(b.WOut, C * F), W(b.BOut, C), _tmp, N, F, C);
        K.Add(b.X1.AsSpan(0, N * C), _tmp.AsSpan(0, N * C), output);
    }

    /// <summary>Adds d(mean cross-entropy of the last labelled <see cref="Forward"/>)/dθ into <see cref="Grads"/>.</summary>
    public void Backward()
    {
        int B = _B, N = B * T;
        // undoes: loss = mean_b CE(logits[b], label[b])  → dlogits in _probs
        CrossEntropy.Backward(_probs, _labels, B, NL, 1f / B);
        // undoes: logits = classifier(lnf)
        Linear.Backward(_probs.AsSpan(0, B * NL), _lnf, W(_headW, NL * C), _dLnf, D(_headW, NL * C), D(_headB, NL), _scratchT, _scratchP, B, C, NL);
        // undoes: lnf = layernorm(cls rows); only the CLS rows of the last residual get a gradient
        Array.Clear(_dCls);
        LayerNorm.Backward(_dLnf, _clsRows, W(_lnfW, C), _lnfMean, _lnfRstd, _dCls, D(_lnfW, C), D(_lnfB, C), B, C);
        Array.Clear(_dX);
        for (int b = 0; b < B; b++) _dCls.AsSpan(b * C, C).CopyTo(_dX.AsSpan(b * T * C, C));
        for (int l = L - 1; l >= 0; l--)
        {
            BlockBackward(l, N);
        }
        // undoes: x0[b, 0] = cls + pos[0],  x0[b, 1 + i] = emb[b, i] + pos[1 + i]
        var dPos = D(_pos, T * C);
        var dCls = D(_cls, C);
        for (int b = 0; b < B; b++)
        {
            var rows = _dX.AsSpan(b * T * C, T * C);
            K.Add(dPos, rows, dPos);
            K.Add(dCls, rows[..C], dCls);
            rows[C..].CopyTo(_dEmb.AsSpan(b * P * C, P * C));
        }
        // undoes: emb = patches·W_patchᵀ + b_patch (the pixels need no gradient)
        Linear.Backward(_dEmb.AsSpan(0, B * P * C), _patches, W(_patchW, C * KP), default, D(_patchW, C * KP), D(_patchB, C),
            _scratchT, _scratchP, B * P, KP, C);
    }

    // dX holds d loss / d (block output) and leaves holding d loss / d (block input)
    private void BlockBackward(int l, int N)
    {
        var b = _blocks[l];
        int B = _B;
        // undoes: out = x1 + G·W_outᵀ + b_out  (dX flows on to x1 unchanged)
        Linear.Backward(_dX.AsSpan(0, N * C), b.G, W(b.WOut, C * F), _dG, D(b.WOut, C * F), D(b.BOut, C), _scratchT, _scratchP, N, F, C);
        // undoes: G = gelu(H)
        Gelu.Backward(_dG.AsSpan(0, N * F), b.H.AsSpan(0, N * F), _dH);
        // undoes: H = ln2·W_inᵀ + b_in
        Linear.Backward(_dH.AsSpan(0, N * F), b.Ln2, W(b.WIn, F * C), _dLn, D(b.WIn, F * C), D(b.BIn, F), _scratchT, _scratchP, N, C, F);
        // undoes: ln2 = layernorm_after(x1); now dX = d loss / d x1
        LayerNorm.Backward(_dLn, b.X1, W(b.Ln2W, C), b.Ln2Mean, b.Ln2Rstd, _dX, D(b.Ln2W, C), D(b.Ln2B, C), N, C);
        // undoes: x1 = x + z·W_oᵀ + b_o
        Linear.Backward(_dX.AsSpan(0, N * C), b.Z, W(b.Wo, C * C), _dZ, D(b.Wo, C * C), D(b.Bo, C), _scratchT, _scratchP, N, C, C);
        // undoes: z = softmax(q·kᵀ/√HD)·v, bidirectional
        Attention.Backward(_dZ, b.Q, b.K, b.V, b.Att, _dQ, _dK, _dV, B, T, NH, NH, HD, HD, causal: false);
        // undoes: q, k, v = ln1·W_{q,k,v}ᵀ + b_{q,k,v}: three paths into d ln1
        Linear.Backward(_dQ.AsSpan(0, N * C), b.Ln1, W(b.Wq, C * C), _dLn, D(b.Wq, C * C), D(b.Bq, C), _scratchT, _scratchP, N, C, C);
        Linear.Backward(_dK.AsSpan(0, N * C), b.Ln1, W(b.Wk, C * C), _dLn, D(b.Wk, C * C), D(b.Bk, C), _scratchT, _scratchP, N, C, C, accumulateDx: true);
        Linear.Backward(_dV.AsSpan(0, N * C), b.Ln1, W(b.Wv, C * C), _dLn, D(b.Wv, C * C), D(b.Bv, C), _scratchT, _scratchP, N, C, C, accumulateDx: true);
        // undoes: ln1 = layernorm_before(x); now dX = d loss / d x
        LayerNorm.Backward(_dLn, b.X, W(b.Ln1W, C), b.Ln1Mean, b.Ln1Rstd, _dX, D(b.Ln1W, C), D(b.Ln1B, C), N, C);
    }
}
