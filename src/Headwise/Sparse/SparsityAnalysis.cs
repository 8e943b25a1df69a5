using Headwise.Compute;
using Headwise.Evaluation;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Sparse;

/// <summary>One spec judged against dense attention on one text.</summary>
/// <param name="Density">query–key pairs computed ÷ causal pairs, over every layer and head</param>
/// <param name="MeanNll">mean nll of the text under the spec (nats/token)</param>
/// <param name="DeltaNll">MeanNll − dense's</param>
/// <param name="Recall">[layer][head]: the share of the dense pattern's mass on the keys the spec kept, mean over queries</param>
/// <param name="OracleRecall">[layer][head]: the same share for an oracle that keeps, in each query's row, as many keys as the
/// spec kept there — the ones with the most dense attention</param>
/// <param name="AttentionSpeedup">the attention part's speed-up: dense's blocked-kernel time over every layer ÷ the spec's
/// (its selection + the blocked kernel on what it kept), medians of alternating rounds; null where not timed (<see cref="SparsityAnalysis.Run"/> with
/// timeRounds 0, or a multi-head latent attention model)</param>
public sealed record SparsitySpecResult(string Spec, double Density, double MeanNll, double DeltaNll, double[][] Recall, double[][] OracleRecall,
    double? AttentionSpeedup = null)
{
    public double MeanRecall => Recall.SelectMany(r => r).Average();
    public double MeanOracleRecall => OracleRecall.SelectMany(r => r).Average();
}

/// <summary>What <see cref="SparsityAnalysis.Run"/> found: the dense mean nll and one result per spec.</summary>
public sealed record SparsityResult(int Tokens, double DenseMeanNll, IReadOnlyList<SparsitySpecResult> Specs);

/// <summary>
/// Judges sparse-attention specs on a text: density, ΔNLL against dense, and attention-mass recall per layer and head against an
/// oracle top-k at the same density (docs/sparse.md). One forward per spec over the first min(tokens, context) tokens.
/// </summary>
public static class SparsityAnalysis
{
    /// <summary>Judges each spec; with <paramref name="timeRounds"/> &gt; 0 also times the attention part (<see cref="AttentionSpeedups"/>).</summary>
    public static SparsityResult Run(TransformerModel model, int[] ids, IReadOnlyList<AttentionPolicy> specs, CancellationToken cancel = default, int timeRounds = 0)
    {
        int T = Math.Min(ids.Length, model.Config.MaxPositions);
        if (T < 2)
        {
            throw new InvalidInputException($"need at least 2 tokens to score a prediction (got {ids.Length})");
        }
        if (model.Config.Bidirectional)
        {
            throw new InvalidInputException("sparse attention specs are causal; this model attends bidirectionally");
        }
        var input = ModelInput.Single(ids[..T]);
        var saved = model.SparseAttention;
        try
        {
            model.SparseAttention = null;
            var (_, cache) = model.RunWithCache(input, name => name.EndsWith(".attn.hook_pattern", StringComparison.Ordinal));
            // the nll from an unobserved forward, as the specs' are: observers move attention onto another kernel
            double denseNll = MeanNll(model.Forward(input), ids, T, model.Config.VocabSize);
            model.Config.RequireUniformHeads("the sparsity analysis");
            int L = model.Config.NLayers, NH = model.Config.NHeads;
            var patterns = Enumerable.Range(0, L).Select(l => cache[$"blocks.{l}.attn.hook_pattern"].Data).ToArray(); // (1, NH, T, T)
            var results = new List<SparsitySpecResult>();
            foreach (var policy in specs)
            {
                cancel.ThrowIfCancellationRequested();
                var kept = new AttentionSparsity?[L];
                policy.ResetCounts();
                policy.Observer = (l, _, s) => kept[l] = s;
                model.SparseAttention = policy;
                var logits = model.Forward(input);
                model.SparseAttention = null;
                policy.Observer = null;
                var recall = new double[L][];
                var oracle = new double[L][];
                for (int l = 0; l < L; l++)
                {
                    (recall[l], oracle[l]) = Recall(patterns[l], kept[l] ?? AttentionSparsity.Dense, NH, T);
                }
                double nll = MeanNll(logits, ids, T, model.Config.VocabSize);
                results.Add(new SparsitySpecResult(policy.Spec, policy.Density, nll, nll - denseNll, recall, oracle));
            }
            if (timeRounds > 0)
            {
                var speedups = AttentionSpeedups(model, input, specs, timeRounds, cancel);
                for (int i = 0; i < results.Count; i++)
                {
                    results[i] = results[i] with { AttentionSpeedup = speedups[i] };
                }
            }
            return new SparsityResult(T, denseNll, results);
        }
        finally
        {
            model.SparseAttention = saved;
        }
    }

    /// <summary>
    /// The attention part's speed-up per spec on one sequence: every layer's queries and keys after positions (hook_rot_q/k on
    /// rotary models, else hook_q/k) and values are taken from one dense forward, then each round times, layer by layer,
    /// dense attention on the blocked kernel and, per spec, the policy's selection (<c>AttentionPolicy.Select</c>)
    /// plus the blocked kernel on what it kept (the dense kernel when it keeps everything, as the forward does). Speed-up =
    /// dense's summed time ÷ the spec's, medians over <paramref name="rounds"/> rounds after a warm-up. Layers that reuse
    /// another's pattern compute none and are left out; null for every spec on a multi-head latent attention model.
    /// The policies' pair counts are reset afterwards.
    /// </summary>
    public static double?[] AttentionSpeedups(TransformerModel model, ModelInput input, IReadOnlyList<AttentionPolicy> specs, int rounds = 5,
        CancellationToken cancel = default)
    {
        var cfg = model.Config;
        var none = new double?[specs.Count];
        if (cfg.Mla is not null || input.Batch != 1)
        {
            return none;
        }
        cfg.RequireUniformHeads("the sparsity analysis");
        int T = input.SeqLen, NH = cfg.NHeads, NKV = cfg.NKvHeads, HD = cfg.DHead, window = cfg.SlidingWindow;
        bool rotary = cfg.Positions == PositionKind.Rotary;
        string qName = rotary ? ".attn.hook_rot_q" : ".attn.hook_q", kName = rotary ? ".attn.hook_rot_k" : ".attn.hook_k";
        var saved = model.SparseAttention;
        ActivationCache cache;
        try
        {
            model.SparseAttention = null;
            (_, cache) = model.RunWithCache(input, n => n.EndsWith(qName, StringComparison.Ordinal) || n.EndsWith(kName, StringComparison.Ordinal)
                || n.EndsWith(".attn.hook_v", StringComparison.Ordinal));
        }
        finally
        {
            model.SparseAttention = saved;
        }
        var layers = Enumerable.Range(0, cfg.NLayers).Where(l => cache.Contains($"blocks.{l}{qName}")).Select(l =>
            (L: l, Q: cache[$"blocks.{l}{qName}"].Data, K: cache[$"blocks.{l}{kName}"].Data, V: cache[$"blocks.{l}.attn.hook_v"].Data)).ToArray();
        if (layers.Length == 0)
        {
            return none;
        }
        float scale = 1f / MathF.Sqrt(HD);
        var z = new float[T * NH * HD];
        int inner = 1; // passes per timing: set after the warm-up so that a dense timing lasts about 20 ms (small models)
        double Dense()
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int n = 0; n < inner; n++)
            {
                foreach (var (_, q, k, v) in layers)
                {
                    Kernels.BlockedAttention(q, k, v, z, T, T, NH, NKV, HD, 0, scale, [], window, AttentionSparsity.Dense);
                }
            }
            return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        double Sparse(AttentionPolicy policy)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int n = 0; n < inner; n++)
            {
                foreach (var (l, q, k, v) in layers)
                {
                    var sparsity = policy.Select(l, 0, q, k, T, T, NH, NKV, HD, 0, [], out bool all);
                    Kernels.BlockedAttention(q, k, v, z, T, T, NH, NKV, HD, 0, scale, [], window, all ? AttentionSparsity.Dense : sparsity);
                }
            }
            return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        var dense = new List<double>();
        var sparse = specs.Select(_ => new List<double>()).ToArray();
        var observers = specs.Select(p => p.Observer).ToArray();
        try
        {
            foreach (var p in specs) p.Observer = null;
            for (int r = -1; r < rounds; r++) // round −1 warms up
            {
                cancel.ThrowIfCancellationRequested();
                double d = Dense();
                if (r >= 0) dense.Add(d);
                else inner = (int)Math.Clamp(Math.Ceiling(0.02 / Math.Max(d, 1e-7)), 1, 1000);
                for (int i = 0; i < specs.Count; i++)
                {
                    double s = Sparse(specs[i]);
                    if (r >= 0) sparse[i].Add(s);
                }
            }
        }
        finally
        {
            for (int i = 0; i < specs.Count; i++)
            {
                specs[i].Observer = observers[i];
                specs[i].ResetCounts();
            }
        }
        double denseMedian = Median(dense);
        return sparse.Select(s => (double?)(denseMedian / Math.Max(Median(s), 1e-12))).ToArray();
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Per head: the mean over queries of the dense mass on kept keys, and of an oracle's keeping as many keys per row.</summary>
    // pattern: (NH, T, T) dense softmax rows
    public static (double[] Recall, double[] Oracle) Recall(ReadOnlySpan<float> pattern, AttentionSparsity sparsity, int NH, int T)
    {
        var recall = new double[NH];
        var oracle = new double[NH];
        var row = new float[T];
        for (int h = 0; h < NH; h++)
        {
            for (int t = 0; t < T; t++)
            {
                var p = pattern.Slice((h * T + t) * T, t + 1);
                double mass = 0;
                int count = 0;
                for (int s = 0; s <= t; s++)
                {
                    if (sparsity.Keeps(h, t, s))
                    {
                        mass += p[s];
                        count++;
                    }
                }
                p.CopyTo(row);
                var best = row.AsSpan(0, t + 1);
                best.Sort((a, b) => b.CompareTo(a));
                double top = 0;
                for (int j = 0; j < count; j++)
                {
                    top += best[j];
                }
                recall[h] += mass / T;
                oracle[h] += top / T;
            }
        }
        return (recall, oracle);
    }

    private static double MeanNll(float[] logits, int[] ids, int T, int V)
    {
        double sum = 0;
        for (int t = 0; t + 1 < T; t++)
        {
            sum -= Perplexity.LogSoftmaxAt(logits.AsSpan(t * V, V), ids[t + 1]);
        }
        return sum / (T - 1);
    }
}
