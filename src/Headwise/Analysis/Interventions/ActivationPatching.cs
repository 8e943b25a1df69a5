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

/// <summary>A clean and a corrupted prompt of equal length and the metric compared between them (e.g. logit difference).</summary>
public sealed record PatchPair(int[] Clean, int[] Corrupted, Func<float[], double> Metric);

/// <summary>
/// Activation patching results. Scores are normalized: (metric(patched) − metric(corrupted)) / (metric(clean) − metric(corrupted)),
/// so 0 = the corrupted run's behaviour, 1 = the clean run's. With several pairs the metrics are first averaged over pairs.
/// </summary>
/// <param name="PerPosition">[layer][head][position] when asked for, else null.</param>
public sealed record PatchingResult(PatchSite Site, double CleanMetric, double CorruptedMetric, HeadScores Scores, float[][][]? PerPosition);

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
                values[l][h] = (float)runs.Normalized(runs.Patched([new HeadId(l, h)], null, cancel));
                progress?.Report(new AnalysisProgress(stage, ++done, total));
                if (perPos is not null)
                {
                    perPos[l][h] = new float[T];
                    for (int p = 0; p < T; p++)
                    {
                        cancel.ThrowIfCancellationRequested();
                        perPos[l][h][p] = (float)runs.Normalized(runs.Patched([new HeadId(l, h)], p, cancel));
                        progress?.Report(new AnalysisProgress(stage, ++done, total));
                    }
                }
            }
        }
        string unit = site is PatchSite.K or PatchSite.V && c.NKvHeads != c.NHeads ? "key/value head" : "head";
        var scores = new HeadScores($"patching-{site.ToString().ToLowerInvariant()}",
            $"(metric − corrupted) / (clean − corrupted) with the {unit}'s hook_{site.ToString().ToLowerInvariant()} copied from the clean run into the corrupted run",
            values);
        return new PatchingResult(site, runs.Clean, runs.Corrupted, scores, perPos);
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
