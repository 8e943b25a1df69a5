using Headwise.Hooks;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Analysis.Vision;

/// <summary>Sparsifiner-style attention: each query attends to <paramref name="KeysPerQuery"/> keys only, chosen by a
/// rank-<paramref name="Rank"/> estimate of its scores (<see cref="Sparsifiner"/>).</summary>
public sealed record SparsifinerPlan(int KeysPerQuery, int Rank)
{
    /// <summary>The default rank: a quarter of the head size (at least 1).</summary>
    public static int DefaultRank(int headSize) => Math.Max(1, headSize / 4);

    /// <summary>The share of the keys each query reads on a sequence of <paramref name="tokens"/> tokens.</summary>
    public double Density(int tokens) => Math.Min(1.0, (double)KeysPerQuery / tokens);
}

/// <summary>
/// Instance-dependent sparse attention for ViTs, after Sparsifiner (Wei et al., 2023): per query, a cheap low-rank
/// estimate of its attention scores picks the top-K keys, and the exact attention runs over those keys only (the others
/// are masked to −∞ before the softmax). Sparsifiner learns its low-rank connectivity predictor; here it is read off the
/// weights, with no training: per head, the truncated SVD of the bilinear form W_QK = W_Q·W_Kᵀ (C × C, rank ≤ HD) keeps
/// its R largest singular directions, W_QK ≈ U_R·Σ_R·V_Rᵀ, and the estimate of query t's score on key j is
/// ((q_t − b_q)·P_q)·((k_j − b_k)·P_k) + b_q·(k_j − b_k), with P_q = W_Q⁺·U_R·Σ_R and P_k = W_K⁺·V_R (HD × R): the
/// rank-R part of x_t·W_QK·x_jᵀ computed from q and k, plus the key-only bias term (terms that depend on the query
/// alone do not change its ranking of keys). At R = HD the estimate is the exact score up to such terms.
/// It runs as hooks: <c>hook_q</c> and <c>hook_k</c> project q and k to rank R, <c>hook_attn_scores</c> masks all but the
/// top-K keys of each query. The exact scores are still computed for every key, so this measures accuracy against
/// density, not speed: a blocked attention kernel that skips the unselected keys is what would make it fast.
/// K ≥ the number of tokens installs nothing: the forward is exactly the dense one.
/// </summary>
public sealed class Sparsifiner
{
    private readonly SparsifinerPlan _plan;
    private readonly int NH, HD, R, L;
    // per layer: P_q, P_k (NH, HD, R), b_q, b_k (NH, HD) or zeros
    private readonly float[][] _pq, _pk, _bq, _bk;
    // scratch of the layer in progress: q̃ (B, T, NH, R), k̃ (B, T, NH, R), the key-only bias term (B, T, NH), one score row
    private float[] _qLow = [], _kLow = [], _kBias = [], _estimate = [];
    private int[] _order = [];

    public SparsifinerPlan Plan => _plan;

    public Sparsifiner(TransformerModel model, SparsifinerPlan plan)
    {
        var c = model.Config;
        NH = c.NHeads;
        HD = c.DHead;
        L = c.NLayers;
        if (c.NKvHeads != NH) throw new InvalidInputException("Sparsifiner attention needs as many key heads as query heads (a ViT)");
        if (plan.KeysPerQuery < 1) throw new InvalidInputException($"Sparsifiner: keys per query must be at least 1, got {plan.KeysPerQuery}");
        if (plan.Rank < 1 || plan.Rank > HD) throw new InvalidInputException($"Sparsifiner: the rank must be in 1..{HD} (the head size), got {plan.Rank}");
        _plan = plan;
        R = plan.Rank;
        int C = c.DModel;
        _pq = new float[L][];
        _pk = new float[L][];
        _bq = new float[L][];
        _bk = new float[L][];
        for (int l = 0; l < L; l++)
        {
            var w = model.GetAttentionWeights(l);
            _pq[l] = new float[NH * HD * R];
            _pk[l] = new float[NH * HD * R];
            _bq[l] = w.BQ ?? new float[NH * HD];
            _bk[l] = w.BK ?? new float[NH * HD];
            for (int h = 0; h < NH; h++)
            {
                // W_Q, W_K of head h: (C, HD), x·W layout
                var wq = Matrix<double>.Build.Dense(C, HD, (i, j) => w.WQ[(h * C + i) * HD + j]);
                var wk = Matrix<double>.Build.Dense(C, HD, (i, j) => w.WK[(h * C + i) * HD + j]);
                var svd = (wq * wk.Transpose()).Svd(computeVectors: true);
                // the R largest singular directions (MathNet sorts them descending)
                var u = svd.U.SubMatrix(0, C, 0, R) * Matrix<double>.Build.DiagonalOfDiagonalArray([.. svd.S.Take(R)]);
                var v = svd.VT.SubMatrix(0, R, 0, C).Transpose();
                var pq = wq.PseudoInverse() * u; // (HD, R)
                var pk = wk.PseudoInverse() * v;
                for (int i = 0; i < HD; i++)
                {
                    for (int r = 0; r < R; r++)
                    {
                        _pq[l][(h * HD + i) * R + r] = (float)pq[i, r];
                        _pk[l][(h * HD + i) * R + r] = (float)pk[i, r];
                    }
                }
            }
        }
    }

    /// <summary>Attaches the three hooks per layer to <paramref name="hooks"/>; nothing when every key is kept anyway
    /// (<paramref name="tokens"/> ≤ K).</summary>
    public void Install(HookSet hooks, int tokens)
    {
        if (_plan.KeysPerQuery >= tokens)
        {
            return;
        }
        for (int l = 0; l < L; l++)
        {
            int layer = l;
            hooks.Add(new HookPoint(layer, HookKind.Q), a => Project(a, layer, query: true), observeOnly: true);
            hooks.Add(new HookPoint(layer, HookKind.K), a => Project(a, layer, query: false), observeOnly: true);
            hooks.Add(new HookPoint(layer, HookKind.AttnScores), a => Mask(a));
        }
    }

    // q: [B, T, NH, HD] → q̃ (B, T, NH, R); k likewise → k̃ and the key-only term b_q·(k − b_k)
    private void Project(ActivationView a, int layer, bool query)
    {
        int B = a.Shape[0], T = a.Shape[1];
        var x = a.Data.Span;
        int n = B * T * NH;
        if (_qLow.Length < n * R)
        {
            _qLow = new float[n * R];
            _kLow = new float[n * R];
            _kBias = new float[n];
        }
        var p = query ? _pq[layer] : _pk[layer];
        var bias = query ? _bq[layer] : _bk[layer];
        var low = query ? _qLow : _kLow;
        Span<float> centred = stackalloc float[HD];
        for (int row = 0; row < n; row++)
        {
            int h = row % NH;
            for (int i = 0; i < HD; i++) centred[i] = x[row * HD + i] - bias[h * HD + i];
            var o = low.AsSpan(row * R, R);
            o.Clear();
            for (int i = 0; i < HD; i++)
            {
                var pRow = p.AsSpan((h * HD + i) * R, R);
                for (int r = 0; r < R; r++) o[r] += centred[i] * pRow[r];
            }
            if (!query)
            {
                float s = 0;
                for (int i = 0; i < HD; i++) s += _bq[layer][h * HD + i] * centred[i];
                _kBias[row] = s;
            }
        }
    }

    // scores: [B, NH, T, S] scaled; all but each query's top-K keys by the estimate set to −∞ (exact ties, rare, broken by the sort)
    private void Mask(ActivationView a)
    {
        int B = a.Shape[0], T = a.Shape[2], S = a.Shape[3];
        int keep = Math.Min(_plan.KeysPerQuery, S);
        var scores = a.Data.Span;
        if (_estimate.Length < S)
        {
            _estimate = new float[S];
            _order = new int[S];
        }
        var est = _estimate.AsSpan(0, S);
        var order = _order.AsSpan(0, S);
        for (int b = 0; b < B; b++)
        {
            for (int h = 0; h < NH; h++)
            {
                for (int t = 0; t < T; t++)
                {
                    var q = _qLow.AsSpan(((b * T + t) * NH + h) * R, R);
                    for (int j = 0; j < S; j++)
                    {
                        int kr = (b * S + j) * NH + h;
                        var k = _kLow.AsSpan(kr * R, R);
                        float s = _kBias[kr];
                        for (int r = 0; r < R; r++) s += q[r] * k[r];
                        est[j] = -s; // sorted ascending below: the largest estimates first
                        order[j] = j;
                    }
                    est.Sort(order);
                    var row = scores.Slice(((b * NH + h) * T + t) * S, S);
                    for (int i = keep; i < S; i++) row[order[i]] = float.NegativeInfinity;
                }
            }
        }
    }
}
