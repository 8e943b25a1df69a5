namespace Headwise.Training.Tasks;

/// <summary>Shape and options of an <see cref="AttentionOnlyModel"/>.</summary>
/// <param name="Vocab">token count (inputs and outputs)</param>
/// <param name="DModel">residual width; must equal Vocab when <paramref name="OneHotEmbeddings"/></param>
/// <param name="Layers">attention layers</param>
/// <param name="Heads">heads per layer</param>
/// <param name="HeadDim">query/key (and, factored, value) width per head</param>
/// <param name="Context">longest sequence (size of the learned positional table; 0: no positional embeddings)</param>
/// <param name="FactoredOv">true: W_V [d×dh] then W_O [dh×d] per head; false: one combined W_OV [d×d] per head</param>
/// <param name="OneHotEmbeddings">fixed identity embedding and unembedding (the OCR setting): only attention trains</param>
/// <param name="InitStd">standard deviation of the Gaussian initialization</param>
public sealed record AttentionOnlyConfig(int Vocab, int DModel, int Layers, int Heads, int HeadDim, int Context,
    bool FactoredOv = true, bool OneHotEmbeddings = false, double InitStd = 0.02);

/// <summary>One trainable array: values, gradient, shape.</summary>
public sealed class Param(string name, int rows, int cols, bool trainable = true)
{
    public string Name { get; } = name;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public bool Trainable { get; } = trainable;
    public double[] W { get; } = new double[rows * cols];
    public double[] G { get; } = new double[rows * cols];
}

/// <summary>
/// A small attention-only transformer in double precision with a hand-written backward pass (checked against finite
/// differences in the tests): x₀ = E[token] + P[pos]; x_{l+1} = x_l + Σ_h softmax(causal(x W_Q (x W_K)ᵀ / √dh)) x W_OV;
/// logits = x_L U. No layer norm, no MLP. W_OV is either factored (W_V W_O) or one combined matrix.
/// </summary>
public sealed class AttentionOnlyModel
{
    private readonly Param[] _wq;
    private readonly Param[] _wk;
    private readonly Param[] _wv;   // factored: [d×dh]; combined: W_OV [d×d]
    private readonly Param?[] _wo;  // factored only: [dh×d]

    public AttentionOnlyConfig Config { get; }
    public Param Embed { get; }
    public Param? Pos { get; }
    public Param Unembed { get; }
    public IReadOnlyList<Param> Parameters { get; }

    public AttentionOnlyModel(AttentionOnlyConfig config, int seed)
    {
        Config = config;
        if (config.OneHotEmbeddings && config.DModel != config.Vocab)
        {
            throw new InvalidInputException($"one-hot embeddings need d_model == vocab ({config.DModel} != {config.Vocab}).");
        }

        var rng = new Random(seed);
        int d = config.DModel;
        int nh = config.Layers * config.Heads;
        var ps = new List<Param>();
        Embed = new Param("embed", config.Vocab, d, !config.OneHotEmbeddings);
        Unembed = new Param("unembed", d, config.Vocab, !config.OneHotEmbeddings);
        ps.Add(Embed);
        if (config.Context > 0)
        {
            Pos = new Param("pos", config.Context, d);
            ps.Add(Pos);
        }

        _wq = new Param[nh];
        _wk = new Param[nh];
        _wv = new Param[nh];
        _wo = new Param?[nh];
        for (int i = 0; i < nh; i++)
        {
            string n = $"blocks.{i / config.Heads}.h{i % config.Heads}";
            ps.Add(_wq[i] = new Param(n + ".W_Q", d, config.HeadDim));
            ps.Add(_wk[i] = new Param(n + ".W_K", d, config.HeadDim));
            if (config.FactoredOv)
            {
                ps.Add(_wv[i] = new Param(n + ".W_V", d, config.HeadDim));
                ps.Add((_wo[i] = new Param(n + ".W_O", config.HeadDim, d))!);
            }
            else
            {
                ps.Add(_wv[i] = new Param(n + ".W_OV", d, d));
            }
        }

        ps.Add(Unembed);
        Parameters = ps;
        foreach (var p in ps)
        {
            if (!p.Trainable)
            {
                for (int r = 0; r < Math.Min(p.Rows, p.Cols); r++)
                {
                    p.W[(r * p.Cols) + r] = 1;
                }

                continue;
            }

            for (int i = 0; i < p.W.Length; i++)
            {
                p.W[i] = config.InitStd * Gaussian(rng);
            }
        }
    }

    internal static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble();
        double u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>The combined OV matrix W_V·W_O (or W_OV) of a head, [d×d].</summary>
    public double[] OvMatrix(int layer, int head)
    {
        int i = (layer * Config.Heads) + head;
        if (!Config.FactoredOv)
        {
            return (double[])_wv[i].W.Clone();
        }

        var ov = new double[Config.DModel * Config.DModel];
        Linalg.Mm(_wv[i].W, _wo[i]!.W, ov, Config.DModel, Config.HeadDim, Config.DModel);
        return ov;
    }

    /// <summary>Activations of one forward pass, kept for the backward pass and for analyses.</summary>
    public sealed class Trace
    {
        internal int[] Tokens = [];
        internal double[][] X = [];      // residual before each layer and after the last: [L+1][T×d]
        internal double[][] Q = [];      // per layer·head [T×dh]
        internal double[][] K = [];
        internal double[][] V = [];      // factored [T×dh], combined [T×d]
        internal double[][] A = [];      // [T×T] attention probabilities (row = query)
        internal double[][] Z = [];      // factored: A·V [T×dh]
        public double[] Logits = [];     // [T×vocab]

        /// <summary>Attention pattern of a head, [T×T], row = query position.</summary>
        public double[] Pattern(int layer, int head, int heads) => A[(layer * heads) + head];
    }

    /// <summary>Runs one sequence.</summary>
    public Trace Forward(ReadOnlySpan<int> tokens)
    {
        var c = Config;
        int t = tokens.Length;
        int d = c.DModel;
        int dh = c.HeadDim;
        int nh = c.Heads;
        if (c.Context > 0 && t > c.Context)
        {
            throw new InvalidInputException($"sequence of {t} tokens is longer than the context {c.Context}.");
        }

        var tr = new Trace
        {
            Tokens = tokens.ToArray(),
            X = new double[c.Layers + 1][],
            Q = new double[c.Layers * nh][],
            K = new double[c.Layers * nh][],
            V = new double[c.Layers * nh][],
            A = new double[c.Layers * nh][],
            Z = new double[c.Layers * nh][],
        };
        var x = new double[t * d];
        for (int i = 0; i < t; i++)
        {
            int tok = tokens[i];
            if ((uint)tok >= (uint)c.Vocab)
            {
                throw new InvalidInputException($"token {tok} outside the vocabulary of {c.Vocab}.");
            }

            for (int j = 0; j < d; j++)
            {
                x[(i * d) + j] = Embed.W[(tok * d) + j] + (Pos is null ? 0 : Pos.W[(i * d) + j]);
            }
        }

        tr.X[0] = x;
        double scale = 1.0 / Math.Sqrt(dh);
        for (int l = 0; l < c.Layers; l++)
        {
            var xin = tr.X[l];
            var xout = (double[])xin.Clone();
            for (int h = 0; h < nh; h++)
            {
                int i = (l * nh) + h;
                var q = new double[t * dh];
                var k = new double[t * dh];
                Linalg.Mm(xin, _wq[i].W, q, t, d, dh);
                Linalg.Mm(xin, _wk[i].W, k, t, d, dh);
                var a = new double[t * t];
                for (int r = 0; r < t; r++)
                {
                    double max = double.NegativeInfinity;
                    for (int s = 0; s <= r; s++)
                    {
                        double v = 0;
                        for (int p = 0; p < dh; p++)
                        {
                            v += q[(r * dh) + p] * k[(s * dh) + p];
                        }

                        a[(r * t) + s] = v * scale;
                        max = Math.Max(max, v * scale);
                    }

                    double sum = 0;
                    for (int s = 0; s <= r; s++)
                    {
                        double e = Math.Exp(a[(r * t) + s] - max);
                        a[(r * t) + s] = e;
                        sum += e;
                    }

                    for (int s = 0; s <= r; s++)
                    {
                        a[(r * t) + s] /= sum;
                    }
                }

                tr.Q[i] = q;
                tr.K[i] = k;
                tr.A[i] = a;
                if (c.FactoredOv)
                {
                    var v = new double[t * dh];
                    Linalg.Mm(xin, _wv[i].W, v, t, d, dh);
                    var z = new double[t * dh];
                    Linalg.Mm(a, v, z, t, t, dh);
                    Linalg.Mm(z, _wo[i]!.W, xout, t, dh, d, accumulate: true);
                    tr.V[i] = v;
                    tr.Z[i] = z;
                }
                else
                {
                    var v = new double[t * d];
                    Linalg.Mm(xin, _wv[i].W, v, t, d, d);
                    Linalg.Mm(a, v, xout, t, t, d, accumulate: true);
                    tr.V[i] = v;
                }
            }

            tr.X[l + 1] = xout;
        }

        tr.Logits = new double[t * c.Vocab];
        Linalg.Mm(tr.X[c.Layers], Unembed.W, tr.Logits, t, d, c.Vocab);
        return tr;
    }

    /// <summary>Mean cross-entropy over positions whose target is ≥ 0, and (when <paramref name="backward"/>) adds
    /// <paramref name="weight"/> × its gradient into each parameter's G.</summary>
    public double Loss(Trace tr, ReadOnlySpan<int> targets, bool backward, double weight = 1.0)
    {
        var c = Config;
        int t = tr.Tokens.Length;
        int vsz = c.Vocab;
        int count = 0;
        foreach (int y in targets)
        {
            count += y >= 0 ? 1 : 0;
        }

        if (count == 0)
        {
            return 0;
        }

        double loss = 0;
        var dlogits = backward ? new double[t * vsz] : null;
        for (int i = 0; i < t; i++)
        {
            int y = targets[i];
            if (y < 0)
            {
                continue;
            }

            var row = tr.Logits.AsSpan(i * vsz, vsz);
            double max = double.NegativeInfinity;
            foreach (double v in row)
            {
                max = Math.Max(max, v);
            }

            double sum = 0;
            foreach (double v in row)
            {
                sum += Math.Exp(v - max);
            }

            double lse = max + Math.Log(sum);
            loss += lse - row[y];
            if (dlogits is not null)
            {
                for (int j = 0; j < vsz; j++)
                {
                    dlogits[(i * vsz) + j] = weight * Math.Exp(row[j] - lse) / count;
                }

                dlogits[(i * vsz) + y] -= weight / count;
            }
        }

        if (dlogits is not null)
        {
            Backward(tr, dlogits);
        }

        return loss / count;
    }

    private void Backward(Trace tr, double[] dlogits)
    {
        var c = Config;
        int t = tr.Tokens.Length;
        int d = c.DModel;
        int dh = c.HeadDim;
        int nh = c.Heads;
        double scale = 1.0 / Math.Sqrt(dh);
        if (Unembed.Trainable)
        {
            Linalg.MmAt(tr.X[c.Layers], dlogits, Unembed.G, t, d, c.Vocab, accumulate: true);
        }

        var dx = new double[t * d];
        Linalg.MmBt(dlogits, Unembed.W, dx, t, c.Vocab, d);
        for (int l = c.Layers - 1; l >= 0; l--)
        {
            var xin = tr.X[l];
            var dout = dx;                       // gradient at this layer's output
            var dxin = (double[])dout.Clone();   // residual path
            for (int h = 0; h < nh; h++)
            {
                int i = (l * nh) + h;
                var a = tr.A[i];
                var da = new double[t * t];
                if (c.FactoredOv)
                {
                    var dz = new double[t * dh];
                    Linalg.MmBt(dout, _wo[i]!.W, dz, t, d, dh);
                    Linalg.MmAt(tr.Z[i], dout, _wo[i]!.G, t, dh, d, accumulate: true);
                    Linalg.MmBt(dz, tr.V[i], da, t, dh, t);
                    var dv = new double[t * dh];
                    Linalg.MmAt(a, dz, dv, t, t, dh);
                    Linalg.MmAt(xin, dv, _wv[i].G, t, d, dh, accumulate: true);
                    Linalg.MmBt(dv, _wv[i].W, dxin, t, dh, d, accumulate: true);
                }
                else
                {
                    Linalg.MmBt(dout, tr.V[i], da, t, d, t);
                    var dv = new double[t * d];
                    Linalg.MmAt(a, dout, dv, t, t, d);
                    Linalg.MmAt(xin, dv, _wv[i].G, t, d, d, accumulate: true);
                    Linalg.MmBt(dv, _wv[i].W, dxin, t, d, d, accumulate: true);
                }

                // softmax backward (causal rows), then the 1/√dh scale
                var ds = new double[t * t];
                for (int r = 0; r < t; r++)
                {
                    double dot = 0;
                    for (int s = 0; s <= r; s++)
                    {
                        dot += a[(r * t) + s] * da[(r * t) + s];
                    }

                    for (int s = 0; s <= r; s++)
                    {
                        ds[(r * t) + s] = a[(r * t) + s] * (da[(r * t) + s] - dot) * scale;
                    }
                }

                var dq = new double[t * dh];
                var dk = new double[t * dh];
                Linalg.Mm(ds, tr.K[i], dq, t, t, dh);
                Linalg.MmAt(ds, tr.Q[i], dk, t, t, dh);
                Linalg.MmAt(xin, dq, _wq[i].G, t, d, dh, accumulate: true);
                Linalg.MmAt(xin, dk, _wk[i].G, t, d, dh, accumulate: true);
                Linalg.MmBt(dq, _wq[i].W, dxin, t, dh, d, accumulate: true);
                Linalg.MmBt(dk, _wk[i].W, dxin, t, dh, d, accumulate: true);
            }

            dx = dxin;
        }

        for (int i = 0; i < t; i++)
        {
            int tok = tr.Tokens[i];
            for (int j = 0; j < d; j++)
            {
                if (Embed.Trainable)
                {
                    Embed.G[(tok * d) + j] += dx[(i * d) + j];
                }

                if (Pos is not null)
                {
                    Pos.G[(i * d) + j] += dx[(i * d) + j];
                }
            }
        }
    }
}
