using Headwise.Compute;
using Headwise.Loading;
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

    /// <summary>Every head's weights, read from the checkpoint by the family's tensor names.</summary>
    public static HeadWeights[][] Read(ModelConfig c, WeightSet w)
    {
        var result = new HeadWeights[c.NLayers][];
        for (int l = 0; l < c.NLayers; l++)
        {
            result[l] = ReadLayer(c, w, l);
        }
        return result;
    }

    /// <summary>
    /// G = W_U·W_E (d_model × d_model): the direct path from a token's embedding back to logits, summed over the vocabulary,
    /// with the final norm's γ folded into W_U (and centred for LayerNorm). W_E (vocab × d_model) rows are tokens;
    /// W_U (d_model × vocab). The OV circuit of a head, W_E·W_OV·W_U (vocab × vocab), has the same non-zero eigenvalues as
    /// B·G·A for W_OV = A·B, so this d_model² matrix is all the copying score needs.
    /// </summary>
    public static Matrix<double> UnembedEmbed(ModelConfig c, WeightSet w, CancellationToken cancel = default)
    {
        int C = c.DModel, V = c.VocabSize;
        var (headName, normName) = c.Family switch
        {
            ArchitectureFamily.Gpt2 => ("lm_head.weight", Gpt2Prefix(w) + "ln_f.weight"),
            ArchitectureFamily.Llama => ("lm_head.weight", "model.norm.weight"),
            _ => ("embed_out.weight", "gpt_neox.final_layer_norm.weight"),
        };
        var embed = EmbeddingWeight(c, w);
        var head = c.TiedEmbeddings || !w.Contains(headName) ? embed : w.Get(headName, V, C);
        var gamma = w.Get(normName, C).ToArray();
        bool center = c.Family != ArchitectureFamily.Llama;
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

    private static Weight EmbeddingWeight(ModelConfig c, WeightSet w) => c.Family switch
    {
        ArchitectureFamily.Gpt2 => w.Get(Gpt2Prefix(w) + "wte.weight", c.VocabSize, c.DModel),
        ArchitectureFamily.Llama => w.Get("model.embed_tokens.weight", c.VocabSize, c.DModel),
        _ => w.Get("gpt_neox.embed_in.weight", c.VocabSize, c.DModel),
    };

    private static string Gpt2Prefix(WeightSet w) => w.Contains("transformer.ln_f.weight") ? "transformer." : "";

    private static HeadWeights[] ReadLayer(ModelConfig c, WeightSet w, int l)
    {
        int C = c.DModel, H = c.NHeads, D = c.DHead;
        var heads = new HeadWeights[H];
        switch (c.Family)
        {
            case ArchitectureFamily.Gpt2:
                {
                    // c_attn (C, 3C) Conv1D = [W_Q | W_K | W_V], head h is columns h·D .. h·D+D of each third; c_proj (C, C): rows h·D.. are W_O
                    string p = $"{Gpt2Prefix(w)}h.{l}.";
                    var attn = w.Get(p + "attn.c_attn.weight", C, 3 * C);
                    var proj = w.Get(p + "attn.c_proj.weight", C, C);
                    var gamma = w.Get(p + "ln_1.weight", C);
                    for (int h = 0; h < H; h++)
                    {
                        heads[h] = new HeadWeights(new HeadId(l, h),
                            Reading(c, gamma, attn, 3 * C, h * D, D, transposed: false),
                            Reading(c, gamma, attn, 3 * C, C + h * D, D, transposed: false),
                            Reading(c, gamma, attn, 3 * C, 2 * C + h * D, D, transposed: false),
                            Block(proj, C, h * D, D, 0, C));
                    }
                    break;
                }
            case ArchitectureFamily.Llama:
                {
                    // q_proj (NH·D, C), k/v_proj (NKV·D, C), o_proj (C, NH·D), all Linear (out, in): W_Q of head h is rows h·D.. transposed;
                    // with grouped-query attention query head h reads kv head h / (NH / NKV)
                    string p = $"model.layers.{l}.";
                    int kvd = c.NKvHeads * D;
                    var q = w.Get(p + "self_attn.q_proj.weight", H * D, C);
                    var k = w.Get(p + "self_attn.k_proj.weight", kvd, C);
                    var v = w.Get(p + "self_attn.v_proj.weight", kvd, C);
                    var o = w.Get(p + "self_attn.o_proj.weight", C, H * D);
                    var gamma = w.Get(p + "input_layernorm.weight", C);
                    for (int h = 0; h < H; h++)
                    {
                        int kv = h / c.KvGroupSize;
                        heads[h] = new HeadWeights(new HeadId(l, h),
                            Reading(c, gamma, q, C, h * D, D, transposed: true),
                            Reading(c, gamma, k, C, kv * D, D, transposed: true),
                            Reading(c, gamma, v, C, kv * D, D, transposed: true),
                            Block(o, H * D, 0, C, h * D, D).Transpose());
                    }
                    break;
                }
            case ArchitectureFamily.GptNeoX:
                {
                    // query_key_value (3C, C) Linear, rows per head: [q_h (D rows), k_h (D), v_h (D)]; dense (C, C) Linear
                    string p = $"gpt_neox.layers.{l}.";
                    var qkv = w.Get(p + "attention.query_key_value.weight", 3 * C, C);
                    var dense = w.Get(p + "attention.dense.weight", C, C);
                    var gamma = w.Get(p + "input_layernorm.weight", C);
                    for (int h = 0; h < H; h++)
                    {
                        int r = 3 * D * h;
                        heads[h] = new HeadWeights(new HeadId(l, h),
                            Reading(c, gamma, qkv, C, r, D, transposed: true),
                            Reading(c, gamma, qkv, C, r + D, D, transposed: true),
                            Reading(c, gamma, qkv, C, r + 2 * D, D, transposed: true),
                            Block(dense, C, 0, C, h * D, D).Transpose());
                    }
                    break;
                }
        }
        return heads;
    }

    /// <summary>
    /// A reading weight (d_model × d_head) with the norm folded in: diag(γ)·W, then for LayerNorm families each column centred
    /// over the d_model rows. Not transposed: columns <paramref name="first"/>.. of a (d_model, <paramref name="stride"/>) Conv1D;
    /// transposed: rows <paramref name="first"/>.. of a Linear (out, d_model) whose row length is d_model.
    /// </summary>
    private static Matrix<double> Reading(ModelConfig c, Weight gammaWeight, Weight w, int stride, int first, int D, bool transposed)
    {
        int C = c.DModel;
        var s = w.Span;
        var gamma = gammaWeight.Span;
        var data = new double[C * D]; // column-major: data[j·C + i] = W[i, j]
        for (int j = 0; j < D; j++)
        {
            double mean = 0;
            for (int i = 0; i < C; i++)
            {
                double x = gamma[i] * (transposed ? s[(first + j) * C + i] : s[i * stride + first + j]);
                data[j * C + i] = x;
                mean += x;
            }
            if (c.Family != ArchitectureFamily.Llama)
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

    /// <summary>Rows r0.. (nr of them) and columns c0.. (nc) of a row-major (·, stride) weight.</summary>
    private static Matrix<double> Block(Weight w, int stride, int r0, int nr, int c0, int nc)
    {
        var s = w.Span;
        var data = new double[nr * nc];
        for (int i = 0; i < nr; i++)
        {
            for (int j = 0; j < nc; j++)
            {
                data[j * nr + i] = s[(r0 + i) * stride + c0 + j];
            }
        }
        return Matrix<double>.Build.Dense(nr, nc, data);
    }
}

