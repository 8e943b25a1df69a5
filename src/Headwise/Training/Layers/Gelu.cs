using K = Headwise.Kernels.Kernels;

namespace Headwise.Training.Layers;

/// <summary>GELU, tanh approximation (GPT-2's gelu_new): y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
public static class Gelu
{
    private const float S = 0.7978845608028654f; // √(2/π)

    // x, out: (n)
    public static void Forward(ReadOnlySpan<float> x, Span<float> output) => K.GeluTanh(x, output);

    // dout, x: (n)  dx: (n) overwritten
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> x, Span<float> dx)
    {
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            float u = S * (v + 0.044715f * v * v * v);
            float th = MathF.Tanh(u);
            float sech2 = 1 - th * th;
            // undoes: y = ½x(1 + tanh(u)):  dy/dx = ½(1 + tanh u) + ½x·sech²u·√(2/π)(1 + 3·0.044715x²)
            dx[i] = dout[i] * (0.5f * (1 + th) + 0.5f * v * sech2 * S * (1 + 3 * 0.044715f * v * v));
        }
    }
}
