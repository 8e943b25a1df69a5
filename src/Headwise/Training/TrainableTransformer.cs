using Headwise.Compute;
using Headwise.Loading;
using Headwise.Training.Layers;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training;

/// <summary>One named tensor inside <see cref="TrainableTransformer.Parameters"/>: a view of the flat array.</summary>
/// <param name="Decay">Whether AdamW applies weight decay: matrices and embeddings yes, biases and norm weights no.</param>
public sealed record ParameterInfo(string Name, int Offset, int[] Shape, bool Decay)
{
    public int Length => Shape.Aggregate(1, (a, b) => a * b);
}

/// <summary>
/// A GPT-2- or Llama-family transformer that trains: forward with saved activations, backward into a gradient array
/// laid out like the parameters (one flat float[] each, so the optimizer is one loop), and export to a Hugging Face
/// checkpoint that <see cref="ModelLoader.Load"/> reads back with the same logits.
/// </summary>
/// <remarks>
/// Parameter names (all weight matrices in nn.Linear layout (out, in)):
/// <c>wte</c> (V, C) unless OneHotEmbeddings; <c>wpe</c> (T, C) for GPT-2 with UsePositions;
/// <c>blocks.{l}.ln1.weight</c>/<c>.bias</c> (C);
/// <c>blocks.{l}.attn.w_qkv</c> ((NH + 2·NKV)·HD, C), rows q | k | v, and <c>b_qkv</c> for GPT-2 — or, with CombinedOV,
/// <c>blocks.{l}.attn.w_qk</c> ((NH + NKV)·HD, C) (+ <c>b_qk</c>) and <c>blocks.{l}.attn.w_ov</c> (NKV·C, C), one C × C block per head;
/// <c>blocks.{l}.attn.w_o</c> (C, NH·HD) unless CombinedOV, <c>b_o</c> (C) for GPT-2;
/// <c>blocks.{l}.ln2.*</c>; GPT-2 MLP <c>blocks.{l}.mlp.w_in</c> (F, C), <c>b_in</c>, <c>w_out</c> (C, F), <c>b_out</c>;
/// Llama MLP <c>blocks.{l}.mlp.w_gate</c>, <c>w_up</c> (F, C), <c>w_out</c> (C, F);
/// <c>ln_f.weight</c>/<c>.bias</c>; <c>w_u</c> (V, C) unless tied (then the unembedding is <c>wte</c>) or one-hot.
/// GPT-2 biases (<c>b_qkv</c>, <c>b_qk</c>, <c>b_o</c>, <c>b_in</c>, <c>b_out</c>) only with UseBias.
/// Attention variants (docs/variants.md): symmetric_qk has no k rows in <c>w_qkv</c> (k = q), collapsed_qk has q rows of
/// NH·C (one W_QK per head) and no k rows (k = the block input); moh adds <c>blocks.{l}.attn.w_router</c> (NH + 2, C);
/// affine_scaled adds <c>blocks.{l}.attn.w_affine</c> (2·NH, C); gaussian adds <c>blocks.{l}.attn.gauss_mu</c> and
/// <c>attn.gauss_log_var</c> (NH); low_rank adds <c>blocks.{l}.attn.w_down</c> (R, C) and its <c>w_qkv</c> is (QKV, R);
/// relative_conv adds <c>blocks.{l}.attn.conv_qkv</c> (QKV, KW), the rows of <c>w_qkv</c>'s outputs.
/// random_features has v rows only (its W_Q, W_K are frozen, not parameters); dynamic_mask adds <c>attn.w_mask</c>
/// (NH, NKV·HDV) and <c>attn.mask_scale</c> (NH); tensor has rows q | k1 | k2 | v1 | v2 ((NH + 4·NKV)·HD, C).
/// </remarks>
public sealed partial class TrainableTransformer
{
    private sealed class Block
    {
        // parameter offsets (−1 = absent)
        // Wr: moh's router or affine_scaled's projection (a per-token linear map of ln1 that gates the heads' outputs)
        public int Ln1W = -1, Ln1B = -1, Wqkv = -1, Bqkv = -1, Wov = -1, Wo = -1, Bo = -1, Wr = -1, Wm = -1, Am = -1;
        public int WDown = -1, Conv = -1, GaussMu = -1, GaussLogVar = -1;
        public int Ln2W = -1, Ln2B = -1, WIn = -1, BIn = -1, WUp = -1, WOut = -1, BOut = -1;
        // activations saved for the backward
        public float[] Resid = [], Ln1 = [], Ln1Mean = [], Ln1Rstd = [], Q = [], K = [], V = [], Att = [], Z = [];
        public float[] Resid1 = [], Ln2 = [], Ln2Mean = [], Ln2Rstd = [], H = [], G = [], Up = [];
        // moh: router logits (N, NH + 2), gates (N, NH), the heads' outputs before gating (N, NH, HDV)
        public float[] RouterLogits = [], Gates = [], ZRaw = [];
        // low_rank: the shared factor's output (N, R); relative_conv: the projections before the convolution (N, QKV)
        public float[] U = [], QkvRaw = [];
        // dynamic_mask: v·W_Δᵀ and the key strengths δ (N, NH); tensor: the pair weights (B, NH, T, T, T)
        public float[] MaskU = [], MaskDelta = [], Pairs = [];
    }

    private readonly List<ParameterInfo> _params = [];
    private readonly Dictionary<string, ParameterInfo> _byName = [];
    private readonly Block[] _blocks;
    private readonly bool _gpt2, _bias, _rope, _oneHot;
    private readonly string _variant;
    private readonly bool _moh, _affine, _gated, _gaussian, _lowRank, _conv, _rf, _dyn, _tensor;
    // random_features: the frozen W_Q | W_K per layer ((NH + NKV)·HK, C), RF = (NH + NKV)·HK rows
    private readonly float[][] _frozenQk = [];
    private readonly int RF;
    // tensor: two keys and two values per kv head
    private readonly int KM = 1;
    // HK: query/key head size (C for collapsed_qk); HD: the value head size of W_V·W_O (HDV = HD, or C with a combined W_OV)
    // QIn: the input width of w_qkv (C, or the rank R with low_rank); KW: relative_conv's taps
    private readonly int C, L, NH, NKV, HK, HD, HDV, F, V, QK, QKV, RW, QIn, R, KW;
    private readonly int _wte, _wpe = -1, _lnfW = -1, _lnfB = -1, _wu;
    private readonly float[] _cos = [], _sin = [], _eye = [];
    // multi-head latent attention in place of the q/k/v projections (Config.Mla), or null
    private readonly MlaAttention? _mla;

    // activations and scratch for the current (B, T)
    private int _B, _T;
    private int[] _tokens = [], _targets = [], _positions = [];
    private bool _hasTargets;
    private int _counted;
    private float[] _residOut = [], _lnf = [], _lnfMean = [], _lnfRstd = [], _logits = [], _probs = [], _losses = [];
    private float[] _qkv = [], _tmp = [], _dResid = [], _dLn = [], _dQkv = [], _dQ = [], _dK = [], _dV = [], _dZ = [], _dH = [], _dG = [], _dUp = [];
    private float[] _scratchT = [], _scratchP = [], _dRouter = [], _dZRaw = [];
    private float[] _dU = [], _dQkvRaw = [], _scoreBias = [], _dScores = [];
    private float[] _rfQk = [], _dMaskDelta = [], _dMaskU = [], _pairScratch = [], _vecScratch = [];
    private int[] _order = [];
    private readonly int[] _patternSource;         // per layer: the layer whose pattern it uses (itself unless shared)
    private float[][] _patternGrad = [];           // per layer: d loss / d att from the layers reusing its pattern, (B, NH, T, T); else empty

    public TrainableConfig Config { get; }

    /// <summary>All parameters, flat, in the order of <see cref="Parameters"/>.</summary>
    public float[] Params { get; }

    /// <summary>Gradients, laid out like <see cref="Params"/>; <see cref="Backward"/> adds into them.</summary>
    public float[] Grads { get; }

    public IReadOnlyList<ParameterInfo> Parameters => _params;

    /// <summary>Builds the model and initialises its weights from <paramref name="seed"/> (GPT-2 scheme).</summary>
    public TrainableTransformer(TrainableConfig config, ulong seed = 0)
    {
        config.Validate();
        Config = config;
        _gpt2 = config.Architecture == TrainableArchitecture.Gpt2;
        _bias = _gpt2 && config.UseBias;
        _rope = !_gpt2 && config.UsePositions && config.Mla is null;
        _oneHot = config.OneHotEmbeddings;
        C = config.DModel; L = config.NLayers; NH = config.NHeads; NKV = config.KvHeads; HD = config.HeadSize;
        HDV = config.ValueHeadSize; F = config.MlpWidth; V = config.VocabSize;
        _variant = config.AttentionVariant;
        _moh = _variant == AttentionVariants.Moh;
        _affine = _variant == AttentionVariants.AffineScaled;
        _gated = _moh || _affine;
        _gaussian = _variant == AttentionVariants.Gaussian;
        _lowRank = _variant == AttentionVariants.LowRank;
        _conv = _variant == AttentionVariants.RelativeConv;
        HK = config.QueryKeySize;
        RW = _affine ? AffineScaledAttention.ProjectionWidth(NH) : MohAttention.RouterWidth(NH);
        R = config.Rank;
        QIn = _lowRank ? R : C;
        KW = config.ConvKernel;
        _rf = _variant == AttentionVariants.RandomFeatures;
        _dyn = _variant == AttentionVariants.DynamicMask;
        _tensor = _variant == AttentionVariants.Tensor;
        if (_tensor) KM = 2;
        // q rows, then k rows unless the keys are tied to the queries (symmetric_qk) or to the input (collapsed_qk), or
        // frozen outside the parameters (random_features: no q, k rows)
        QK = _variant is AttentionVariants.SymmetricQk or AttentionVariants.CollapsedQk ? NH * HK : _rf ? 0 : (NH + KM * NKV) * HK;
        QKV = config.CombinedOV ? QK : QK + KM * NKV * HD;
        RF = (NH + NKV) * HK;
        if (_rf) _frozenQk = RandomFeaturesAttention.Draw((ulong)config.FeatureSeed, L, NH, NKV, HK, C);
        int offset = 0;
        int Add(string name, int[] shape, bool decay)
        {
            var p = new ParameterInfo(name, offset, shape, decay);
            _params.Add(p);
            _byName[name] = p;
            offset = checked(offset + p.Length);
            return p.Offset;
        }
        _wte = _oneHot ? -1 : Add("wte", [V, C], true);
        if (_gpt2 && config.UsePositions) _wpe = Add("wpe", [config.SeqLen, C], true);
        _blocks = new Block[L];
        var shared = config.SharedGroups is { } groups ? new Loading.SharedAttention(groups) : null;
        _patternSource = [.. Enumerable.Range(0, L).Select(l => shared?.SourceOf(l) ?? l)];
        if (config.Mla is { } mla)
        {
            // every layer's latent-attention projections first, then the rest of the blocks
            _mla = new MlaAttention(mla, C, NH, HD, L, config.SeqLen, config.RopeTheta, (name, shape, decay) => Add(name, shape, decay));
        }
        for (int l = 0; l < L; l++)
        {
            var b = _blocks[l] = new Block();
            string p = $"blocks.{l}.";
            if (config.UseNorm)
            {
                b.Ln1W = Add(p + "ln1.weight", [C], false);
                if (_gpt2) b.Ln1B = Add(p + "ln1.bias", [C], false);
            }
            if (_lowRank) b.WDown = Add(p + "attn.w_down", [R, C], true);
            if (_mla is not null)
            {
                // the latent attention's output bias is attention_bias, in a GPT-2 model too (UseBias is the MLP's there)
                b.Wo = Add(p + "attn.w_o", [C, NH * HD], true);
                if (config.Mla!.AttentionBias) b.Bo = Add(p + "attn.b_o", [C], false);
            }
            else if (config.CombinedOV)
            {
                b.Wqkv = Add(p + "attn.w_qk", [QK, QIn], true);
                if (_bias) b.Bqkv = Add(p + "attn.b_qk", [QK], false);
                b.Wov = Add(p + "attn.w_ov", [NKV * C, C], true);
            }
            else
            {
                b.Wqkv = Add(p + "attn.w_qkv", [QKV, QIn], true);
                if (_bias) b.Bqkv = Add(p + "attn.b_qkv", [QKV], false);
                b.Wo = Add(p + "attn.w_o", [C, NH * HD], true);
            }
            if (_bias && _mla is null) b.Bo = Add(p + "attn.b_o", [C], false);
            if (_moh) b.Wr = Add(p + "attn.w_router", [RW, C], true);
            if (_affine) b.Wr = Add(p + "attn.w_affine", [RW, C], true);
            if (_gaussian)
            {
                b.GaussMu = Add(p + "attn.gauss_mu", [NH], false);
                b.GaussLogVar = Add(p + "attn.gauss_log_var", [NH], false);
            }
            // kernels are not decayed: decay would pull the identity taps toward 0
            if (_conv) b.Conv = Add(p + "attn.conv_qkv", [QKV, KW], false);
            if (_dyn)
            {
                b.Wm = Add(p + "attn.w_mask", [NH, NKV * HDV], true);
                b.Am = Add(p + "attn.mask_scale", [NH], false);
            }
            if (config.AttentionOnly) continue;
            if (config.UseNorm)
            {
                b.Ln2W = Add(p + "ln2.weight", [C], false);
                if (_gpt2) b.Ln2B = Add(p + "ln2.bias", [C], false);
            }
            if (_gpt2)
            {
                b.WIn = Add(p + "mlp.w_in", [F, C], true);
                if (_bias) b.BIn = Add(p + "mlp.b_in", [F], false);
            }
            else
            {
                b.WIn = Add(p + "mlp.w_gate", [F, C], true);
                b.WUp = Add(p + "mlp.w_up", [F, C], true);
            }
            b.WOut = Add(p + "mlp.w_out", [C, F], true);
            if (_bias) b.BOut = Add(p + "mlp.b_out", [C], false);
        }
        if (config.UseNorm)
        {
            _lnfW = Add("ln_f.weight", [C], false);
            if (_gpt2) _lnfB = Add("ln_f.bias", [C], false);
        }
        _wu = _oneHot || config.TiedEmbeddings ? _wte : Add("w_u", [V, C], true);
        Params = new float[offset];
        Grads = new float[offset];
        if (_oneHot)
        {
            _eye = new float[V * C];
            for (int i = 0; i < V; i++) _eye[i * C + i] = 1f;
        }
        if (_rope)
        {
            (_cos, _sin) = K.RopeTables(config.SeqLen, HK, config.RopeTheta);
        }
        Initialize(seed);
    }

    /// <summary>Number of trainable floats.</summary>
    public int ParameterCount => Params.Length;

    /// <summary>The named view of a parameter.</summary>
    public Span<float> Param(string name) => Params.AsSpan(Info(name).Offset, Info(name).Length);

    /// <summary>The named view of a gradient.</summary>
    public Span<float> Grad(string name) => Grads.AsSpan(Info(name).Offset, Info(name).Length);

    public ParameterInfo Info(string name) => _byName.TryGetValue(name, out var p) ? p
        : throw new InvalidInputException($"the model has no parameter '{name}'");

    /// <summary>Re-initialises every weight: matrices N(0, std), residual output projections N(0, std/√(2L)) (unless
    /// ScaleResidualInit is off), norm weights 1, biases 0 (and gaussian's μ, log-variance 0); low_rank's W_down
    /// N(0, 1/√R), so W_up·W_down has the spread of an ordinary W_qkv; relative_conv's kernels the identity.</summary>
    public void Initialize(ulong seed)
    {
        var rng = new TrainingRng(seed);
        float std = Config.InitStd, residStd = Config.ScaleResidualInit ? std / MathF.Sqrt(2 * L) : std;
        foreach (var p in _params)
        {
            var span = Params.AsSpan(p.Offset, p.Length);
            if (p.Shape.Length == 1)
            {
                // norm weights and dynamic_mask's scale a_h start at 1 (a = 0 would make every key strength 1, a tie)
                span.Fill(p.Name.EndsWith(".weight", StringComparison.Ordinal) || p.Name.EndsWith(".mask_scale", StringComparison.Ordinal) ? 1f : 0f);
                continue;
            }
            if (p.Name.EndsWith("attn.conv_qkv", StringComparison.Ordinal))
            {
                span.Clear();
                for (int c = 0; c < p.Shape[0]; c++) span[c * KW] = 1f;
                continue;
            }
            if (p.Name.EndsWith("attn.w_down", StringComparison.Ordinal))
            {
                for (int i = 0; i < span.Length; i++) span[i] = (float)(rng.NextGaussian() / Math.Sqrt(R));
                continue;
            }
            float s = p.Name.EndsWith("attn.w_o", StringComparison.Ordinal) || p.Name.EndsWith("attn.w_ov", StringComparison.Ordinal)
                || p.Name.EndsWith("mlp.w_out", StringComparison.Ordinal) ? residStd : std;
            for (int i = 0; i < span.Length; i++) span[i] = (float)(s * rng.NextGaussian());
        }
    }

    public void ZeroGrad() => Array.Clear(Grads);

    /// <summary>Logits of the last forward: (B, T, V).</summary>
    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _B * _T * V);

    /// <summary>random_features: layer <paramref name="layer"/>'s frozen W_Q | W_K ((NH + NKV)·HD, C), nn.Linear layout; empty otherwise.</summary>
    public ReadOnlySpan<float> FrozenQk(int layer) => _rf ? _frozenQk[layer] : default;

    /// <summary>Attention probabilities of layer <paramref name="layer"/> in the last forward: (B, NH, T, T), row = query.</summary>
    public ReadOnlySpan<float> AttentionPattern(int layer) => _blocks[layer].Att.AsSpan(0, _B * NH * _T * _T);

    /// <summary>
    /// The output-value map of head <paramref name="head"/> in layer <paramref name="layer"/> as a C × C matrix M (row-major,
    /// double) in row-vector convention: the head writes (attention-weighted) x·M into the residual stream (without b_o).
    /// Factored: M = W_V,hᵀ·W_O,hᵀ (rank ≤ head size); combined: the head's W_OV block, transposed.
    /// </summary>
    public double[] OvMatrix(int layer, int head)
    {
        if ((uint)layer >= (uint)L || (uint)head >= (uint)NH)
        {
            throw new InvalidInputException($"no head {layer}.{head} in a model of {L} layers × {NH} heads");
        }
        if (_mla is not null)
        {
            throw new InvalidInputException("a latent-attention (mla) model has no W_V per head: its values are read from the latent");
        }
        var b = _blocks[layer];
        int kvh = head / (NH / NKV);
        var m = new double[C * C];
        if (Config.CombinedOV)
        {
            var ov = P(b.Wov, NKV * C * C).Slice(kvh * C * C, C * C);
            for (int i = 0; i < C; i++)
                for (int j = 0; j < C; j++) m[i * C + j] = ov[j * C + i];
            return m;
        }
        var wqkv = QkvWeights(b);
        var wo = P(b.Wo, C * NH * HD);
        for (int i = 0; i < C; i++)
        {
            for (int j = 0; j < C; j++)
            {
                double s = 0;
                // v_k = Σ_i x_i W_V[k, i];  out_j = Σ_k v_k W_O[j, h·HD + k]
                for (int k = 0; k < HD; k++) s += (double)wqkv[(QK + kvh * HD + k) * C + i] * wo[j * NH * HD + head * HD + k];
                m[i * C + j] = s;
            }
        }
        return m;
    }

    // w_qkv as a (QKV, C) projection of the block input: low_rank's W_up·W_down, else a copy of w_qkv
    private float[] QkvWeights(Block b)
        => _lowRank ? LowRankAttention.Product(P(b.Wqkv, QKV * R), P(b.WDown, R * C), QKV, R, C) : P(b.Wqkv, QKV * C).ToArray();

    /// <summary>Per-token losses of the last forward with targets: (B, T).</summary>
    public ReadOnlySpan<float> TokenLosses => _losses.AsSpan(0, _B * _T);

    private Span<float> P(int offset, int length) => offset < 0 ? default : Params.AsSpan(offset, length);
    private Span<float> G(int offset, int length) => offset < 0 ? default : Grads.AsSpan(offset, length);

    private void Ensure(int B, int T)
    {
        if (B <= 0 || T <= 0 || T > Config.SeqLen)
        {
            throw new InvalidInputException($"batch {B} × sequence {T}: need B ≥ 1 and 1 ≤ T ≤ {Config.SeqLen}");
        }
        if (B == _B && T == _T) return;
        _B = B; _T = T;
        int N = B * T;
        bool norm = Config.UseNorm;
        _tokens = new int[N]; _targets = new int[N]; _positions = new int[N];
        for (int n = 0; n < N; n++) _positions[n] = n % T;
        // residual stream: Resid[l] is the input of block l; the output of block l is Resid[l + 1] (or _residOut)
        var resid = new float[L + 1][];
        for (int l = 0; l <= L; l++) resid[l] = new float[N * C];
        _residOut = resid[L];
        for (int l = 0; l < L; l++)
        {
            var b = _blocks[l];
            b.Resid = resid[l];
            b.Ln1 = norm ? new float[N * C] : b.Resid;
            b.Ln1Mean = new float[N]; b.Ln1Rstd = new float[N];
            b.Q = new float[N * NH * HK]; b.K = new float[N * KM * NKV * HK]; b.V = new float[N * KM * NKV * HDV];
            if (_dyn)
            {
                b.MaskU = new float[N * NH]; b.MaskDelta = new float[N * NH];
            }
            if (_tensor) b.Pairs = new float[(long)B * NH * T * T * T];
            b.Att = new float[B * NH * T * T]; b.Z = new float[N * NH * HDV];
            if (_gated)
            {
                b.RouterLogits = new float[N * RW]; b.Gates = _moh ? new float[N * NH] : []; b.ZRaw = new float[N * NH * HDV];
            }
            if (_lowRank) b.U = new float[N * R];
            if (_conv) b.QkvRaw = new float[N * QKV];
            b.Resid1 = Config.AttentionOnly ? resid[l + 1] : new float[N * C];
            if (!Config.AttentionOnly)
            {
                b.Ln2 = norm ? new float[N * C] : b.Resid1;
                b.Ln2Mean = new float[N]; b.Ln2Rstd = new float[N];
                b.H = new float[N * F]; b.G = new float[N * F]; b.Up = _gpt2 ? [] : new float[N * F];
            }
        }
        _lnf = norm ? new float[N * C] : _residOut;
        _lnfMean = new float[N]; _lnfRstd = new float[N];
        _logits = new float[N * V]; _probs = new float[N * V]; _losses = new float[N];
        _qkv = new float[N * QKV]; _tmp = new float[N * C];
        _dResid = new float[N * C]; _dLn = new float[N * C]; _dQkv = new float[N * QKV];
        _dQ = new float[N * NH * HK]; _dK = new float[N * KM * NKV * HK];
        // a layer whose pattern later layers reuse collects their gradients of it
        _patternGrad = [.. Enumerable.Range(0, L).Select(l => Enumerable.Range(0, L).Any(m => m != l && _patternSource[m] == l) ? new float[B * NH * T * T] : [])];
        if (_gated)
        {
            _dRouter = new float[N * RW]; _dZRaw = new float[N * NH * HDV];
        }
        if (_lowRank) _dU = new float[N * R];
        if (_conv) _dQkvRaw = new float[N * QKV];
        if (_gaussian)
        {
            _scoreBias = new float[NH * T * T]; _dScores = new float[B * NH * T * T];
        }
        if (_rf) _rfQk = new float[N * RF];
        if (_dyn)
        {
            _dMaskDelta = new float[N * NH]; _dMaskU = new float[N * NH]; _order = new int[T];
        }
        if (_tensor)
        {
            _pairScratch = new float[T * T]; _vecScratch = new float[2 * HK + HDV];
        }
        _dV = new float[N * KM * NKV * HDV]; _dZ = new float[N * NH * HDV];
        _dH = new float[N * F]; _dG = new float[N * F]; _dUp = _gpt2 ? [] : new float[N * F];
        long st = 0, sp = 0;
        void Need(int cin, int oc)
        {
            var (t, p) = Linear.ScratchSize(N, cin, oc);
            st = Math.Max(st, t); sp = Math.Max(sp, p);
        }
        Need(C, V); Need(C, QKV); Need(C, RW); Need(C, R); Need(R, QKV); Need(C, NKV * C); Need(NH * HD, C); Need(C, F); Need(F, C); Need(NKV * HDV, NH);
        _scratchT = new float[st]; _scratchP = new float[sp];
        _mla?.Ensure(N);
    }

    /// <summary>
    /// Runs the model on <paramref name="tokens"/> (B, T). With <paramref name="targets"/> (B, T) returns the mean
    /// cross-entropy and keeps what <see cref="Backward"/> needs; without, returns NaN (logits only).
    /// </summary>
    public float Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets, int B, int T)
    {
        Ensure(B, T);
        int N = B * T;
        if (tokens.Length != N || (!targets.IsEmpty && targets.Length != N))
        {
            throw new InvalidInputException($"tokens/targets must hold B·T = {N} ids (got {tokens.Length}/{targets.Length})");
        }
        tokens.CopyTo(_tokens);
        _hasTargets = !targets.IsEmpty;
        if (_hasTargets) targets.CopyTo(_targets);

        Embedding.Forward(_tokens, _oneHot ? _eye : P(_wte, V * C), P(_wpe, T * C), _blocks[0].Resid, N, T, C);
        BlocksForward(B, T);
        // one-hot unembedding: logits = x (C = V)
        if (_oneHot) Array.Copy(_lnf, _logits, N * C);
        else Linear.Forward(_lnf, P(_wu, V * C), default, _logits, N, C, V);
        _counted = _hasTargets ? CrossEntropy.Counted(_targets, N) : 0;
        return _hasTargets ? CrossEntropy.Forward(_logits, _targets, _probs, _losses, N, V) : float.NaN;
    }

    /// <summary>Adds ∂(lossScale · loss)/∂θ of the last forward into <see cref="Grads"/> (use 1/accumulation steps for accumulation).</summary>
    public void Backward(float lossScale = 1f)
    {
        if (!_hasTargets && !_logitGradientGiven)
        {
            throw new InvalidOperationException("Backward needs a Forward with targets first");
        }
        int N = _B * _T, T = _T, B = _B;
        bool norm = Config.UseNorm;
        var sT = _scratchT.AsSpan();
        var sP = _scratchP.AsSpan();
        // undoes: loss = CrossEntropy(logits)  (the probabilities become dlogits in place)
        if (!_logitGradientGiven) CrossEntropy.Backward(_probs, _targets, N, V, _counted == 0 ? 0f : lossScale / _counted);
        // undoes: logits = lnf · W_Uᵀ (one-hot: logits = lnf)
        if (_oneHot) Array.Copy(_probs, _dLn, N * C);
        else Linear.Backward(_probs, _lnf, P(_wu, V * C), _dLn, G(_wu, V * C), default, sT, sP, N, C, V);
        BlocksBackward();
        Embedding.Backward(_dResid, _tokens, G(_wte, V * C), G(_wpe, T * C), N, T, C);
    }

    /// <summary>
    /// Runs the blocks and the final norm on continuous inputs (B, T, C) in place of the token embeddings (no embedding, no
    /// learned positions; RoPE still applies): the icl-regression task of `experiment variants` feeds its (x, y) vectors
    /// here. Returns the final normalised residual stream (B, T, C); <see cref="BackwardInputs"/> takes its gradient.
    /// </summary>
    public ReadOnlySpan<float> ForwardInputs(ReadOnlySpan<float> inputs, int B, int T)
    {
        Ensure(B, T);
        if (inputs.Length != B * T * C)
        {
            throw new InvalidInputException($"inputs must hold B·T·C = {B * T * C} floats (got {inputs.Length})");
        }
        inputs.CopyTo(_blocks[0].Resid);
        _hasTargets = false;
        BlocksForward(B, T);
        return _lnf.AsSpan(0, B * T * C);
    }

    /// <summary>Adds ∂L/∂θ into <see cref="Grads"/> given <paramref name="dOutput"/> = ∂L/∂(the output of the last
    /// <see cref="ForwardInputs"/>), (B, T, C).</summary>
    public void BackwardInputs(ReadOnlySpan<float> dOutput)
    {
        if (dOutput.Length != _B * _T * C)
        {
            throw new InvalidInputException($"the output gradient must hold B·T·C = {_B * _T * C} floats (got {dOutput.Length})");
        }
        dOutput.CopyTo(_dLn);
        BlocksBackward();
    }

    // the blocks and the final norm: Resid of block 0 (B, T, C) → _lnf
    private void BlocksForward(int B, int T)
    {
        int N = B * T;
        bool norm = Config.UseNorm;
        float eps = Config.NormEps;
        for (int l = 0; l < L; l++)
        {
            var b = _blocks[l];
            // attention: ln1 → q, k, v → (RoPE) → causal attention → output projection → residual
            if (norm) NormForward(b.Resid, b.Ln1W, b.Ln1B, b.Ln1, b.Ln1Mean, b.Ln1Rstd, N, eps);
            if (_mla is not null)
            {
                _mla.Forward(l, Params, b.Ln1, b.V, b.Att, b.Z, B, T, _positions);
            }
            else
            {
                ProjectQkv(b, N);
                if (_rf)
                {
                    // random_features: q | k = x·W_frozenᵀ
                    Linear.Forward(b.Ln1, _frozenQk[l], default, _rfQk, N, C, RF);
                    SplitRows(_rfQk, RF, b.Q, 0, NH * HK, N);
                    SplitRows(_rfQk, RF, b.K, NH * HK, NKV * HK, N);
                }
                else SplitRows(_qkv, QKV, b.Q, 0, NH * HK, N);
                if (_variant == AttentionVariants.SymmetricQk) SymmetricQkAttention.Forward(b.Q, b.K, N, NH, HK);
                else if (_variant == AttentionVariants.CollapsedQk) CollapsedQkAttention.Forward(b.Ln1, b.K, N, NH, C);
                else if (!_rf) SplitRows(_qkv, QKV, b.K, NH * HK, KM * NKV * HK, N);
                if (Config.CombinedOV) Linear.Forward(b.Ln1, P(b.Wov, NKV * C * C), default, b.V, N, C, NKV * C);
                else SplitRows(_qkv, QKV, b.V, QK, KM * NKV * HD, N);
                if (_rope)
                {
                    // tensor: k1 and k2 each rotated by their own position
                    Rope.Forward(b.Q, _positions, N, NH, HK, _cos, _sin);
                    Rope.Forward(b.K, _positions, N, KM * NKV, HK, _cos, _sin);
                }
                var z = _gated ? b.ZRaw : b.Z;
                if (_gaussian) GaussianAttention.Bias(P(b.GaussMu, NH), P(b.GaussLogVar, NH), _scoreBias, NH, T, Config.SeqLen);
                if (_variant == AttentionVariants.Linear) LinearAttention.Forward(b.Q, b.K, b.V, b.Att, z, B, T, NH, NKV, HK, HDV);
                else if (_variant == AttentionVariants.Sinkhorn) SinkhornAttention.Forward(b.Q, b.K, b.V, b.Att, z, B, T, NH, NKV, HK, HDV, Config.SinkhornIters);
                else if (_tensor) TensorAttention.Forward(b.Q, b.K, b.V, b.Pairs, b.Att, z, B, T, NH, NKV, HK, HDV, _vecScratch);
                else if (_dyn)
                {
                    // key strengths δ = exp(a·softplus(v·W_Δᵀ)), then top-W keys per query with δ added to their scores
                    Linear.Forward(b.V, P(b.Wm, NH * NKV * HDV), default, b.MaskU, N, NKV * HDV, NH);
                    DynamicMaskAttention.Strengths(b.MaskU, P(b.Am, NH), b.MaskDelta, N, NH);
                    DynamicMaskAttention.Forward(b.Q, b.K, b.V, b.MaskDelta, b.Att, z, B, T, NH, NKV, HK, HDV, Config.KeptKeys, _order);
                }
                else if (_patternSource[l] != l)
                {
                    // shared attention: the source layer's pattern (computed earlier in this pass) with this layer's values
                    var att = _blocks[_patternSource[l]].Att.AsSpan(0, B * NH * T * T);
                    Attention.ForwardReused(att, b.V, z, B, T, NH, NKV, HDV);
                    att.CopyTo(b.Att);
                }
                else Attention.Forward(b.Q, b.K, b.V, b.Att, z, B, T, NH, NKV, HK, HDV, _scoreBias);
            }
            // moh: gates (router) and affine_scaled: scale and offset, both from the block's normalised input
            if (_gated) Linear.Forward(b.Ln1, P(b.Wr, RW * C), default, b.RouterLogits, N, C, RW);
            if (_moh) MohAttention.Forward(b.RouterLogits, b.Gates, b.ZRaw, b.Z, N, NH, HDV, Config.SharedHeads, Config.ActiveHeads);
            if (_affine) AffineScaledAttention.Forward(b.RouterLogits, b.ZRaw, b.V, b.Z, B, T, NH, NKV, HDV);
            if (Config.CombinedOV) SumHeads(b.Z, P(b.Bo, C), _tmp, N);
            else Linear.Forward(b.Z, P(b.Wo, C * NH * HD), P(b.Bo, C), _tmp, N, NH * HD, C);
            K.Add(b.Resid, _tmp, b.Resid1);
            if (Config.AttentionOnly) continue;
            // MLP: ln2 → up (GELU or SwiGLU) → down → residual
            var next = l + 1 < L ? _blocks[l + 1].Resid : _residOut;
            if (norm) NormForward(b.Resid1, b.Ln2W, b.Ln2B, b.Ln2, b.Ln2Mean, b.Ln2Rstd, N, eps);
            Linear.Forward(b.Ln2, P(b.WIn, F * C), P(b.BIn, F), b.H, N, C, F);
            if (_gpt2)
            {
                Gelu.Forward(b.H.AsSpan(0, N * F), b.G);
            }
            else
            {
                Linear.Forward(b.Ln2, P(b.WUp, F * C), default, b.Up, N, C, F);
                SwiGlu.Forward(b.H.AsSpan(0, N * F), b.Up.AsSpan(0, N * F), b.G);
            }
            Linear.Forward(b.G, P(b.WOut, C * F), P(b.BOut, C), _tmp, N, F, C);
            K.Add(b.Resid1, _tmp, next);
        }
        if (norm) NormForward(_residOut, _lnfW, _lnfB, _lnf, _lnfMean, _lnfRstd, N, eps);
    }

    // undoes BlocksForward: _dLn = d(lnf) in, _dResid = d(block 0's input) out
    private void BlocksBackward()
    {
        int N = _B * _T, T = _T, B = _B;
        var sT = _scratchT.AsSpan();
        var sP = _scratchP.AsSpan();
        Array.Clear(_dResid, 0, N * C);
        foreach (var g in _patternGrad)
        {
            Array.Clear(g);
        }
        NormBackward(_dLn, _residOut, _lnfW, _lnfB, _lnfMean, _lnfRstd, _dResid, N);
        for (int l = L - 1; l >= 0; l--)
        {
            var b = _blocks[l];
            if (!Config.AttentionOnly)
            {
                // undoes: next = resid1 + W_out · act(...) — _dResid is d next, and stays d resid1 after the norm adds in
                Linear.Backward(_dResid, b.G, P(b.WOut, C * F), _dG, G(b.WOut, C * F), G(b.BOut, C), sT, sP, N, F, C);
                if (_gpt2)
                {
                    Gelu.Backward(_dG.AsSpan(0, N * F), b.H, _dH);
                    Linear.Backward(_dH, b.Ln2, P(b.WIn, F * C), _dLn, G(b.WIn, F * C), G(b.BIn, F), sT, sP, N, C, F);
                }
                else
                {
                    SwiGlu.Backward(_dG.AsSpan(0, N * F), b.H, b.Up, _dH, _dUp);
                    Linear.Backward(_dH, b.Ln2, P(b.WIn, F * C), _dLn, G(b.WIn, F * C), default, sT, sP, N, C, F);
                    Linear.Backward(_dUp, b.Ln2, P(b.WUp, F * C), _dLn, G(b.WUp, F * C), default, sT, sP, N, C, F, accumulateDx: true);
                }
                NormBackward(_dLn, b.Resid1, b.Ln2W, b.Ln2B, b.Ln2Mean, b.Ln2Rstd, _dResid, N);
            }
            // undoes: resid1 = resid + attn_out
            if (Config.CombinedOV) SumHeadsBackward(_dResid, G(b.Bo, C), _dZ, N);
            else Linear.Backward(_dResid, b.Z, P(b.Wo, C * NH * HD), _dZ, G(b.Wo, C * NH * HD), G(b.Bo, C), sT, sP, N, NH * HD, C);
            if (_mla is not null)
            {
                // undoes the latent attention into _dLn (overwritten), its projections' gradients
                _mla.Backward(l, Params, Grads, _dZ, b.Ln1, b.V, b.Att, _dV, _dLn, B, T, _positions);
            }
            else
            {
                var dz = _gated ? _dZRaw : _dZ;
                // undoes the gating: the heads' outputs get g·dz, the router logits the gates' gradient
                if (_moh) MohAttention.Backward(_dZ, b.RouterLogits, b.Gates, b.ZRaw, _dZRaw, _dRouter, N, NH, HDV, Config.SharedHeads, Config.ActiveHeads);
                if (_affine) AffineScaledAttention.Backward(_dZ, b.RouterLogits, b.ZRaw, b.V, _dZRaw, _dRouter, B, T, NH, NKV, HDV);
                if (_variant == AttentionVariants.Linear) LinearAttention.Backward(dz, b.Q, b.K, b.V, b.Att, _dQ, _dK, _dV, B, T, NH, NKV, HK, HDV);
                else if (_variant == AttentionVariants.Sinkhorn) SinkhornAttention.Backward(dz, b.Q, b.K, b.V, b.Att, _dQ, _dK, _dV, B, T, NH, NKV, HK, HDV, Config.SinkhornIters);
                else if (_tensor) TensorAttention.Backward(dz, b.Q, b.K, b.V, b.Pairs, _dQ, _dK, _dV, B, T, NH, NKV, HK, HDV, _pairScratch, _vecScratch);
                else if (_dyn)
                {
                    DynamicMaskAttention.Backward(dz, b.Q, b.K, b.V, b.Att, _dQ, _dK, _dV, _dMaskDelta, B, T, NH, NKV, HK, HDV);
                    // undoes δ = exp(a·softplus(v·W_Δᵀ)): into a, W_Δ and (accumulated) the values
                    DynamicMaskAttention.StrengthsBackward(_dMaskDelta, b.MaskU, P(b.Am, NH), b.MaskDelta, _dMaskU, G(b.Am, NH), N, NH);
                    Linear.Backward(_dMaskU, b.V, P(b.Wm, NH * NKV * HDV), _dV, G(b.Wm, NH * NKV * HDV), default, sT, sP, N, NKV * HDV, NH, accumulateDx: true);
                }
                else if (_patternSource[l] != l)
                {
                    // shared attention: dv here, the pattern's gradient to the source layer (later layers' backward runs first);
                    // this layer's unused q/k rows get none
                    Attention.BackwardReused(dz, b.V, b.Att, _dV, _patternGrad[_patternSource[l]], B, T, NH, NKV, HDV);
                    _dQ.AsSpan(0, N * NH * HK).Clear();
                    _dK.AsSpan(0, N * NKV * HK).Clear();
                }
                else Attention.Backward(dz, b.Q, b.K, b.V, b.Att, _dQ, _dK, _dV, B, T, NH, NKV, HK, HDV, _dScores, dPattern: _patternGrad[l]);
                // the affine offset's path into the values (after the attention's backward, which overwrites dv)
                if (_affine) AffineScaledAttention.BackwardValues(_dZ, b.RouterLogits, _dV, B, T, NH, NKV, HDV);
                if (_gaussian) GaussianAttention.Backward(_dScores, P(b.GaussMu, NH), P(b.GaussLogVar, NH), G(b.GaussMu, NH), G(b.GaussLogVar, NH), B, NH, T, Config.SeqLen);
                if (_rope)
                {
                    Rope.Backward(_dQ, _positions, N, NH, HK, _cos, _sin);
                    Rope.Backward(_dK, _positions, N, KM * NKV, HK, _cos, _sin);
                }
                if (_variant == AttentionVariants.SymmetricQk) SymmetricQkAttention.Backward(_dK, _dQ, N, NH, HK);
                if (_rf)
                {
                    MergeRows(_dQ, _rfQk, RF, 0, NH * HK, N);
                    MergeRows(_dK, _rfQk, RF, NH * HK, NKV * HK, N);
                }
                else MergeRows(_dQ, _dQkv, QKV, 0, NH * HK, N);
                if (_variant is not (AttentionVariants.SymmetricQk or AttentionVariants.CollapsedQk or AttentionVariants.RandomFeatures)) MergeRows(_dK, _dQkv, QKV, NH * HK, KM * NKV * HK, N);
                if (!Config.CombinedOV) MergeRows(_dV, _dQkv, QKV, QK, KM * NKV * HD, N);
                ProjectQkvBackward(b, N, sT, sP);
                if (_rf)
                {
                    // undoes q | k = x·W_frozenᵀ for the input only: dx += d(q | k)·W_frozen; the frozen weights get no gradient
                    var tmp = sP[..(N * C)];
                    K.MatMul(_rfQk, _frozenQk[l], default, tmp, N, RF, C, WeightLayout.InOut);
                    K.Add(_dLn.AsSpan(0, N * C), tmp, _dLn);
                }
                if (Config.CombinedOV)
                {
                    Linear.Backward(_dV, b.Ln1, P(b.Wov, NKV * C * C), _dLn, G(b.Wov, NKV * C * C), default, sT, sP, N, C, NKV * C, accumulateDx: true);
                }
                if (_variant == AttentionVariants.CollapsedQk) CollapsedQkAttention.Backward(_dK, _dLn, N, NH, C);
                if (_gated) Linear.Backward(_dRouter, b.Ln1, P(b.Wr, RW * C), _dLn, G(b.Wr, RW * C), default, sT, sP, N, C, RW, accumulateDx: true);
            }
            NormBackward(_dLn, b.Resid, b.Ln1W, b.Ln1B, b.Ln1Mean, b.Ln1Rstd, _dResid, N);
        }
    }

    // ln1 → _qkv (N, QKV): one projection, or through low_rank's shared factor; relative_conv convolves its outputs along time
    private void ProjectQkv(Block b, int N)
    {
        var qkv = _conv ? b.QkvRaw : _qkv;
        if (_lowRank) LowRankAttention.Forward(b.Ln1, P(b.WDown, R * C), P(b.Wqkv, QKV * R), P(b.Bqkv, QKV), b.U, qkv, N, C, R, QKV);
        else Linear.Forward(b.Ln1, P(b.Wqkv, QKV * C), P(b.Bqkv, QKV), qkv, N, C, QKV);
        if (_conv) RelativeConvAttention.Forward(b.QkvRaw, P(b.Conv, QKV * KW), _qkv, _B, _T, QKV, KW);
    }

    // undoes ProjectQkv: _dQkv → _dLn (overwritten) and the weights' gradients
    private void ProjectQkvBackward(Block b, int N, Span<float> sT, Span<float> sP)
    {
        var dqkv = _dQkv;
        if (_conv)
        {
            RelativeConvAttention.Backward(_dQkv, b.QkvRaw, P(b.Conv, QKV * KW), _dQkvRaw, G(b.Conv, QKV * KW), _B, _T, QKV, KW);
            dqkv = _dQkvRaw;
        }
        if (_lowRank)
        {
            LowRankAttention.Backward(dqkv, b.Ln1, b.U, P(b.WDown, R * C), P(b.Wqkv, QKV * R), _dU, _dLn, G(b.WDown, R * C), G(b.Wqkv, QKV * R),
                G(b.Bqkv, QKV), sT, sP, N, C, R, QKV);
        }
        else Linear.Backward(dqkv, b.Ln1, P(b.Wqkv, QKV * C), _dLn, G(b.Wqkv, QKV * C), G(b.Bqkv, QKV), sT, sP, N, C, QKV);
    }

    private void NormForward(float[] x, int w, int bias, float[] output, float[] mean, float[] rstd, int N, float eps)
    {
        if (_gpt2) LayerNorm.Forward(x, P(w, C), P(bias, C), output, mean, rstd, N, C, eps);
        else RmsNorm.Forward(x, P(w, C), output, rstd, N, C, eps);
    }

    // dout: d(norm output)  dx: += d(norm input); without norms the "norm" is the identity
    private void NormBackward(float[] dout, float[] x, int w, int bias, float[] mean, float[] rstd, float[] dx, int N)
    {
        if (!Config.UseNorm) K.Add(dx.AsSpan(0, N * C), dout.AsSpan(0, N * C), dx);
        else if (_gpt2) LayerNorm.Backward(dout, x, P(w, C), mean, rstd, dx, G(w, C), G(bias, C), N, C);
        else RmsNorm.Backward(dout, x, P(w, C), rstd, dx, G(w, C), N, C);
    }

    // dst (N, width) ← src[n, start .. start + width) with src rows of length stride
    private static void SplitRows(float[] src, int stride, float[] dst, int start, int width, int N)
    {
        for (int n = 0; n < N; n++) Array.Copy(src, n * stride + start, dst, n * width, width);
    }

    private static void MergeRows(float[] src, float[] dst, int stride, int start, int width, int N)
    {
        for (int n = 0; n < N; n++) Array.Copy(src, n * width, dst, n * stride + start, width);
    }

    // combined OV: out[n] = Σ_h z[n, h, :] + b_o     z: (N, NH, C)
    private void SumHeads(float[] z, ReadOnlySpan<float> bias, float[] output, int N)
    {
        for (int n = 0; n < N; n++)
        {
            var o = output.AsSpan(n * C, C);
            if (bias.IsEmpty) o.Clear(); else bias.CopyTo(o);
            for (int h = 0; h < NH; h++) K.Add(o, z.AsSpan((n * NH + h) * C, C), o);
        }
    }

    private void SumHeadsBackward(float[] dout, Span<float> dbias, float[] dz, int N)
    {
        for (int n = 0; n < N; n++)
        {
            var d = dout.AsSpan(n * C, C);
            // undoes: out[n] = Σ_h z[n, h, :] + b_o
            if (!dbias.IsEmpty) K.Add(dbias[..d.Length], d, dbias);
            for (int h = 0; h < NH; h++) d.CopyTo(dz.AsSpan((n * NH + h) * C, C));
        }
    }
}
