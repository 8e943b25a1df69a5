using Headwise.Compute;
using Headwise.Loading;

namespace Headwise.Models;

// The canonical weights: one layout for every family, in TransformerLens' convention — activations are row vectors and a
// layer computes x·W (+ b); raw checkpoint values, no norm folding. Each family file converts its own tensors to and from
// these records, so analyses and interventions read and write weights without knowing a single checkpoint name.
//
// Letters: C = d_model, NH = query heads, NKV = key/value heads, HD = d_head, F = d_mlp, V = vocabulary, P = n_ctx.

/// <summary>A norm's parameters: <see cref="NormKind.LayerNorm"/> has a bias, <see cref="NormKind.RmsNorm"/> none.</summary>
/// <param name="Weight">γ, (C).</param>
/// <param name="Bias">β, (C); null for RMSNorm.</param>
public sealed record NormWeights(NormKind Kind, float[] Weight, float[]? Bias, float Eps);

/// <summary>
/// One attention layer, per head: q_h = x·W_Q[h] + b_Q[h], k_j = x·W_K[j] + b_K[j], v_j likewise (j = <see cref="KvHeadOf"/>(h)
/// with grouped-query attention), and attn_out = Σ_h z_h·W_O[h] + b_O. RoPE, when the model has it, rotates q and k after these.
/// </summary>
/// <param name="WQ">(NH, C, HD).</param>
/// <param name="WK">(NKV, C, HD).</param>
/// <param name="WV">(NKV, C, HD).</param>
/// <param name="WO">(NH, HD, C).</param>
/// <param name="BQ">(NH, HD), or null.</param>
/// <param name="BK">(NKV, HD), or null.</param>
/// <param name="BV">(NKV, HD), or null.</param>
/// <param name="BO">(C), or null.</param>
public sealed record AttentionWeights(int NHeads, int NKvHeads, int DModel, int DHead,
    float[] WQ, float[] WK, float[] WV, float[] WO, float[]? BQ, float[]? BK, float[]? BV, float[]? BO)
{
    /// <summary>All zero weights (and zero biases where <paramref name="c"/> has them): a head that attends uniformly and writes nothing.</summary>
    public static AttentionWeights Zero(ModelConfig c)
    {
        int C = c.DModel, NH = c.NHeads, NKV = c.NKvHeads, HD = c.DHead;
        float[]? Bias(bool present, int n) => present ? new float[n] : null;
        return new AttentionWeights(NH, NKV, C, HD, new float[NH * C * HD], new float[NKV * C * HD], new float[NKV * C * HD],
            new float[NH * HD * C], Bias(c.QkvBias, NH * HD), Bias(c.QkvBias, NKV * HD), Bias(c.QkvBias, NKV * HD), Bias(c.OutputBias, C));
    }

    /// <summary>The key/value head query head <paramref name="h"/> reads: h / (NH / NKV).</summary>
    public int KvHeadOf(int h) => h / (NHeads / NKvHeads);

    /// <summary>W_Q[h], (C, HD).</summary>
    public Span<float> Q(int h) => WQ.AsSpan(h * DModel * DHead, DModel * DHead);

    /// <summary>W_K[j], (C, HD), of key/value head j.</summary>
    public Span<float> K(int j) => WK.AsSpan(j * DModel * DHead, DModel * DHead);

    /// <summary>W_V[j], (C, HD), of key/value head j.</summary>
    public Span<float> V(int j) => WV.AsSpan(j * DModel * DHead, DModel * DHead);

    /// <summary>W_O[h], (HD, C).</summary>
    public Span<float> O(int h) => WO.AsSpan(h * DHead * DModel, DHead * DModel);
}

/// <summary>
/// One MLP: out = act(x·W_in + b_in)·W_out + b_out, or with a gate (SwiGLU) (act(x·W_gate + b_gate) ⊙ (x·W_in + b_in))·W_out + b_out.
/// hook_pre is the activation's input (x·W_gate when gated), hook_pre_linear x·W_in.
/// </summary>
/// <param name="WIn">(C, F).</param>
/// <param name="BIn">(F), or null.</param>
/// <param name="WGate">(C, F) for a gated MLP, else null.</param>
/// <param name="BGate">(F), or null.</param>
/// <param name="WOut">(F, C).</param>
/// <param name="BOut">(C), or null.</param>
public sealed record MlpWeights(float[] WIn, float[]? BIn, float[]? WGate, float[]? BGate, float[] WOut, float[]? BOut)
{
    /// <summary>All zero (biases too where <paramref name="c"/> has them): an MLP whose output is exactly 0.</summary>
    public static MlpWeights Zero(ModelConfig c)
    {
        int C = c.DModel, F = c.DMlp;
        float[]? Bias(int n) => c.MlpBias ? new float[n] : null;
        return new MlpWeights(new float[C * F], Bias(F), c.GatedMlp ? new float[C * F] : null, c.GatedMlp ? Bias(F) : null, new float[F * C], Bias(C));
    }
}

/// <summary>One block: the norm before attention, attention, the norm before the MLP, the MLP.</summary>
public sealed record LayerWeights(NormWeights AttentionNorm, AttentionWeights Attention, NormWeights MlpNorm, MlpWeights Mlp);

/// <summary>
/// A whole model in the canonical layout: what <see cref="TransformerModel.ToCanonical"/> returns and
/// <see cref="TransformerModel.Create(CanonicalWeights, string?)"/> and <see cref="SaveHf"/> take. Each family names these tensors
/// its own way (its file in Models/ holds the table); the arrays here are owned.
/// </summary>
/// <param name="TokenEmbedding">W_E, (V, C): row t is token t.</param>
/// <param name="PositionEmbedding">W_pos, (P, C), for <see cref="PositionKind.Learned"/> only, else null.</param>
/// <param name="Unembedding">W_U stored (V, C) like nn.Linear, logits = x·W_Uᵀ; null when tied to the token embedding.</param>
public sealed record CanonicalWeights(ModelConfig Config, float[] TokenEmbedding, float[]? PositionEmbedding, LayerWeights[] Layers,
    NormWeights FinalNorm, float[]? Unembedding)
{
    /// <summary>Checks every array's length and that the optional parts are there exactly when the config says so.</summary>
    public void Validate()
    {
        var c = Config;
        c.Validate("canonical weights");
        int C = c.DModel, NH = c.NHeads, NKV = c.NKvHeads, HD = c.DHead, F = c.DMlp, V = c.VocabSize;
        void Need(float[]? a, bool present, long length, string what)
        {
            if (present != a is not null)
            {
                throw new InvalidInputException($"canonical weights: {what} is {(present ? "missing" : "present")}, but the {c.ModelType} config {(present ? "needs" : "has no place for")} it");
            }
            if (a is not null && a.LongLength != length)
            {
                throw new InvalidInputException($"canonical weights: {what} has {a.LongLength} values; the config implies {length}");
            }
        }
        void Norm(NormWeights n, string what)
        {
            if (n.Kind != c.Norm)
            {
                throw new InvalidInputException($"canonical weights: {what} is a {n.Kind}, but the config uses {c.Norm}");
            }
            Need(n.Weight, true, C, what + " weight");
            Need(n.Bias, c.Norm == NormKind.LayerNorm, C, what + " bias");
        }
        Need(TokenEmbedding, true, (long)V * C, "the token embedding W_E");
        Need(PositionEmbedding, c.Positions == PositionKind.Learned, (long)c.MaxPositions * C, "the position embedding W_pos");
        if (Layers.Length != c.NLayers)
        {
            throw new InvalidInputException($"canonical weights: {Layers.Length} layers, but the config has {c.NLayers}");
        }
        for (int l = 0; l < Layers.Length; l++)
        {
            var (ln1, a, ln2, m) = Layers[l];
            string p = $"layer {l} ";
            NH = c.HeadsIn(l); // the layer's own heads when the model is pruned per layer
            NKV = c.KvHeadsIn(l);
            Norm(ln1, p + "attention norm");
            if (a.NHeads != NH || a.NKvHeads != NKV || a.DModel != C || a.DHead != HD)
            {
                throw new InvalidInputException($"canonical weights: {p}attention is sized for {a.NHeads}/{a.NKvHeads} heads of {a.DHead} in {a.DModel}; the config has {NH}/{NKV} of {HD} in {C}");
            }
            Need(a.WQ, true, NH * C * HD, p + "W_Q");
            Need(a.WK, true, NKV * C * HD, p + "W_K");
            Need(a.WV, true, NKV * C * HD, p + "W_V");
            Need(a.WO, true, NH * HD * C, p + "W_O");
            Need(a.BQ, c.QkvBias, NH * HD, p + "b_Q");
            Need(a.BK, c.QkvBias, NKV * HD, p + "b_K");
            Need(a.BV, c.QkvBias, NKV * HD, p + "b_V");
            Need(a.BO, c.OutputBias, C, p + "b_O");
            Norm(ln2, p + "MLP norm");
            Need(m.WIn, true, (long)C * F, p + "W_in");
            Need(m.BIn, c.MlpBias, F, p + "b_in");
            Need(m.WGate, c.GatedMlp, (long)C * F, p + "W_gate");
            Need(m.BGate, c.GatedMlp && c.MlpBias, F, p + "b_gate");
            Need(m.WOut, true, (long)F * C, p + "W_out");
            Need(m.BOut, c.MlpBias, C, p + "b_out");
        }
        Norm(FinalNorm, "final norm");
        Need(Unembedding, !c.TiedEmbeddings, (long)V * C, "the unembedding W_U");
    }

    /// <summary>The checkpoint tensors of this model under its family's Hugging Face names, in the order the family writes them.</summary>
    public IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> ToCheckpointTensors()
    {
        Validate();
        return TransformerModel.FamilyOf(Config).Tensors(this);
    }

    /// <summary>Writes a Hugging Face model directory: model.safetensors (in <paramref name="dtype"/>) and config.json, each atomically.</summary>
    public void SaveHf(string dir, TensorDType dtype = TensorDType.F32)
    {
        // a Hugging Face config has no interleaved RoPE (llama2.c's): write the equivalent rotate-half weights
        if (Config.Positions == PositionKind.Rotary && Config.RopeLayout != RopeLayout.RotateHalf)
        {
            WithRotateHalfRope().SaveHf(dir, dtype);
            return;
        }
        var tensors = ToCheckpointTensors();
        Directory.CreateDirectory(dir);
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" }, dtype);
        HfConfigWriter.Write(Config with { StoredDType = dtype }, Path.Combine(dir, "config.json"));
    }

    /// <summary>
    /// The weights in the form a Hugging Face checkpoint implies: Llama-style checkpoints rotate halves (pairs (i, i + R/2)),
    /// so interleaved RoPE (llama2.c: pairs (2i, 2i + 1)) is rewritten by permuting the first R columns of every W_Q and W_K
    /// head (and their biases) — interleaved pair i becomes the half pair i, whose frequency is the same — and the config says
    /// RotateHalf. q·k and hence every logit stay as they were; hook_q/k see the permuted order. W_Q and W_K (and their
    /// biases) are copied; every other array is shared with this object.
    /// </summary>
    public CanonicalWeights WithRotateHalfRope()
    {
        var c = Config;
        if (c.Positions != PositionKind.Rotary || c.RopeLayout == RopeLayout.RotateHalf)
        {
            return this;
        }
        int R = c.RotaryDims, HD = c.DHead;
        var column = new int[HD]; // new column k takes old column column[k]
        for (int k = 0; k < HD; k++)
        {
            column[k] = k >= R ? k : k < R / 2 ? 2 * k : 2 * (k - R / 2) + 1;
        }
        var row = new float[HD];
        void Permute(float[] w, int heads, int rows)
        {
            // (heads, rows, HD): each row of each head permuted
            for (int r = 0; r < heads * rows; r++)
            {
                var x = w.AsSpan(r * HD, HD);
                for (int k = 0; k < HD; k++)
                {
                    row[k] = x[column[k]];
                }
                row.CopyTo(x);
            }
        }
        var layers = new LayerWeights[Layers.Length];
        for (int l = 0; l < layers.Length; l++)
        {
            var a = Layers[l].Attention;
            a = a with { WQ = (float[])a.WQ.Clone(), WK = (float[])a.WK.Clone(), BQ = (float[]?)a.BQ?.Clone(), BK = (float[]?)a.BK?.Clone() };
            layers[l] = Layers[l] with { Attention = a };
            Permute(a.WQ, a.NHeads, a.DModel);   // (NH, C, HD)
            Permute(a.WK, a.NKvHeads, a.DModel); // (NKV, C, HD)
            if (a.BQ is not null)
            {
                Permute(a.BQ, a.NHeads, 1);      // (NH, HD)
            }
            if (a.BK is not null)
            {
                Permute(a.BK, a.NKvHeads, 1);    // (NKV, HD)
            }
        }
        return this with { Config = c with { RopeLayout = RopeLayout.RotateHalf }, Layers = layers };
    }


    /// <summary>Random weights for a config — norm weights 1, biases 0, matrices N(0, std²) — for benchmarks and tests.</summary>
    public static CanonicalWeights Random(ModelConfig c, int seed = 0, float std = 0.02f)
    {
        var rng = new System.Random(seed);
        float[] Normal(long n)
        {
            var a = new float[n];
            for (long i = 0; i < n; i++)
            {
                a[i] = std * Gaussian(rng);
            }
            return a;
        }
        NormWeights Norm() => new(c.Norm, Ones(c.DModel), c.Norm == NormKind.LayerNorm ? new float[c.DModel] : null, c.NormEps);
        int C = c.DModel, F = c.DMlp, V = c.VocabSize;
        var wte = Normal((long)V * C);
        var wpe = c.Positions == PositionKind.Learned ? Normal((long)c.MaxPositions * C) : null;
        var layers = new LayerWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            var a = AttentionWeights.Zero(c);
            a = a with { WQ = Normal(a.WQ.Length), WK = Normal(a.WK.Length), WV = Normal(a.WV.Length), WO = Normal(a.WO.Length) };
            var m = MlpWeights.Zero(c);
            m = m with { WIn = Normal(m.WIn.Length), WGate = c.GatedMlp ? Normal(m.WIn.Length) : null, WOut = Normal(m.WOut.Length) };
            layers[l] = new LayerWeights(Norm(), a, Norm(), m);
        }
        return new CanonicalWeights(c, wte, wpe, layers, Norm(), c.TiedEmbeddings ? null : Normal((long)V * C));
    }

    /// <summary>n ones: a norm weight that leaves its input's scale alone.</summary>
    public static float[] Ones(int n)
    {
        var a = new float[n];
        Array.Fill(a, 1f);
        return a;
    }

    private static float Gaussian(System.Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
