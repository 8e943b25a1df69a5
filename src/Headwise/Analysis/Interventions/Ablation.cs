using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Interventions;

/// <summary>What an ablated head's output z is replaced with.</summary>
public enum AblationMethod
{
    /// <summary>z = 0 at every position.</summary>
    Zero,

    /// <summary>z = the head's mean z over every position of every input of the target.</summary>
    Mean,

    /// <summary>z = the head's z on another input of the same length (the target's resample source), position by position.</summary>
    Resample,
}

/// <summary>The metric with the heads ablated and without; <see cref="Change"/> = ablated − clean.</summary>
public sealed record AblationResult(HeadId[] Heads, AblationMethod Method, MetricKind Metric, string Target, double Clean, double Ablated)
{
    public double Change => Ablated - Clean;
}

/// <summary>
/// Ablation of attention heads by a hook on <c>blocks.L.attn.hook_z</c> [batch, pos, head, d_head], and the importance scan
/// over every head [AttentionInfluence; On the Role of Attention Heads in LLM Safety].
/// <para>Speed: each item's clean forward runs once, caching per layer the clean z and the residual after the attention
/// sublayer (<c>hook_resid_mid</c>; <c>hook_resid_post</c> for parallel-residual models) and <c>hook_resid_pre</c>. Replacing
/// head h's z in layer L changes that layer's attention output by exactly (z′_h − z_h)·W_O[h], so an ablation whose first
/// head sits in layer L adds that to the cached residual and resumes after layer L's attention
/// (<see cref="TransformerModel.ForwardFromMid"/>) — layers 0..L−1 and layer L's attention are never recomputed. Heads in
/// later layers of the same ablation are replaced by hooks on their z as the forward passes them. The numbers equal a full
/// hooked forward up to float rounding (checked by the tests with <c>reuseClean: false</c>).</para>
/// <para>Under <c>baseHooks</c> (e.g. an intervention recipe's hooks) every run — the clean one, the mean or resample pass and
/// each ablated forward — carries those hooks, and the ablation's hook fires after them: the clean cache holds z as the base
/// hooks left it, so the resumed shortcut stays exact.</para>
/// </summary>
public static class Ablation
{
    /// <summary>Ablates <paramref name="heads"/> together and scores the target (the metric's mean over its items, weighted by
    /// <see cref="InterventionTarget.Weight"/>).
    /// <paramref name="reuseClean"/> = false recomputes every layer with hooks on z (for checking the shortcut).
    /// <paramref name="baseHooks"/> attaches hooks to every forward, before the ablation's (see the class remarks).</summary>
    public static AblationResult Ablate(TransformerModel model, InterventionTarget target, IReadOnlyList<HeadId> heads,
        AblationMethod method, MetricKind metric, bool reuseClean = true, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        if (heads.Count == 0)
        {
            throw new InvalidInputException("give at least one head to ablate");
        }
        CheckHeads(model, heads);
        var replacement = new Replacement(model, target, method, baseHooks, cancel);
        double clean = 0, ablated = 0;
        for (int i = 0; i < target.Items.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var item = CleanItem.Run(model, target, i, metric, replacement, reuseClean, baseHooks);
            clean += target.Weight(i) * item.Metric;
            ablated += target.Weight(i) * item.Score(heads, reuseClean);
        }
        return new AblationResult(heads.ToArray(), method, metric, target.Description, clean, ablated);
    }

    /// <summary>
    /// Ablates each head alone: Values[layer][head] = metric(head ablated) − metric(clean) — for loss and KL, how much worse the
    /// model gets without the head. One forward per head and item, each resumed after the head's attention sublayer.
    /// <paramref name="baseHooks"/> attaches hooks to every forward, resumed ones included, before the ablation's.
    /// </summary>
    public static HeadScores Importance(TransformerModel model, InterventionTarget target, AblationMethod method, MetricKind metric,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        var c = model.Config;
        var replacement = new Replacement(model, target, method, baseHooks, cancel);
        c.RequireUniformHeads("head importance");
        var sums = new double[c.NLayers, c.NHeads];
        int n = target.Items.Count, total = c.NLayers * c.NHeads * n, done = 0;
        progress?.Report(new AnalysisProgress("ablating heads", 0, total));
        // items outer, heads inner: only one item's clean activations are held at a time
        for (int i = 0; i < n; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var item = CleanItem.Run(model, target, i, metric, replacement, reuse: true, baseHooks);
            for (int l = 0; l < c.NLayers; l++)
            {
                for (int h = 0; h < c.NHeads; h++)
                {
                    cancel.ThrowIfCancellationRequested();
                    sums[l, h] += target.Weight(i) * (item.Score([new HeadId(l, h)], reuse: true) - item.Metric);
                    progress?.Report(new AnalysisProgress("ablating heads", ++done, total));
                }
            }
        }
        var values = new float[c.NLayers][];
        for (int l = 0; l < c.NLayers; l++)
        {
            values[l] = new float[c.NHeads];
            for (int h = 0; h < c.NHeads; h++)
            {
                values[l][h] = (float)sums[l, h];
            }
        }
        string what = metric switch
        {
            MetricKind.Loss => "mean next-token NLL",
            MetricKind.Kl => "mean KL(clean ‖ ablated) of next-token distributions",
            _ => target.Task?.MetricDefinition ?? "task metric",
        };
        return new HeadScores($"importance-{method.ToString().ToLowerInvariant()}-{Name(metric)}",
            $"{what} with the head {method.ToString().ToLowerInvariant()}-ablated (hook_z) minus without, on {target.Description}", values);
    }

    public static string Name(MetricKind m) => m switch { MetricKind.Loss => "loss", MetricKind.Kl => "kl", _ => "logit-diff" };

    /// <summary>acc[k] += Σ_r rows[r·W + k] with W = acc.Length: the column sums of a row-major (rows, W) activation, in
    /// double — the sums a mean ablation divides by the number of positions (here and in recipes' <c>ablate mean</c>).</summary>
    internal static void AccumulateRows(ReadOnlySpan<float> rows, double[] acc)
    {
        int width = acc.Length;
        for (int r = 0; r < rows.Length / width; r++)
        {
            for (int k = 0; k < width; k++)
            {
                acc[k] += rows[r * width + k];
            }
        }
    }

    internal static void CheckHeads(TransformerModel model, IEnumerable<HeadId> heads)
    {
        model.Config.RequireUniformHeads("head ablation");
        foreach (var h in heads)
        {
            if ((uint)h.Layer >= (uint)model.Config.NLayers || (uint)h.Head >= (uint)model.Config.NHeads)
            {
                throw new InvalidInputException($"head {h} does not exist: the model has layers 0..{model.Config.NLayers - 1} and heads 0..{model.Config.NHeads - 1}");
            }
        }
    }

    /// <summary>What an ablated head's z becomes: zeros, its mean over every position of every item (one pass over the
    /// target first), or, per item, its z on the item's resample source.</summary>
    private sealed class Replacement
    {
        private readonly TransformerModel _model;
        private readonly InterventionTarget _target;
        private readonly Action<HookSet>? _baseHooks;
        private readonly float[][] _meanZ = []; // per layer: [head, d_head]

        public Replacement(TransformerModel model, InterventionTarget target, AblationMethod method, Action<HookSet>? baseHooks,
            CancellationToken cancel)
        {
            _model = model;
            _target = target;
            _baseHooks = baseHooks;
            Method = method;
            if (method != AblationMethod.Mean)
            {
                return;
            }
            var c = model.Config;
            int zRow = c.NHeads * c.DHead;
            var sums = Enumerable.Range(0, c.NLayers).Select(_ => new double[zRow]).ToArray();
            long positions = 0;
            var zs = new ActivationCache(); // refilled item by item: only the sums are kept
            for (int i = 0; i < target.Items.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var (_, cache) = model.RunWithCache(ModelInput.Single(target.Items[i]), IsZ, reuse: zs, baseHooks: baseHooks);
                for (int l = 0; l < c.NLayers; l++)
                {
                    AccumulateRows(cache[$"blocks.{l}.attn.hook_z"].Data, sums[l]);
                }
                positions += target.Items[i].Length;
            }
            _meanZ = sums.Select(acc => acc.Select(v => (float)(v / positions)).ToArray()).ToArray();
        }

        public AblationMethod Method { get; }

        public static bool IsZ(string name) => name.EndsWith(".attn.hook_z", StringComparison.Ordinal);

        /// <summary>Per layer, the z of item <paramref name="item"/>'s resample source (null for the other methods).</summary>
        public float[][]? SourceZ(int item)
        {
            if (Method != AblationMethod.Resample)
            {
                return null;
            }
            var (_, cache) = _model.RunWithCache(ModelInput.Single(_target.Sources[item]), IsZ, baseHooks: _baseHooks);
            return Enumerable.Range(0, _model.Config.NLayers).Select(l => cache[$"blocks.{l}.attn.hook_z"].Data).ToArray();
        }

        // z: [pos, head, d_head] — writes head h's replacement at every position
        public void Write(Span<float> z, float[][]? sourceZ, int layer, int h)
        {
            int HD = _model.Config.DHead, row = _model.Config.NHeads * HD, T = z.Length / row;
            for (int t = 0; t < T; t++)
            {
                var dst = z.Slice(t * row + h * HD, HD);
                switch (Method)
                {
                    case AblationMethod.Zero: dst.Clear(); break;
                    case AblationMethod.Mean: _meanZ[layer].AsSpan(h * HD, HD).CopyTo(dst); break;
                    default: sourceZ![layer].AsSpan(t * row + h * HD, HD).CopyTo(dst); break;
                }
            }
        }
    }

    /// <summary>One item's clean run: its logits and metric, and the cached activations ablations resume from.</summary>
    private sealed class CleanItem
    {
        private readonly TransformerModel _model;
        private readonly InterventionTarget _target;
        private readonly int _item;
        private readonly MetricKind _metric;
        private readonly Replacement _replacement;
        private readonly Action<HookSet>? _baseHooks;
        private float[] _logits = [];
        private float[][] _residAfterAttn = []; // per layer: resid_mid, or resid_post with a parallel residual
        private float[][] _z = [];             // per layer: [pos, head, d_head]
        private float[][]? _sourceZ;
        private float[] _ablatedLogits = [];  // scratch, reused by every ablated forward of this item
        private float[] _resid = [], _zAblated = [], _diff = [], _delta = [];

        private CleanItem(TransformerModel model, InterventionTarget target, int item, MetricKind metric, Replacement replacement,
            Action<HookSet>? baseHooks)
        {
            _baseHooks = baseHooks;
            _model = model;
            _target = target;
            _item = item;
            _metric = metric;
            _replacement = replacement;
        }

        public double Metric { get; private set; }

        public static CleanItem Run(TransformerModel model, InterventionTarget target, int item, MetricKind metric, Replacement replacement, bool reuse,
            Action<HookSet>? baseHooks)
        {
            var c = model.Config;
            var s = new CleanItem(model, target, item, metric, replacement, baseHooks);
            string after = c.ParallelResidual ? ".hook_resid_post" : ".hook_resid_mid";
            var (logits, cache) = model.RunWithCache(ModelInput.Single(target.Items[item]), name => reuse
                && (name.EndsWith(after, StringComparison.Ordinal) || Replacement.IsZ(name)), baseHooks: baseHooks);
            s._logits = logits;
            if (reuse)
            {
                s._residAfterAttn = Enumerable.Range(0, c.NLayers).Select(l => cache[$"blocks.{l}{after}"].Data).ToArray();
                s._z = Enumerable.Range(0, c.NLayers).Select(l => cache[$"blocks.{l}.attn.hook_z"].Data).ToArray();
            }
            s._sourceZ = replacement.SourceZ(item);
            s.Metric = target.Score(metric, item, logits, logits, c.VocabSize);
            return s;
        }

        /// <summary>The metric with <paramref name="heads"/> ablated.</summary>
        public double Score(IReadOnlyList<HeadId> heads, bool reuse)
        {
            var c = _model.Config;
            var input = ModelInput.Single(_target.Items[_item]);
            int start = reuse ? heads.Min(h => h.Layer) : -1;
            var hooks = HookSet.Of(c.NLayers, _baseHooks); // the base hooks first: the ablation replaces what they made of z
            foreach (var layer in heads.Where(h => h.Layer != start).GroupBy(h => h.Layer))
            {
                int l = layer.Key;
                var hs = layer.Select(h => h.Head).Distinct().ToArray();
                hooks.Add(new HookPoint(l, HookKind.Z), a =>
                {
                    foreach (int h in hs)
                    {
                        _replacement.Write(a.Data.Span, _sourceZ, l, h);
                    }
                });
            }
            float[] logits;
            if (!reuse)
            {
                logits = _model.Forward(input, hooks);
            }
            else
            {
                var resid = AblatedResidual(start, heads.Where(h => h.Layer == start).Select(h => h.Head).Distinct());
                if (_ablatedLogits.Length != _logits.Length)
                {
                    _ablatedLogits = new float[_logits.Length];
                }
                logits = c.ParallelResidual
                    ? _model.ForwardFrom(start + 1, resid, input, hooks, _ablatedLogits)
                    : _model.ForwardFromMid(start, resid, input, hooks, _ablatedLogits);
            }
            return _target.Score(_metric, _item, logits, _logits, c.VocabSize);
        }

        // the clean residual after layer L's attention plus Σ_h (z′_h − z_h)·W_O[h] over the ablated heads of L
        private float[] AblatedResidual(int L, IEnumerable<int> heads)
        {
            var c = _model.Config;
            int HD = c.DHead, C = c.DModel, row = c.NHeads * HD;
            var z = _z[L];
            int T = z.Length / row;
            if (_resid.Length != T * C)
            {
                (_resid, _zAblated, _diff, _delta) = (new float[T * C], new float[z.Length], new float[T * HD], new float[T * C]);
            }
            var (resid, zAblated, diff, delta) = (_resid, _zAblated, _diff, _delta);
            _residAfterAttn[L].CopyTo(resid, 0);
            z.CopyTo(zAblated, 0);
            var wO = _model.PerHeadOutputWeights(L);
            foreach (int h in heads)
            {
                _replacement.Write(zAblated, _sourceZ, L, h);
                for (int t = 0; t < T; t++)
                {
                    for (int k = 0; k < HD; k++)
                    {
                        diff[t * HD + k] = zAblated[t * row + h * HD + k] - z[t * row + h * HD + k];
                    }
                }
                // delta: (T, C) = diff (T, HD) · W_O[h] (HD, C)
                Kernels.MatMul(diff, wO.Slice(h * HD * C, HD * C), default, delta, T, HD, C, WeightLayout.InOut);
                Kernels.Add(resid, delta, resid);
            }
            return resid;
        }
    }
}
