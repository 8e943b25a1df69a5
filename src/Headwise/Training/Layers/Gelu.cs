using System.Numerics;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>GELU, tanh approximation (GPT-2's gelu_new): y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
public static class Gelu
{
    private const float S = 0.7978845608028654f; // √(2/π)
    private const float A = 0.044715f;

    // x, out: (n)
    public static void Forward(ReadOnlySpan<float> x, Span<float> output) => K.GeluTanh(x, output);

    // dout, x: (n)  dx: (n) overwritten
    // undoes: y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³):  dy/dx = ½(1 + tanh u) + ½x·(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> x, Span<float> dx)
    {
        int n = x.Length, i = 0, W = Vector<float>.Count;
        var half = new Vector<float>(0.5f);
        var one = Vector<float>.One;
        var two = new Vector<float>(2f);
        var s = new Vector<float>(S);
        var a = new Vector<float>(A);
        var a3 = new Vector<float>(3 * A);
        for (; i + W <= n; i += W)
        {
            var v = new Vector<float>(x[i..]);
            var u = s * (v + a * v * v * v);
            // tanh u = 1 − 2/(e^{2u} + 1): saturates to ±1 without NaN when e^{2u} over- or underflows
            var th = one - two / (Vector.Exp(two * u) + one);
            var d = half * (one + th) + half * v * (one - th * th) * s * (one + a3 * v * v);
            (new Vector<float>(dout[i..]) * d).CopyTo(dx[i..]);
        }
        for (; i < n; i++) // remainder
        {
            float v = x[i];
            float th = MathF.Tanh(S * (v + A * v * v * v));
            dx[i] = dout[i] * (0.5f * (1 + th) + 0.5f * v * (1 - th * th) * S * (1 + 3 * A * v * v));
        }
    }
}
