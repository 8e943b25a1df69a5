namespace Headwise.Hooks;

/// <summary>
/// What a hook function sees: the activation at a hook point, in place. Reading <see cref="Data"/> observes it;
/// writing into it replaces it for the rest of the forward pass (TransformerLens' "return a new tensor").
/// </summary>
public sealed class ActivationView
{
    internal ActivationView(HookPoint point, Memory<float> data, int[] shape)
    {
        Point = point;
        Data = data;
        Shape = shape;
    }

    public HookPoint Point { get; }
    public string Name => Point.Name;
    public int Layer => Point.Layer;

    /// <summary>The activation, row-major in <see cref="Shape"/>. Writable.</summary>
    public Memory<float> Data { get; }

    public int[] Shape { get; }

    /// <summary>A copy as a <see cref="Tensor"/>.</summary>
    public Tensor ToTensor()
    {
        var copy = GC.AllocateUninitializedArray<float>(Data.Length);
        Data.Span.CopyTo(copy);
        return new Tensor(copy, (int[])Shape.Clone());
    }
}

/// <summary>A hook function: called with the activation at its point, during the forward pass.</summary>
public delegate void HookFunction(ActivationView activation);
