using System.Numerics.Tensors;
using Headwise.Compute;
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
/// estimate of its attention scores picks the top-K keys, and the exact attention runs over those keys only. Sparsifiner
/// learns its low-rank connectivity predictor; here it is read off the weights, with no training: per head, the truncated
/// SVD of the bilinear form W_QK = W_Q·W_Kᵀ (C × C, rank ≤ HD) keeps its R largest singular directions,
/// W_QK ≈ U_R·Σ_R·V_Rᵀ, and the estimate of query t's score on key j is
/// ((q_t − b_q)·P_q)·((k_j − b_k)·P_k) + b_q·(k_j − b_k), with P_q = W_Q⁺·U_R·Σ_R and P_k = W_K⁺·V_R (HD × R): the
/// rank-R part of x_t·W_QK·x_jᵀ computed from q and k, plus the key-only bias term (terms that depend on the query
/// alone do not change its ranking of keys). At R = HD the estimate is the exact score up to such terms.
/// Two ways to run it, choosing the same keys (one <see cref="Select"/>):
/// <list type="bullet">
/// <item>fast: <c>model.KeySelection = sparsifiner</c> — no hooks; per layer the estimate (rank-R projections, O(T·S·R) per
/// head) chooses the keys and <see cref="Compute.Kernels.GatheredAttention"/> computes only those, O(T·K·HD) per head;</item>
/// <item>reference: <see cref="Install"/> — hooks: <c>hook_q</c> and <c>hook_k</c> keep q and k, <c>hook_attn_scores</c>
/// masks all but the chosen keys of every exact score row (every score is still computed).</item>
/// </list>
/// K ≥ the number of tokens chooses nothing: the forward is exactly the dense one.
/// </summary>
public sealed class Sparsifiner : IKeySelector
{
    private readonly SparsifinerPlan _plan;
    private readonly int NH, HD, R, L;
    // per layer: P_q | 0 and P_k | b_q, (NH, HD, R + 1): the last column carries the key-only bias term, b_q·(k − b_k),
    // through the same GEMMs (q̃ gets a constant 1 there from _unit); b_q, b_k (NH, HD) or zeros
    private readonly float[][] _pq, _pk, _bq, _bk;
    private readonly float[] _unit;
    // scratch: centred rows of one head (max(T, S), HD), q̃ (T, R + 1), k̃ (S, R + 1), the estimates (T, S), a selection row (S)
    private float[] _centred = [], _qLow = [], _kLow = [], _estimate = [], _select = [];
    // the hooks' copies of the layer in progress: q, k (B, T, NH, HD), the chosen keys (NH, T, K)
    private float[] _q = [], _k = [];
    private int[] _chosen = [];

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
        int C = c.DModel, R1 = R + 1;
        _pq = new float[L][];
        _pk = new float[L][];
        _bq = new float[L][];
        _bk = new float[L][];
        _unit = new float[R1];
        _unit[R] = 1;
        for (int l = 0; l < L; l++)
        {
            var w = model.GetAttentionWeights(l);
            _pq[l] = new float[NH * HD * R1];
            _pk[l] = new float[NH * HD * R1];
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
                        _pq[l][(h * HD + i) * R1 + r] = (float)pq[i, r];
                        _pk[l][(h * HD + i) * R1 + r] = (float)pk[i, r];
                    }
                    _pk[l][(h * HD + i) * R1 + R] = _bq[l][h * HD + i];
                }
            }
        }
    }

    /// <summary>K, or every key (dense) when K ≥ <paramref name="keyCount"/>.</summary>
    public int KeysPerQuery(int keyCount) => Math.Min(_plan.KeysPerQuery, keyCount);

    /// <summary>Each (head, query)'s K keys with the highest rank-R estimate (ties: the earlier key), ascending.</summary>
    // q: (T, NH, HD)  k: (S, NH, HD)  chosen: (NH, T, K)
    public void Select(int layer, ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S, int K, Span<int> chosen)
    {
        int R1 = R + 1;
        if (_estimate.Length < T * S || _centred.Length < Math.Max(T, S) * HD || _kLow.Length < S * R1 || _qLow.Length < T * R1)
        {
            _centred = new float[Math.Max(T, S) * HD];
            _qLow = new float[T * R1];
            _kLow = new float[S * R1];
            _estimate = new float[T * S];
            _select = new float[S];
        }
        for (int h = 0; h < NH; h++)
        {
            // q̃ = [(q − b_q)·P_q, 1] (T, R + 1);  k̃ = [(k − b_k)·P_k, b_q·(k − b_k)] (S, R + 1)
            var p = _pq[layer].AsSpan(h * HD * R1, HD * R1);
            Centre(q, T, h, _bq[layer]);
            Kernels.MatMul(_centred.AsSpan(0, T * HD), p, _unit, _qLow.AsSpan(0, T * R1), T, HD, R1, WeightLayout.InOut);
            Centre(k, S, h, _bk[layer]);
            Kernels.MatMul(_centred.AsSpan(0, S * HD), _pk[layer].AsSpan(h * HD * R1, HD * R1), default, _kLow.AsSpan(0, S * R1), S, HD, R1, WeightLayout.InOut);
            // estimates (T, S) = q̃ · k̃ᵀ, then each row's top K
            Kernels.MatMul(_qLow.AsSpan(0, T * R1), _kLow.AsSpan(0, S * R1), default, _estimate.AsSpan(0, T * S), T, R1, S, WeightLayout.OutIn);
            Kernels.SelectTopKeys(_estimate.AsSpan(0, T * S), chosen.Slice(h * T * K, T * K), _select, T, S, K);
        }
    }

    // head h's rows of x (n, NH, HD) minus the head's bias, into _centred (n, HD)
    private void Centre(ReadOnlySpan<float> x, int n, int h, float[] bias)
    {
        var b = bias.AsSpan(h * HD, HD);
        for (int t = 0; t < n; t++)
        {
            TensorPrimitives.Subtract(x.Slice((t * NH + h) * HD, HD), b, _centred.AsSpan(t * HD, HD));
        }
    }

    /// <summary>The reference path: attaches three hooks per layer to <paramref name="hooks"/> (q and k kept, the exact
    /// scores masked to the chosen keys); nothing when every key is kept anyway (<paramref name="tokens"/> ≤ K).</summary>
    public void Install(HookSet hooks, int tokens)
    {
        if (_plan.KeysPerQuery >= tokens)
        {
            return;
        }
        for (int l = 0; l < L; l++)
        {
            int layer = l;
            hooks.Add(new HookPoint(layer, HookKind.Q), a => Keep(a, ref _q), observeOnly: true);
            hooks.Add(new HookPoint(layer, HookKind.K), a => Keep(a, ref _k), observeOnly: true);
            hooks.Add(new HookPoint(layer, HookKind.AttnScores), a => Mask(a, layer));
        }
    }

    private static void Keep(ActivationView a, ref float[] copy)
    {
        var x = a.Data.Span;
        if (copy.Length < x.Length)
        {
            copy = new float[x.Length];
        }
        x.CopyTo(copy);
    }

    // scores: [B, NH, T, S] scaled; all but each query's chosen keys set to −∞ (q, k of the step: S = T, no past)
    private void Mask(ActivationView a, int layer)
    {
        int B = a.Shape[0], T = a.Shape[2], S = a.Shape[3], K = KeysPerQuery(S);
        if (K >= S)
        {
            return;
        }
        if (_chosen.Length < NH * T * K)
        {
            _chosen = new int[NH * T * K];
        }
        var scores = a.Data.Span;
        for (int b = 0; b < B; b++)
        {
            Select(layer, _q.AsSpan(b * T * NH * HD, T * NH * HD), _k.AsSpan(b * S * NH * HD, S * NH * HD), T, S, K, _chosen.AsSpan(0, NH * T * K));
            TransformerModel.MaskUnchosen(scores.Slice(b * NH * T * S, NH * T * S), _chosen.AsSpan(0, NH * T * K), NH * T, S, K);
        }
    }
}
