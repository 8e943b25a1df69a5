namespace Headwise.Training.Experiments;

/// <summary>
/// One layer of multi-head softmax attention read out as a scalar, for in-context linear regression: tokens are
/// zᵢ = (xᵢ, yᵢ) ∈ ℝ^(dx+1) for the N context pairs and the query z_q = (x_q, 0); each head h attends from the query to the
/// context (scores (W_Qᵀz_q)·(W_Kᵀzᵢ)), and the prediction is the last coordinate of Σ_h W_Oᵀ Σᵢ aᵢ W_Vᵀzᵢ. Heads have
/// width <see cref="HeadDim"/>; a single head of width H·dh has the same parameter count as H heads of width dh.
/// Loss: squared error. The backward pass is hand-written and checked against finite differences.
/// </summary>
public sealed class SoftmaxRegressionAttention
{
    public int Dim { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public Param[] Wq { get; }
    public Param[] Wk { get; }
    public Param[] Wv { get; }
    public Param[] Wo { get; }    // [dh × D]; only the last column reaches the prediction
    public IReadOnlyList<Param> Parameters { get; }

    public SoftmaxRegressionAttention(int dim, int heads, int headDim, int seed, double initStd = 0.1)
    {
        Dim = dim;
        Heads = heads;
        HeadDim = headDim;
        var rng = new Random(seed);
        Wq = new Param[heads];
        Wk = new Param[heads];
        Wv = new Param[heads];
        Wo = new Param[heads];
        var ps = new List<Param>();
        for (int h = 0; h < heads; h++)
        {
            ps.Add(Wq[h] = new Param($"h{h}.W_Q", dim, headDim));
            ps.Add(Wk[h] = new Param($"h{h}.W_K", dim, headDim));
            ps.Add(Wv[h] = new Param($"h{h}.W_V", dim, headDim));
            ps.Add(Wo[h] = new Param($"h{h}.W_O", headDim, dim));
        }

        foreach (var p in ps)
        {
            for (int i = 0; i < p.W.Length; i++)
            {
                p.W[i] = initStd * IclRegressionTask.Gaussian(rng);
            }
        }

        Parameters = ps;
    }

    public int ParameterCount => Parameters.Sum(p => p.W.Length);

    /// <summary>KQ matrix W_Q W_Kᵀ of head h, [D×D] (row: query coordinate, column: key coordinate).</summary>
    public double[] KqMatrix(int h)
    {
        var m = new double[Dim * Dim];
        Linalg.MmBt(Wq[h].W, Wk[h].W, m, Dim, HeadDim, Dim);
        return m;
    }

    /// <summary>OV matrix W_V W_O of head h, [D×D] (row: input coordinate, column: output coordinate).</summary>
    public double[] OvMatrix(int h)
    {
        var m = new double[Dim * Dim];
        Linalg.Mm(Wv[h].W, Wo[h].W, m, Dim, HeadDim, Dim);
        return m;
    }

    /// <summary>Prediction for one prompt: <paramref name="context"/> is N×D (rows zᵢ), <paramref name="query"/> is D.
    /// With <paramref name="dPred"/> ≠ 0, adds dPred × ∂prediction/∂θ into the gradients.</summary>
    public double Predict(double[] context, int n, double[] query, double dPred = 0)
    {
        int dd = Dim;
        int dh = HeadDim;
        double pred = 0;
        var q = new double[dh];
        var k = new double[n * dh];
        var v = new double[n * dh];
        var a = new double[n];
        for (int h = 0; h < Heads; h++)
        {
            Linalg.Mm(query, Wq[h].W, q, 1, dd, dh);
            Linalg.Mm(context, Wk[h].W, k, n, dd, dh);
            Linalg.Mm(context, Wv[h].W, v, n, dd, dh);
            double max = double.NegativeInfinity;
            for (int i = 0; i < n; i++)
            {
                double s = 0;
                for (int p = 0; p < dh; p++)
                {
                    s += q[p] * k[(i * dh) + p];
                }

                a[i] = s;
                max = Math.Max(max, s);
            }

            double sum = 0;
            for (int i = 0; i < n; i++)
            {
                a[i] = Math.Exp(a[i] - max);
                sum += a[i];
            }

            var z = new double[dh];
            for (int i = 0; i < n; i++)
            {
                a[i] /= sum;
                for (int p = 0; p < dh; p++)
                {
                    z[p] += a[i] * v[(i * dh) + p];
                }
            }

            var wo = Wo[h].W;
            double out1 = 0;
            for (int p = 0; p < dh; p++)
            {
                out1 += z[p] * wo[(p * dd) + dd - 1];
            }

            pred += out1;
            if (dPred == 0)
            {
                continue;
            }

            // backward for this head
            var dz = new double[dh];
            for (int p = 0; p < dh; p++)
            {
                Wo[h].G[(p * dd) + dd - 1] += dPred * z[p];
                dz[p] = dPred * wo[(p * dd) + dd - 1];
            }

            var da = new double[n];
            double dot = 0;
            for (int i = 0; i < n; i++)
            {
                double s = 0;
                for (int p = 0; p < dh; p++)
                {
                    s += dz[p] * v[(i * dh) + p];
                }

                da[i] = s;
                dot += a[i] * s;
            }

            var dq = new double[dh];
            for (int i = 0; i < n; i++)
            {
                double ds = a[i] * (da[i] - dot);
                for (int p = 0; p < dh; p++)
                {
                    dq[p] += ds * k[(i * dh) + p];
                    double dk = ds * q[p];
                    double dv = a[i] * dz[p];
                    for (int r = 0; r < dd; r++)
                    {
                        double zr = context[(i * dd) + r];
                        Wk[h].G[(r * dh) + p] += zr * dk;
                        Wv[h].G[(r * dh) + p] += zr * dv;
                    }
                }
            }

            for (int r = 0; r < dd; r++)
            {
                for (int p = 0; p < dh; p++)
                {
                    Wq[h].G[(r * dh) + p] += query[r] * dq[p];
                }
            }
        }

        return pred;
    }
}
