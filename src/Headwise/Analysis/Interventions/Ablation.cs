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
/// <para>Speed: the clean forward runs once with every <c>blocks.L.hook_resid_pre</c> cached; an ablation whose first head
/// sits in layer L resumes there with <see cref="TransformerModel.ForwardFrom"/> instead of recomputing layers 0..L−1 —
/// identical numbers (the layers below never see the ablation), about half the layer work over a scan.</para>
/// </summary>
public static class Ablation
{
    /// <summary>Ablates <paramref name="heads"/> together and scores the target (mean of the metric over its items).
    /// <paramref name="reuseClean"/> = false recomputes every layer (for checking the shortcut).</summary>
    public static AblationResult Ablate(TransformerModel model, InterventionTarget target, IReadOnlyList<HeadId> heads,
        AblationMethod method, MetricKind metric, bool reuseClean = true, CancellationToken cancel = default)
    {
        if (heads.Count == 0)
        {
            throw new InvalidInputException("give at least one head to ablate");
        }
        CheckHeads(model, heads);
        var clean = CleanState.Run(model, target, method, metric, reuseClean, cancel);
        double ablated = clean.Score(heads, reuseClean, cancel);
        return new AblationResult(heads.ToArray(), method, metric, target.Description, clean.CleanMetric, ablated);
    }

    /// <summary>
    /// Ablates each head alone: Values[layer][head] = metric(head ablated) − metric(clean) — for loss and KL, how much worse the
    /// model gets without the head. One forward per head and item, each resumed at the head's layer.
    /// </summary>
    public static HeadScores Importance(TransformerModel model, InterventionTarget target, AblationMethod method, MetricKind metric,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default)
    {
        var c = model.Config;
        var clean = CleanState.Run(model, target, method, metric, reuse: true, cancel);
        var values = new float[c.NLayers][];
        int total = c.NLayers * c.NHeads, done = 0;
        progress?.Report(new AnalysisProgress("ablating heads", 0, total));
        for (int l = 0; l < c.NLayers; l++)
        {
            values[l] = new float[c.NHeads];
            for (int h = 0; h < c.NHeads; h++)
            {
                cancel.ThrowIfCancellationRequested();
                values[l][h] = (float)(clean.Score([new HeadId(l, h)], reuse: true, cancel) - clean.CleanMetric);
                progress?.Report(new AnalysisProgress("ablating heads", ++done, total));
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

    internal static void CheckHeads(TransformerModel model, IEnumerable<HeadId> heads)
    {
        foreach (var h in heads)
        {
            if ((uint)h.Layer >= (uint)model.Config.NLayers || (uint)h.Head >= (uint)model.Config.NHeads)
            {
                throw new InvalidInputException($"head {h} does not exist: the model has layers 0..{model.Config.NLayers - 1} and heads 0..{model.Config.NHeads - 1}");
            }
        }
    }

    /// <summary>The clean runs of every item (logits, metric, cached residuals) and what ablated heads are replaced with.</summary>
    private sealed class CleanState
    {
        private readonly TransformerModel _model;
        private readonly InterventionTarget _target;
        private readonly AblationMethod _method;
        private readonly MetricKind _metric;
        private float[][] _cleanLogits = [];   // per item: [pos, vocab] (kept for KL)
        private float[][][] _residPre = [];    // per item, per layer: [pos, d_model]
        private float[][] _meanZ = [];         // per layer: [head, d_head]
        private float[][][] _sourceZ = [];     // per item, per layer: [pos, head, d_head]

        private CleanState(TransformerModel model, InterventionTarget target, AblationMethod method, MetricKind metric)
        {
            _model = model;
            _target = target;
            _method = method;
            _metric = metric;
        }

        public double CleanMetric { get; private set; }

        public static CleanState Run(TransformerModel model, InterventionTarget target, AblationMethod method, MetricKind metric, bool reuse, CancellationToken cancel)
        {
            var c = model.Config;
            var s = new CleanState(model, target, method, metric);
            int n = target.Items.Count, NL = c.NLayers, zRow = c.NHeads * c.DHead;
            s._cleanLogits = new float[n][];
            s._residPre = new float[n][][];
            if (method == AblationMethod.Mean)
            {
                s._meanZ = Enumerable.Range(0, NL).Select(_ => new float[zRow]).ToArray();
            }
            if (method == AblationMethod.Resample)
            {
                s._sourceZ = new float[n][][];
            }
            long positions = 0;
            double sum = 0;
            for (int i = 0; i < n; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var input = ModelInput.Single(target.Items[i]);
                var (logits, cache) = model.RunWithCache(input, name =>
                    (reuse && name.EndsWith(".hook_resid_pre", StringComparison.Ordinal))
                    || (method == AblationMethod.Mean && name.EndsWith(".attn.hook_z", StringComparison.Ordinal)));
                s._cleanLogits[i] = logits;
                if (reuse)
                {
                    s._residPre[i] = Enumerable.Range(0, NL).Select(l => cache[$"blocks.{l}.hook_resid_pre"].Data).ToArray();
                }
                if (method == AblationMethod.Mean)
                {
                    for (int l = 0; l < NL; l++)
                    {
                        var z = cache[$"blocks.{l}.attn.hook_z"].Data;
                        var acc = s._meanZ[l];
                        for (int r = 0; r < z.Length / zRow; r++)
                        {
                            for (int k = 0; k < zRow; k++)
                            {
                                acc[k] += z[r * zRow + k];
                            }
                        }
                    }
                    positions += target.Items[i].Length;
                }
                if (method == AblationMethod.Resample)
                {
                    var src = target.Sources[i];
                    var (_, srcCache) = model.RunWithCache(ModelInput.Single(src), name => name.EndsWith(".attn.hook_z", StringComparison.Ordinal));
                    s._sourceZ[i] = Enumerable.Range(0, NL).Select(l => srcCache[$"blocks.{l}.attn.hook_z"].Data).ToArray();
                }
                sum += target.Score(metric, i, logits, logits, c.VocabSize);
            }
            foreach (var acc in s._meanZ)
            {
                for (int k = 0; k < acc.Length; k++)
                {
                    acc[k] /= positions;
                }
            }
            s.CleanMetric = sum / n;
            return s;
        }

        /// <summary>Mean metric over the items with <paramref name="heads"/> ablated.</summary>
        public double Score(IReadOnlyList<HeadId> heads, bool reuse, CancellationToken cancel)
        {
            var c = _model.Config;
            int start = heads.Min(h => h.Layer);
            double sum = 0;
            for (int i = 0; i < _target.Items.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var hooks = new HookSet(c.NLayers);
                foreach (var layer in heads.GroupBy(h => h.Layer))
                {
                    int l = layer.Key, item = i;
                    var hs = layer.Select(h => h.Head).Distinct().ToArray();
                    hooks.Add(new HookPoint(l, HookKind.Z), a => Replace(a.Data.Span, item, l, hs));
                }
                var input = ModelInput.Single(_target.Items[i]);
                var logits = reuse ? _model.ForwardFrom(start, _residPre[i][start], input, hooks) : _model.Forward(input, hooks);
                sum += _target.Score(_metric, i, logits, _cleanLogits[i], c.VocabSize);
            }
            return sum / _target.Items.Count;
        }

        // z: [1, pos, head, d_head]
        private void Replace(Span<float> z, int item, int layer, int[] heads)
        {
            int HD = _model.Config.DHead, row = _model.Config.NHeads * HD, T = z.Length / row;
            for (int t = 0; t < T; t++)
            {
                foreach (int h in heads)
                {
                    var dst = z.Slice(t * row + h * HD, HD);
                    switch (_method)
                    {
                        case AblationMethod.Zero: dst.Clear(); break;
                        case AblationMethod.Mean: _meanZ[layer].AsSpan(h * HD, HD).CopyTo(dst); break;
                        default: _sourceZ[item][layer].AsSpan(t * row + h * HD, HD).CopyTo(dst); break;
                    }
                }
            }
        }
    }
}
