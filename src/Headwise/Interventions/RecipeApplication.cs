using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Analysis.Interventions;
using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Interventions;

/// <summary>
/// A recipe bound to a model: its weight edits already made (<see cref="Model"/> is then a new model built from edited
/// canonical weights), its items checked against the model, its inject sources run, and its activation kinds ready to attach
/// as hooks. Weight edits come first, then the hooks, each in recipe order (two items on one hook point fire in that order).
/// <code>
/// using var applied = RecipeApplication.Apply(Recipe.Load("soften.json"), model);
/// var logits = applied.Forward(ModelInput.Single(ids));           // or: applied.AddHooks(myHooks); applied.Model.Forward(input, myHooks)
/// </code>
/// Shapes (llm.c letters): B batch, T positions of this call, S = past + T keys, NH heads, NKV key/value heads, HD d_head, C d_model.
/// </summary>
public sealed partial class RecipeApplication : IDisposable
{
    private readonly bool _ownsModel;
    private readonly Dictionary<int, ActivationCache> _sources = []; // item index → the source run's hook_q/k/v

    private RecipeApplication(Recipe recipe, TransformerModel model, bool ownsModel)
    {
        Recipe = recipe;
        Model = model;
        _ownsModel = ownsModel;
    }

    public Recipe Recipe { get; }

    /// <summary>The model to run: the original, or a new one with the recipe's weight edits (disposed with this object).</summary>
    public TransformerModel Model { get; }

    /// <summary>Checks <paramref name="recipe"/> against <paramref name="model"/>, makes its weight edits and runs its inject
    /// sources. <paramref name="encode"/> turns a source's text into ids (the model's tokenizer); needed only for text sources.</summary>
    public static RecipeApplication Apply(Recipe recipe, TransformerModel model, Func<string, int[]>? encode = null)
    {
        CheckFields(recipe);
        Check(recipe, model);
        var edits = recipe.Interventions.Select((item, i) => (item, i)).Where(p => p.item is EditWeights).ToArray();
        TransformerModel run = model;
        if (edits.Length > 0)
        {
            var weights = model.ToCanonical();
            foreach (var (item, i) in edits)
            {
                EditHead(weights, (EditWeights)item, recipe.Where(i));
            }
            run = TransformerModel.Create(weights, $"{model.Weights.Source} edited by {recipe.Source}");
        }
        var applied = new RecipeApplication(recipe, run, ownsModel: edits.Length > 0);
        try
        {
            applied.RunSources(encode);
        }
        catch
        {
            applied.Dispose();
            throw;
        }
        return applied;
    }

    public void Dispose()
    {
        if (_ownsModel)
        {
            Model.Dispose();
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Checks against the model

    // a recipe built in code has not been through Parse: its canonical JSON goes through the same checks
    internal static void CheckFields(Recipe recipe)
    {
        string json;
        try
        {
            json = recipe.ToJson();
        }
        catch (ArgumentException e)
        {
            throw new InvalidInputException($"{recipe.Source}: a number is not finite ({e.Message})", e);
        }
        _ = Recipe.Parse(json, recipe.Source);
    }

    internal static void Check(Recipe recipe, TransformerModel model)
    {
        var c = model.Config;
        for (int i = 0; i < recipe.Interventions.Count; i++)
        {
            var item = recipe.Interventions[i];
            string where = recipe.Where(i);
            void Exists(HeadId h, string field)
            {
                c.RequireUniformHeads("a recipe that names heads");
                if ((uint)h.Layer >= (uint)c.NLayers || (uint)h.Head >= (uint)c.NHeads)
                {
                    throw new InvalidInputException($"{where}: {field} {h} does not exist: the model has layers 0..{c.NLayers - 1} and heads 0..{c.NHeads - 1}");
                }
            }
            foreach (var h in HeadsOf(item))
            {
                Exists(h, item is EditWeights ? "head" : "heads");
            }
            switch (item)
            {
                case RedistributeSink r when r.Sinks.Max() >= c.MaxPositions:
                    throw new InvalidInputException($"{where}: sinks position {r.Sinks.Max()} is beyond the model's context of {c.MaxPositions}");
                case InjectActivations { Component: not InjectComponent.Q } inj when c.KvGroupSize > 1:
                    // that head's attention is recomputed at hook_z (GroupedKvInject): a pattern edit on it would be lost
                    for (int o = 0; o < recipe.Interventions.Count; o++)
                    {
                        var other = recipe.Interventions[o];
                        if (other is SoftenHeads or RedistributeSink && HeadsOf(other).Intersect(inj.Heads).ToArray() is [var shared, ..])
                        {
                            throw new InvalidInputException($"{where}: heads {shared}: injecting {inj.Component.ToString().ToLowerInvariant()} into a query head of a grouped-query model cannot be combined with {recipe.Where(o)} on the same head (the injected head's attention is recomputed after the pattern hooks)");
                        }
                    }
                    break;
                case EditWeights e:
                    int bad = e.Remove.Concat(e.Scale.Keys).FirstOrDefault(k => k >= c.DHead, -1);
                    if (bad >= 0)
                    {
                        string field = e.Remove.Contains(bad) ? "remove" : "scale";
                        throw new InvalidInputException($"{where}: {field} component {bad} does not exist: W_{(e.Circuit == HeadCircuit.Ov ? "OV" : "QK")} of head {e.Head} has {c.DHead} singular components (0..{c.DHead - 1})");
                    }
                    break;
            }
        }
    }

    private static IEnumerable<HeadId> HeadsOf(Intervention item) => item switch
    {
        ScaleHeads s => s.Heads,
        AblateHeads a => a.Heads,
        SoftenHeads s => s.Heads,
        RedistributeSink r => r.Heads,
        InjectActivations inj => inj.Heads,
        EditWeights e => [e.Head],
        _ => [],
    };

    // ---------------------------------------------------------------------------------------------------------------
    // Weight edits

    /// <summary>
    /// Removes or scales singular components of the head's W_OV = W_V[j]·W_O[h] (written back through W_O[h]) or W_QK =
    /// W_Q[h]·W_K[j]ᵀ (through W_Q[h]); j = the head's kv head, whose projections other heads share and stay as they are.
    /// Both are M = L·R with the edited factor on the right — OV: L = W_V[j], R = W_O[h]; QK transposed, W_QKᵀ = W_K[j]·W_Q[h]ᵀ
    /// (same singular values, same component order) — see <see cref="EditRightFactor"/>.
    /// </summary>
    internal static void EditHead(CanonicalWeights weights, EditWeights edit, string where)
    {
        var a = weights.Layers[edit.Head.Layer].Attention;
        int h = edit.Head.Head, j = a.KvHeadOf(h), C = a.DModel, HD = a.DHead;
        var gains = Enumerable.Range(0, HD).Select(edit.Gain).ToArray();
        if (gains.All(g => g == 1))
        {
            return; // nothing removed or rescaled: the weights stay bit for bit
        }
        if (C < HD)
        {
            throw new InvalidInputException($"{where}: d_head {HD} exceeds d_model {C}; the head's circuit is full rank and cannot be factored");
        }
        if (edit.Circuit == HeadCircuit.Ov)
        {
            var left = Matrix<double>.Build.Dense(C, HD, (r, k) => a.WV[(j * C + r) * HD + k]);       // W_V[j] (C, HD)
            var right = Matrix<double>.Build.Dense(HD, C, (k, r) => a.WO[(h * HD + k) * C + r]);       // W_O[h] (HD, C)
            var edited = EditRightFactor(left, right, gains);
            var wo = a.O(h);
            for (int k = 0; k < HD; k++)
            {
                for (int r = 0; r < C; r++)
                {
                    wo[k * C + r] = (float)edited[k, r];
                }
            }
        }
        else
        {
            var left = Matrix<double>.Build.Dense(C, HD, (r, k) => a.WK[(j * C + r) * HD + k]);       // W_K[j] (C, HD)
            var right = Matrix<double>.Build.Dense(HD, C, (k, r) => a.WQ[(h * C + r) * HD + k]);       // W_Q[h]ᵀ (HD, C)
            var edited = EditRightFactor(left, right, gains);
            var wq = a.Q(h);
            for (int r = 0; r < C; r++)
            {
                for (int k = 0; k < HD; k++)
                {
                    wq[r * HD + k] = (float)edited[k, r];
                }
            }
        }
    }

    /// <summary>
    /// R′ with L·R′ = Σ_i g_i s_i u_i v_iᵀ, the SVD of M = L·R with component i multiplied by <paramref name="gains"/>[i].
    /// Through <see cref="FactoredMatrix"/>'s cores: L = Q_L R_L, Rᵀ = Q_R R_R, M = Q_L·K·Q_Rᵀ with the core K = R_L R_Rᵀ = U S Vᵀ;
    /// the change ΔK = Σ_i (1 − g_i) s_i U_i V_iᵀ gives R′ = R − R_L⁺·ΔK·R_R⁺ᵀ·R. Check: L·R_L⁺ΔK R_R⁺ᵀ R = Q_L (R_L R_L⁺) ΔK
    /// (R_R R_R⁺)ᵀ Q_Rᵀ = Q_L ΔK Q_Rᵀ, since ΔK's columns lie in K's, hence in R_L's, and its rows in R_R's. The pseudo-inverses
    /// make this hold when L or R is rank-deficient too (a component with s_i = 0 needs no change).
    /// </summary>
    private static Matrix<double> EditRightFactor(Matrix<double> left, Matrix<double> right, double[] gains)
    {
        var m = new FactoredMatrix(left, right);
        var svd = m.Core.Svd(computeVectors: true);
        int r = gains.Length;
        var delta = Matrix<double>.Build.Dense(r, r);
        for (int i = 0; i < r; i++)
        {
            double w = (1 - gains[i]) * svd.S[i];
            if (w != 0)
            {
                delta += w * svd.U.Column(i).ToColumnMatrix() * svd.VT.Row(i).ToRowMatrix();
            }
        }
        return right - m.RA.PseudoInverse() * delta * m.RB.PseudoInverse().Transpose() * right;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Inject sources

    // one clean run of the (edited) model on each inject item's source, keeping hook_q/k/v of the layers it touches
    private void RunSources(Func<string, int[]>? encode)
    {
        for (int i = 0; i < Recipe.Interventions.Count; i++)
        {
            if (Recipe.Interventions[i] is not InjectActivations inj)
            {
                continue;
            }
            string where = Recipe.Where(i);
            int[] ids = inj.Source.Tokens?.ToArray()
                ?? (encode ?? throw new InvalidInputException($"{where}: source.text needs a tokenizer (give the model's tokenizer, or source.tokens)"))(inj.Source.Text!);
            if (ids.Length == 0 || ids.Length > Model.Config.MaxPositions)
            {
                throw new InvalidInputException($"{where}: source has {ids.Length} tokens; it needs 1..{Model.Config.MaxPositions}");
            }
            int bad = Array.FindIndex(ids, t => (uint)t >= (uint)Model.Config.VocabSize);
            if (bad >= 0)
            {
                throw new InvalidInputException($"{where}: source token {ids[bad]} (position {bad}) is outside the vocabulary [0, {Model.Config.VocabSize})");
            }
            var names = inj.Heads.Select(h => SourcePoint(h.Layer, inj.Component).Name).ToHashSet();
            var (_, cache) = Model.RunWithCache(ModelInput.Single(ids), names.Contains);
            _sources[i] = cache;
        }
    }

    /// <summary>The number of tokens of each inject item's source (empty when the recipe injects nothing).</summary>
    public IEnumerable<(int Item, int Length)> SourceLengths =>
        _sources.Select(p => (p.Key, p.Value[p.Value.Names.First()].Shape[1]));

    /// <summary>Throws unless every inject source fits a run of <paramref name="positions"/> tokens: exactly as long for a
    /// whole-sequence run, at least as long for generation (every generated position needs the source's activation there).</summary>
    public void RequireSourcesCover(int positions, bool generation)
    {
        foreach (var (item, length) in SourceLengths)
        {
            if (generation ? length < positions : length != positions)
            {
                throw new InvalidInputException(generation
                    ? $"{Recipe.Where(item)}: source has {length} tokens, but generation reaches position {positions - 1}: inject beyond the source's length is refused (shorten --max-tokens or lengthen the source)"
                    : $"{Recipe.Where(item)}: source has {length} tokens, the input {positions}: a source must be exactly as long as the input");
            }
        }
    }

    private static HookPoint ComponentPoint(int layer, InjectComponent c) =>
        new(layer, c switch { InjectComponent.Q => HookKind.Q, InjectComponent.K => HookKind.K, _ => HookKind.V });

    // k/v into one query head of a grouped-query model: recomputed at hook_z (see GroupedKvInject)
    private bool Grouped(InjectActivations inj) => inj.Component != InjectComponent.Q && Model.Config.KvGroupSize > 1;

    // what the source run keeps: the point the injection writes, or for a grouped k the keys as attention reads them (after RoPE:
    // the source's k rotated at the same positions is what injecting its pre-RoPE k gives)
    private HookPoint SourcePoint(int layer, InjectComponent c) =>
        c == InjectComponent.K && Model.Config.KvGroupSize > 1 && Model.Config.Positions == PositionKind.Rotary
            ? new(layer, HookKind.RotK)
            : ComponentPoint(layer, c);

    private static void RequireSourceCovers(int past, int T, int srcLen, bool generation, string where)
    {
        if (generation ? past + T > srcLen : past != 0 || T != srcLen)
        {
            throw new InvalidInputException(generation
                ? $"{where}: source has {srcLen} tokens, but the run reached position {past + T - 1}: inject beyond the source's length is refused"
                : $"{where}: source has {srcLen} tokens, the input {T}: a source must be exactly as long as the input");
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Hooks

    /// <summary>A new hook set holding the recipe's hooks (see <see cref="AddHooks"/>).</summary>
    public HookSet CreateHooks(bool generation = false)
    {
        var hooks = new HookSet(Model.Config.NLayers);
        AddHooks(hooks, generation);
        return hooks;
    }

    /// <summary>The recipe's logits [batch, pos, vocab] on <paramref name="input"/>. To add hooks of your own, build a
    /// <see cref="HookSet"/>, <see cref="AddHooks"/> to it and run <see cref="Model"/>.Forward(input, hooks).</summary>
    public float[] Forward(ModelInput input) => Model.Forward(input, CreateHooks());

    /// <summary>Runs <paramref name="input"/> under the recipe and caches the activations (as the model's RunWithCache does):
    /// the cache sees each activation after the recipe changed it.</summary>
    public (float[] Logits, ActivationCache Cache) RunWithCache(ModelInput input, Func<string, bool>? filter = null) =>
        Model.RunWithCache(input, filter, baseHooks: hooks => AddHooks(hooks));

    /// <summary>
    /// Adds the recipe's hooks to <paramref name="hooks"/> (for <see cref="Model"/>): hooks added before fire before the recipe's
    /// at the same point, hooks added after see the recipe's result. With <paramref name="generation"/> a call may be one step of
    /// a KV-cached generation: inject reads the source at the step's positions (which the source must cover), and
    /// <c>ablate mean</c> averages over every position processed since the cache was reset.
    /// </summary>
    public void AddHooks(HookSet hooks, bool generation = false)
    {
        // k/v injected into one query head of a grouped-query model: that head's z is recomputed first at hook_z, before every
        // hook_z item of the recipe, as a change of its keys or values comes before them
        var grouped = new List<GroupedKvInject>();
        for (int i = 0; i < Recipe.Interventions.Count; i++)
        {
            if (Recipe.Interventions[i] is InjectActivations inj && Grouped(inj))
            {
                foreach (var layer in inj.Heads.GroupBy(h => h.Layer))
                {
                    var g = new GroupedKvInject(Model, layer.Key, layer.Select(h => h.Head).Distinct().ToArray(), inj.Component,
                        _sources[i][SourcePoint(layer.Key, inj.Component).Name], generation, Recipe.Where(i));
                    hooks.Add(new HookPoint(layer.Key, HookKind.Z), g.Recompute);
                    grouped.Add(g);
                }
            }
        }
        for (int i = 0; i < Recipe.Interventions.Count; i++)
        {
            var item = Recipe.Interventions[i];
            string where = Recipe.Where(i);
            switch (item)
            {
                case ScaleHeads s:
                    float factor = (float)s.Factor;
                    RowAction scale = row => { foreach (ref float x in row) { x *= factor; } }; // made once: the hook allocates nothing
                    PerLayer(hooks, s.Heads, HookKind.Z, (a, heads) => ForEachHeadRow(a, heads, scale));
                    break;
                case AblateHeads { Mean: false } z:
                    PerLayer(hooks, z.Heads, HookKind.Z, (a, heads) => ForEachHeadRow(a, heads, row => row.Clear()));
                    break;
                case AblateHeads m:
                    foreach (var layer in m.Heads.GroupBy(h => h.Layer))
                    {
                        var mean = new MeanZ(Model, layer.Select(h => h.Head).Distinct().ToArray());
                        hooks.Add(new HookPoint(layer.Key, HookKind.Z), mean.Apply);
                    }
                    break;
                case SoftenHeads s:
                    PerLayer(hooks, s.Heads, HookKind.Pattern, (a, heads) => Soften(a, heads, s.Strength));
                    break;
                case RedistributeSink r:
                    int[] sinks = [.. r.Sinks];
                    PerLayer(hooks, r.Heads, HookKind.Pattern, (a, heads) => Redistribute(a, heads, r.Fraction, sinks));
                    break;
                case InjectActivations inj when Grouped(inj):
                    break; // recomputed at hook_z, attached above
                case InjectActivations inj:
                    var source = _sources[i];
                    foreach (var layer in inj.Heads.GroupBy(h => h.Layer))
                    {
                        var point = ComponentPoint(layer.Key, inj.Component);
                        var src = source[point.Name]; // [1, T_src, NH or NKV, HD]
                        int[] heads = layer.Select(h => h.Head).Distinct().ToArray(); // MHA for k/v (checked): kv head = query head
                        hooks.Add(point, a => Inject(a, heads, src, generation, where));
                    }
                    break;
            }
        }
        // the inputs of a grouped k/v injection's recompute, captured after every recipe hook on q/k/v has had its say
        foreach (var g in grouped)
        {
            g.AddCaptures(hooks);
        }
    }

    // one hook per layer on `kind`, handed that layer's distinct heads
    private static void PerLayer(HookSet hooks, IReadOnlyList<HeadId> heads, HookKind kind, Action<ActivationView, int[]> apply)
    {
        foreach (var layer in heads.GroupBy(h => h.Layer))
        {
            int[] hs = layer.Select(h => h.Head).Distinct().ToArray();
            hooks.Add(new HookPoint(layer.Key, kind), a => apply(a, hs));
        }
    }

    private delegate void RowAction(Span<float> row);

    // z: [B, T, NH, HD] — calls `act` on each listed head's HD values at every row
    private static void ForEachHeadRow(ActivationView a, int[] heads, RowAction act)
    {
        int NH = a.Shape[2], HD = a.Shape[3];
        var z = a.Data.Span;
        for (int r = 0; r < z.Length / (NH * HD); r++)
        {
            foreach (int h in heads)
            {
                act(z.Slice((r * NH + h) * HD, HD));
            }
        }
    }

    /// <summary>ablate mean: each head's z replaced by its mean over every position (and sequence) of the run — the mean of
    /// <see cref="Ablation"/>'s <c>--method mean</c> on that input, summed with the same helper. The sums restart with each run
    /// (the KV cache empty); during generation they grow step by step, so a step's mean covers the positions so far.</summary>
    private sealed class MeanZ(TransformerModel model, int[] heads)
    {
        private readonly double[] _sums = new double[model.Config.NHeads * model.Config.DHead]; // (NH·HD)
        private long _rows;

        public void Apply(ActivationView a)
        {
            if (model.PastLength == 0)
            {
                Array.Clear(_sums);
                _rows = 0;
            }
            var z = a.Data.Span; // [B, T, NH, HD]
            Ablation.AccumulateRows(z, _sums);
            _rows += z.Length / _sums.Length;
            int HD = model.Config.DHead;
            Span<float> mean = stackalloc float[HD];
            foreach (int h in heads)
            {
                for (int k = 0; k < HD; k++)
                {
                    mean[k] = (float)(_sums[h * HD + k] / _rows);
                }
                for (int r = 0; r < z.Length / _sums.Length; r++)
                {
                    mean.CopyTo(z.Slice(r * _sums.Length + h * HD, HD));
                }
            }
        }
    }

    // pattern: [B, NH, T, S], query t at position S − T + t: A[q] ← (1 − s)·A[q] + s·e_q
    private static void Soften(ActivationView a, int[] heads, double strength)
    {
        int B = a.Shape[0], NH = a.Shape[1], T = a.Shape[2], S = a.Shape[3], past = S - T;
        float keep = (float)(1 - strength), self = (float)strength;
        var p = a.Data.Span;
        for (int b = 0; b < B; b++)
        {
            foreach (int h in heads)
            {
                for (int t = 0; t < T; t++)
                {
                    var row = p.Slice(((b * NH + h) * T + t) * S, S);
                    foreach (ref float x in row)
                    {
                        x *= keep;
                    }
                    row[past + t] += self;
                }
            }
        }
    }

    // pattern: [B, NH, T, S]. For each query q > max(sinks): m = Σ_{k∈sinks} A[q,k]; sink entries × (1 − f); the other visible
    // keys (k ≤ q, not a sink, A > 0) get f·m shared in proportion to their attention. Rows with no other attention are unchanged.
    private static void Redistribute(ActivationView a, int[] heads, double fraction, int[] sinks)
    {
        int B = a.Shape[0], NH = a.Shape[1], T = a.Shape[2], S = a.Shape[3], past = S - T, lastSink = 0;
        foreach (int k in sinks)
        {
            lastSink = Math.Max(lastSink, k);
        }
        double keep = 1 - fraction; // applied in double: each sink entry is (1 − f)·A rounded once
        var p = a.Data.Span;
        for (int b = 0; b < B; b++)
        {
            foreach (int h in heads)
            {
                for (int t = Math.Max(0, lastSink + 1 - past); t < T; t++)
                {
                    int q = past + t;
                    var row = p.Slice(((b * NH + h) * T + t) * S, q + 1);
                    double m = 0, others = 0;
                    foreach (int k in sinks)
                    {
                        m += row[k];
                    }
                    for (int k = 0; k <= q; k++)
                    {
                        others += row[k] > 0 && !sinks.Contains(k) ? row[k] : 0;
                    }
                    if (others == 0)
                    {
                        continue;
                    }
                    double share = fraction * m / others;
                    for (int k = 0; k <= q; k++)
                    {
                        if (sinks.Contains(k))
                        {
                            row[k] = (float)(row[k] * keep);
                        }
                        else if (row[k] > 0)
                        {
                            row[k] += (float)(share * row[k]);
                        }
                    }
                }
            }
        }
    }
}
