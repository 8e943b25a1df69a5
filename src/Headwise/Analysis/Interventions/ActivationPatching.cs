using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Interventions;

/// <summary>Which activation of a head is patched.</summary>
public enum PatchSite
{
    /// <summary>blocks.L.attn.hook_z [batch, pos, head, d_head]: the head's output before W_O.</summary>
    Z,

    /// <summary>blocks.L.attn.hook_q [batch, pos, head, d_head] (before RoPE).</summary>
    Q,

    /// <summary>blocks.L.attn.hook_k [batch, pos, kv_head, d_head]: with grouped-query attention, per key/value head.</summary>
    K,

    /// <summary>blocks.L.attn.hook_v [batch, pos, kv_head, d_head]: with grouped-query attention, per key/value head.</summary>
    V,

    /// <summary>blocks.L.attn.hook_pattern [batch, head, query_pos, key_pos]; per position patches the query's row.</summary>
    Pattern,
}

/// <summary>
/// How a patching metric reads: which way is better, the smallest clean-over-corrupted margin a 0–1 recovery score is
/// trusted on (<see cref="MinGap"/>, in the metric's units), and the chance level the clean run must beat (null: none).
/// </summary>
public sealed record PatchMetricScale(string Unit, bool HigherIsBetter, double MinGap, double? Chance)
{
    /// <summary>Logit difference: higher is better; clean must beat corrupted by 1 logit and prefer the answer (&gt; 0).</summary>
    public static readonly PatchMetricScale LogitDifference = new("logits", true, 1.0, 0);

    /// <summary>The scale of a task's metric: logit difference as above; probability difference by 0.1 and &gt; 0; a loss
    /// (lower is better) by 0.25 nats and below chance, ln V.</summary>
    public static PatchMetricScale For(Tasks.TaskMetric metric, int vocab) => metric switch
    {
        Tasks.TaskMetric.LogitDifference => LogitDifference,
        Tasks.TaskMetric.ProbabilityDifference => new("probability", true, 0.1, 0),
        _ => new("nats", false, 0.25, Math.Log(vocab)),
    };
}

/// <summary>A clean and a corrupted prompt of equal length and the metric compared between them (e.g. logit difference);
/// <see cref="Scale"/> says how the metric reads (default: a logit difference).</summary>
public sealed record PatchPair(int[] Clean, int[] Corrupted, Func<float[], double> Metric, PatchMetricScale? Scale = null);

/// <summary>
/// Activation patching results. When the clean run beats the corrupted one by the metric's margin (<see cref="Normalized"/>),
/// scores are normalized: (metric(patched) − metric(corrupted)) / (metric(clean) − metric(corrupted)), so 0 = the corrupted run's
/// behaviour, 1 = the clean run's. Otherwise that ratio would mislead (a tiny or reversed gap, or a clean run no better than
/// chance): the scores are the raw metric(patched) − metric(corrupted), and <see cref="Warning"/> says why. With several pairs
/// the metrics are first averaged over pairs.
/// </summary>
/// <param name="PerPosition">[layer][head][position] when asked for, else null.</param>
public sealed record PatchingResult(PatchSite Site, double CleanMetric, double CorruptedMetric, HeadScores Scores, float[][][]? PerPosition)
{
    /// <summary>How far the clean run beats the corrupted one, in the metric's better direction (negative: reversed).</summary>
    public double Gap { get; init; }

    /// <summary>Whether <see cref="Scores"/> are 0–1 recovery fractions (true) or raw metric differences (false).</summary>
    public bool Normalized { get; init; } = true;

    /// <summary>Why the scores are raw differences (null when normalized).</summary>
    public string? Warning { get; init; }
}

/// <summary>
/// Activation patching [Circuit Analysis in Chinchilla; Interpretability in the Wild]: run the corrupted prompt, copy one head's
/// activation from the clean run into it, and see how much of the clean behaviour comes back. Each patched run resumes at the
/// patched layer from the corrupted run's cached residual (<see cref="TransformerModel.ForwardFrom"/>). Under <c>baseHooks</c>
/// (e.g. an intervention recipe's hooks) the clean, the corrupted and every patched run carry them, the patch's hook firing
/// after them: the clean activation copied is the one the base hooks left.
/// </summary>
public static class ActivationPatching
{
    public static PatchingResult Run(TransformerModel model, IReadOnlyList<PatchPair> pairs, PatchSite site, bool perPosition = false,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        var runs = Prepare(model, pairs, site, baseHooks, cancel);
        var c = model.Config;
        int NL = c.NLayers, NH = Units(c, site), T = pairs[0].Clean.Length;
        if (perPosition && pairs.Any(p => p.Clean.Length != T))
        {
            throw new InvalidInputException("per-position patching needs every prompt pair to have the same length");
        }
        var (gap, warning) = Trust(pairs[0].Scale ?? PatchMetricScale.LogitDifference, runs.Clean, runs.Corrupted);
        Func<double, double> score = warning is null ? runs.Normalized : m => m - runs.Corrupted;
        var values = new float[NL][];
        var perPos = perPosition ? new float[NL][][] : null;
        int total = NL * NH * (perPosition ? T + 1 : 1), done = 0;
        string stage = $"patching {site.ToString().ToLowerInvariant()}";
        for (int l = 0; l < NL; l++)
        {
            values[l] = new float[NH];
            if (perPos is not null)
            {
                perPos[l] = new float[NH][];
            }
            for (int h = 0; h < NH; h++)
            {
                cancel.ThrowIfCancellationRequested();
                values[l][h] = (float)score(runs.Patched([new HeadId(l, h)], null, cancel));
                progress?.Report(new AnalysisProgress(stage, ++done, total));
                if (perPos is not null)
                {
                    perPos[l][h] = new float[T];
                    for (int p = 0; p < T; p++)
                    {
                        cancel.ThrowIfCancellationRequested();
                        perPos[l][h][p] = (float)score(runs.Patched([new HeadId(l, h)], p, cancel));
                        progress?.Report(new AnalysisProgress(stage, ++done, total));
                    }
                }
            }
        }
        c.RequireUniformHeads("activation patching");
        string unit = site is PatchSite.K or PatchSite.V && c.NKvHeads != c.NHeads ? "key/value head" : "head";
        string how = $"with the {unit}'s hook_{site.ToString().ToLowerInvariant()} copied from the clean run into the corrupted run";
        var scores = warning is null
            ? new HeadScores($"patching-{site.ToString().ToLowerInvariant()}", $"(metric − corrupted) / (clean − corrupted) {how}", values)
            : new HeadScores($"patching-{site.ToString().ToLowerInvariant()}-raw", $"metric − corrupted (raw, not normalized) {how}", values) { Warning = warning };
        return new PatchingResult(site, runs.Clean, runs.Corrupted, scores, perPos) { Gap = gap, Normalized = warning is null, Warning = warning };
    }

    /// <summary>The clean run's margin over the corrupted one in the metric's better direction, and why a 0–1 recovery score
    /// on it would mislead (null when it would not): a margin below <see cref="PatchMetricScale.MinGap"/> (or reversed), or a
    /// clean run that does not beat chance.</summary>
    public static (double Gap, string? Warning) Trust(PatchMetricScale scale, double clean, double corrupted)
    {
        double gap = scale.HigherIsBetter ? clean - corrupted : corrupted - clean;
        string better = scale.HigherIsBetter ? "higher" : "lower";
        var why = new List<string>();
        if (gap < 0)
        {
            why.Add($"the clean run is worse than the corrupted one (clean {clean:F3}, corrupted {corrupted:F3} {scale.Unit}; {better} is better)");
        }
        else if (gap < scale.MinGap)
        {
            why.Add($"the clean run beats the corrupted one by only {gap:F3} {scale.Unit} (below {scale.MinGap:G3})");
        }
        if (scale.Chance is double chance && (scale.HigherIsBetter ? clean <= chance : clean >= chance))
        {
            why.Add($"the clean run ({clean:F3} {scale.Unit}) is no better than chance ({chance:F3})");
        }
        return (gap, why.Count == 0 ? null
            : $"{string.Join("; and ", why)}: a 0–1 recovery score would be meaningless, so the scores are raw metric differences, patched − corrupted, in {scale.Unit}");
    }

    /// <summary>The normalized metric with the given heads (all layers allowed) patched together — at every position, or at
    /// <paramref name="position"/> only. <paramref name="baseHooks"/> as in <see cref="Run"/>.</summary>
    public static double PatchHeads(TransformerModel model, IReadOnlyList<PatchPair> pairs, PatchSite site, IReadOnlyList<HeadId> heads, int? position = null,
        Action<HookSet>? baseHooks = null)
    {
        var runs = Prepare(model, pairs, site, baseHooks, default);
        return heads.Count == 0 ? runs.Normalized(runs.Corrupted) : runs.Normalized(runs.Patched(heads, position, default));
    }

    /// <summary>Heads (or key/value heads) per layer for a site.</summary>
    public static int Units(Loading.ModelConfig c, PatchSite site) => site is PatchSite.K or PatchSite.V ? c.NKvHeads : c.NHeads;

    private static Runs Prepare(TransformerModel model, IReadOnlyList<PatchPair> pairs, PatchSite site, Action<HookSet>? baseHooks, CancellationToken cancel)
    {
        if (pairs.Count == 0)
        {
            throw new InvalidInputException("activation patching needs at least one clean/corrupted pair");
        }
        foreach (var p in pairs)
        {
            if (p.Clean.Length != p.Corrupted.Length)
            {
                throw new InvalidInputException($"clean and corrupted prompts must have the same number of tokens (clean {p.Clean.Length}, corrupted {p.Corrupted.Length})");
            }
        }
        var runs = new Runs(model, pairs, site, baseHooks);
        runs.RunBaselines(cancel);
        if (Math.Abs(runs.Clean - runs.Corrupted) < 1e-9)
        {
            throw new InvalidInputException($"the metric is the same on the clean and the corrupted prompt ({runs.Clean:G6}): nothing to recover");
        }
        return runs;
    }

    private sealed class Runs(TransformerModel model, IReadOnlyList<PatchPair> pairs, PatchSite site, Action<HookSet>? baseHooks)
    {
        private readonly string _hookSuffix = ".attn.hook_" + site.ToString().ToLowerInvariant();
        private float[][][] _cleanAct = [];   // per pair, per layer: the site's clean activation
        private float[][][] _residPre = [];   // per pair, per layer: the corrupted run's resid_pre

        public double Clean { get; private set; }
        public double Corrupted { get; private set; }

        public void RunBaselines(CancellationToken cancel)
        {
            int NL = model.Config.NLayers;
            _cleanAct = new float[pairs.Count][][];
            _residPre = new float[pairs.Count][][];
            double clean = 0, corrupted = 0;
            for (int i = 0; i < pairs.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var (cl, cc) = model.RunWithCache(ModelInput.Single(pairs[i].Clean), n => n.EndsWith(_hookSuffix, StringComparison.Ordinal),
                    baseHooks: baseHooks);
                _cleanAct[i] = Enumerable.Range(0, NL).Select(l => cc[$"blocks.{l}{_hookSuffix}"].Data).ToArray();
                clean += pairs[i].Metric(cl);
                var (xl, xc) = model.RunWithCache(ModelInput.Single(pairs[i].Corrupted), n => n.EndsWith(".hook_resid_pre", StringComparison.Ordinal),
                    baseHooks: baseHooks);
                _residPre[i] = Enumerable.Range(0, NL).Select(l => xc[$"blocks.{l}.hook_resid_pre"].Data).ToArray();
                corrupted += pairs[i].Metric(xl);
            }
            Clean = clean / pairs.Count;
            Corrupted = corrupted / pairs.Count;
        }

        public double Normalized(double metric) => (metric - Corrupted) / (Clean - Corrupted);

        /// <summary>Mean metric over pairs of the corrupted run with <paramref name="heads"/>' activations taken from the clean run.</summary>
        public double Patched(IReadOnlyList<HeadId> heads, int? position, CancellationToken cancel)
        {
            var c = model.Config;
            int units = Units(c, site);
            foreach (var h in heads)
            {
                if ((uint)h.Layer >= (uint)c.NLayers || (uint)h.Head >= (uint)units)
                {
                    throw new InvalidInputException($"head {h} does not exist for hook_{site.ToString().ToLowerInvariant()}: layers 0..{c.NLayers - 1}, heads 0..{units - 1}");
                }
            }
            int start = heads.Min(h => h.Layer);
            double sum = 0;
            for (int i = 0; i < pairs.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                int T = pairs[i].Clean.Length;
                if (position is int p && (uint)p >= (uint)T)
                {
                    throw new InvalidInputException($"position {p} is outside the prompt's 0..{T - 1}");
                }
                var hooks = HookSet.Of(c.NLayers, baseHooks); // the base hooks first: the patch overwrites what they made
                foreach (var layer in heads.GroupBy(h => h.Layer))
                {
                    int l = layer.Key, item = i;
                    var hs = layer.Select(h => h.Head).Distinct().ToArray();
                    hooks.Add(new HookPoint(l, site switch
                    {
                        PatchSite.Z => HookKind.Z,
                        PatchSite.Q => HookKind.Q,
                        PatchSite.K => HookKind.K,
                        PatchSite.V => HookKind.V,
                        _ => HookKind.Pattern,
                    }), a => Copy(_cleanAct[item][l], a.Data.Span, a.Shape, hs, position));
                }
                var logits = model.ForwardFrom(start, _residPre[i][start], ModelInput.Single(pairs[i].Corrupted), hooks);
                sum += pairs[i].Metric(logits);
            }
            return sum / pairs.Count;
        }

        // z/q/k/v: [1, pos, unit, d_head]; pattern: [1, head, query_pos, key_pos]
        private void Copy(float[] from, Span<float> to, int[] shape, int[] heads, int? position)
        {
            if (site == PatchSite.Pattern)
            {
                int T = shape[2], S = shape[3];
                foreach (int h in heads)
                {
                    int first = position ?? 0, last = position ?? T - 1;
                    for (int q = first; q <= last; q++)
                    {
                        from.AsSpan((h * T + q) * S, S).CopyTo(to.Slice((h * T + q) * S, S));
                    }
                }
                return;
            }
            int Tn = shape[1], U = shape[2], D = shape[3];
            int t0 = position ?? 0, t1 = position ?? Tn - 1;
            for (int t = t0; t <= t1; t++)
            {
                foreach (int h in heads)
                {
                    int o = (t * U + h) * D;
                    from.AsSpan(o, D).CopyTo(to.Slice(o, D));
                }
            }
        }
    }

    /// <summary>Logit difference at the last position: logit[answer] − logit[wrong].</summary>
    public static Func<float[], double> LogitDifference(int vocab, int answer, int wrong) => logits =>
    {
        int T = logits.Length / vocab;
        return logits[(T - 1) * vocab + answer] - logits[(T - 1) * vocab + wrong];
    };
}
