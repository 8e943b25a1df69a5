namespace Headwise;

/// <summary>A dense float32 array with a shape (row-major). What the activation cache holds and analyses return.</summary>
public sealed class Tensor
{
    public int[] Shape { get; }
    public float[] Data { get; }

    public Tensor(float[] data, params int[] shape)
    {
        if (shape.Aggregate(1L, (a, b) => a * b) != data.Length)
        {
            throw new ArgumentException($"{data.Length} values do not fill shape [{string.Join(", ", shape)}]");
        }
        Data = data;
        Shape = shape;
    }

    public static Tensor Zeros(params int[] shape) => new(new float[shape.Aggregate(1, (a, b) => checked(a * b))], shape);

    public int Rank => Shape.Length;

    public float this[params int[] index]
    {
        get => Data[Offset(index)];
        set => Data[Offset(index)] = value;
    }

    public int Offset(ReadOnlySpan<int> index)
    {
        if (index.Length != Shape.Length)
        {
            throw new ArgumentException($"index of rank {index.Length} for a tensor of rank {Shape.Length}");
        }
        int o = 0;
        for (int i = 0; i < index.Length; i++)
        {
            if ((uint)index[i] >= (uint)Shape[i])
            {
                throw new IndexOutOfRangeException($"index {index[i]} out of range for dimension {i} of size {Shape[i]}");
            }
            o = o * Shape[i] + index[i];
        }
        return o;
    }

    public override string ToString() => $"Tensor[{string.Join(", ", Shape)}]";
}
