namespace Headwise.Hooks;

/// <summary>
/// The hooks attached for one forward pass. The forward asks <see cref="IsActive"/> at each point — one array read —
/// so a model with no hooks attached pays nothing for hook support.
/// </summary>
public sealed class HookSet
{
    private readonly int _layers;
    private readonly List<HookFunction>?[] _functions;
    private static readonly int KindCount = Enum.GetValues<HookKind>().Length;

    public HookSet(int layers)
    {
        _layers = layers;
        _functions = new List<HookFunction>?[(layers + 1) * KindCount];
    }

    /// <summary>Show grouped-query key/value heads once per query head in hook_k/hook_v/hook_rot_k (read-only copies).</summary>
    public bool ExpandKvHeads { get; set; }

    public bool Any { get; private set; }

    private int Slot(HookPoint p)
    {
        int layer = p.IsModelLevel ? _layers : p.Layer;
        if (!p.IsModelLevel && (uint)layer >= (uint)_layers)
        {
            throw new InvalidInputException($"hook point '{p.Name}': the model has layers 0..{_layers - 1}");
        }
        return layer * KindCount + (int)p.Kind;
    }

    public void Add(HookPoint point, HookFunction fn)
    {
        int s = Slot(point);
        (_functions[s] ??= []).Add(fn);
        Any = true;
    }

    /// <summary>Adds a hook by TransformerLens name, e.g. "blocks.3.attn.hook_pattern".</summary>
    public void Add(string name, HookFunction fn) =>
        Add(HookPoint.TryParse(name) ?? throw new InvalidInputException($"'{name}' is not a hook point name (see `headwise info` for the list)"), fn);

    public bool IsActive(int layer, HookKind kind)
    {
        int l = kind <= HookKind.LnFinalNormalized ? _layers : layer;
        return _functions[l * KindCount + (int)kind] is not null;
    }

    internal void Fire(int layer, HookKind kind, Memory<float> data, int[] shape)
    {
        int l = kind <= HookKind.LnFinalNormalized ? _layers : layer;
        var list = _functions[l * KindCount + (int)kind];
        if (list is null)
        {
            return;
        }
        var view = new ActivationView(new HookPoint(kind <= HookKind.LnFinalNormalized ? HookPoint.ModelLevel : layer, kind), data, shape);
        foreach (var fn in list)
        {
            fn(view);
        }
    }
}
