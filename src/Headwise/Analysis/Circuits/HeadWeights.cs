using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Analysis.Circuits;

/// <summary>
/// One head's weights in TransformerLens' row-vector convention (x is a row, x·W_Q is its query):
/// W_Q, W_K, W_V (d_model × d_head), W_O (d_head × d_model), with the attention LayerNorm/RMSNorm weight γ folded into the
/// reading weights (W ← diag(γ)·W) and, for LayerNorm, the reading weights centred over d_model (W ← (I − 11ᵀ/C)·W), as
/// TransformerLens' fold_ln does. Biases, the norm's 1/σ scale and RoPE are left out: these are the circuits of the
/// normalised residual direction, the QK circuit at relative distance 0.
/// </summary>
public sealed record HeadWeights(HeadId Head, Matrix<double> WQ, Matrix<double> WK, Matrix<double> WV, Matrix<double> WO)
{
    /// <summary>W_QK = W_Q W_Kᵀ (d_model × d_model): the attention score of query residual x_q and key residual x_k is x_q W_QK x_kᵀ / √d_head.</summary>
    public FactoredMatrix QK => new(WQ, WK.Transpose());

    /// <summary>W_OV = W_V W_O (d_model × d_model): what a head writes when it attends to a residual x is x W_OV.</summary>
    public FactoredMatrix OV => new(WV, WO);

    /// <summary>Every head's weights, from the model's canonical attention weights and attention norms.</summary>
    public static HeadWeights[][] Read(TransformerModel model)
    {
        var result = new HeadWeights[model.Config.NLayers][];
        for (int l = 0; l < result.Length; l++)
        {
            result[l] = ReadLayer(model, l);
        }
        return result;
    }

    /// <summary>
    /// G = W_U·W_E (d_model × d_model): the direct path from a token's embedding back to logits, summed over the vocabulary,
    /// with the final norm's γ folded into W_U (and centred for LayerNorm). W_E (vocab × d_model) rows are tokens;
    /// W_U (d_model × vocab). The OV circuit of a head, W_E·W_OV·W_U (vocab × vocab), has the same non-zero eigenvalues as
    /// B·G·A for W_OV = A·B, so this d_model² matrix is all the copying score needs.
    /// </summary>
    public static Matrix<double> UnembedEmbed(TransformerModel model, CancellationToken cancel = default)
    {
        var c = model.Config;
        int C = c.DModel, V = c.VocabSize;
        var embed = model.TokenEmbedding;
        var head = model.Unembedding.W;
        var norm = model.FinalNormWeights;
        var gamma = norm.Weight;
        bool center = norm.Kind == NormKind.LayerNorm;
        // G = U·W_E with U[:, v] = centre(γ ⊙ head[v, :]), a sum over the vocabulary taken in chunks through the engine's GEMM
        const int Chunk = 4096;
        var u = new float[C * Math.Min(Chunk, V)];
        var part = new float[C * C];
        var g = new double[C * C];
        for (int v0 = 0; v0 < V; v0 += Chunk)
        {
            cancel.ThrowIfCancellationRequested();
            int n = Math.Min(Chunk, V - v0);
            var hs = head.Span;
            for (int v = 0; v < n; v++)
            {
                var row = hs.Slice((v0 + v) * C, C);
                float mean = 0;
                for (int i = 0; i < C; i++)
                {
                    mean += gamma[i] * row[i];
                }
                mean = center ? mean / C : 0;
                for (int i = 0; i < C; i++)
                {
                    u[i * n + v] = gamma[i] * row[i] - mean;
                }
            }
            // part (C × C) = u (C × n) · W_E[v0 .. v0+n] (n × C)
            Kernels.MatMul(u.AsSpan(0, C * n), embed.Span.Slice(v0 * C, n * C), [], part, C, n, C, WeightLayout.InOut);
            for (int i = 0; i < C; i++)
            {
                for (int j = 0; j < C; j++)
                {
                    g[j * C + i] += part[i * C + j]; // MathNet is column-major
                }
            }
        }
        return Matrix<double>.Build.Dense(C, C, g);
    }

    private static HeadWeights[] ReadLayer(TransformerModel model, int l)
    {
        var a = model.GetAttentionWeights(l);
        var norm = model.AttentionNorm(l);
        var heads = new HeadWeights[a.NHeads];
        for (int h = 0; h < heads.Length; h++)
        {
            // with grouped-query attention query head h reads key/value head h / (NH / NKV)
            int kv = a.KvHeadOf(h);
            heads[h] = new HeadWeights(new HeadId(l, h), Reading(norm, a.Q(h), a.DHead), Reading(norm, a.K(kv), a.DHead),
                Reading(norm, a.V(kv), a.DHead), Dense(a.O(h), a.DHead, a.DModel));
        }
        return heads;
    }

    /// <summary>
    /// A reading weight W (C, HD), row-major, with the norm folded in: diag(γ)·W, then for LayerNorm each column centred over the
    /// d_model rows.
    /// </summary>
    private static Matrix<double> Reading(NormWeights norm, ReadOnlySpan<float> w, int D)
    {
        var gamma = norm.Weight;
        int C = gamma.Length;
        var data = new double[C * D]; // column-major: data[j·C + i] = W[i, j]
        for (int j = 0; j < D; j++)
        {
            double mean = 0;
            for (int i = 0; i < C; i++)
            {
                double x = gamma[i] * w[i * D + j];
                data[j * C + i] = x;
                mean += x;
            }
            if (norm.Kind == NormKind.LayerNorm)
            {
                mean /= C;
                for (int i = 0; i < C; i++)
                {
                    data[j * C + i] -= mean;
                }
            }
        }
        return Matrix<double>.Build.Dense(C, D, data);
    }

    /// <summary>A row-major (rows, cols) array as a matrix.</summary>
    private static Matrix<double> Dense(ReadOnlySpan<float> w, int rows, int cols)
    {
        var data = new double[rows * cols];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                data[j * rows + i] = w[i * cols + j];
            }
        }
        return Matrix<double>.Build.Dense(rows, cols, data);
    }
}
