namespace Headwise.Hooks;

/// <summary>
/// The hooks attached for one forward pass. The forward asks <see cref="IsActive"/> at each point — one array read —
/// so a model with no hooks attached pays nothing for hook support.
/// </summary>
public sealed class HookSet
{
    private readonly int _layers;
    private readonly List<HookFunction>?[] _functions;
    private readonly bool[] _mayWrite; // per slot: some function there may overwrite the activation
    private static readonly int KindCount = Enum.GetValues<HookKind>().Length;

    public HookSet(int layers)
    {
        _layers = layers;
        _functions = new List<HookFunction>?[(layers + 1) * KindCount];
        _mayWrite = new bool[(layers + 1) * KindCount];
    }

    /// <summary>A new hook set holding the hooks <paramref name="add"/> attaches (none when null): the base an analysis adds its
    /// own hooks to, e.g. an intervention recipe's (<c>hooks => applied.AddHooks(hooks)</c>), which then fire first.</summary>
    public static HookSet Of(int layers, Action<HookSet>? add)
    {
        var hooks = new HookSet(layers);
        add?.Invoke(hooks);
        return hooks;
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

    /// <summary>Attaches a hook that may read or overwrite the activation.</summary>
    public void Add(HookPoint point, HookFunction fn) => Add(point, fn, observeOnly: false);

    /// <summary>Attaches a hook. With <paramref name="observeOnly"/> the function promises not to write (an activation cache does
    /// this), which lets the forward keep its fused fast paths and hand it side outputs instead.</summary>
    public void Add(HookPoint point, HookFunction fn, bool observeOnly)
    {
        int s = Slot(point);
        (_functions[s] ??= []).Add(fn);
        _mayWrite[s] |= !observeOnly;
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

    /// <summary>Whether a hook that may overwrite the activation is attached at (layer, kind).</summary>
    public bool IsWritable(int layer, HookKind kind)
    {
        int l = kind <= HookKind.LnFinalNormalized ? _layers : layer;
        return _mayWrite[l * KindCount + (int)kind];
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
