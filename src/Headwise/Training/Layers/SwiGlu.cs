using K = Headwise.Kernels.Kernels;

namespace Headwise.Training.Layers;

/// <summary>SwiGLU: y = silu(gate)·up, silu(g) = g·σ(g).</summary>
public static class SwiGlu
{
    // gate, up, out: (n)
    public static void Forward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output) => K.SwiGlu(gate, up, output);

    // dout, gate, up: (n)  dgate, dup: (n) overwritten
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> dgate, Span<float> dup)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            float sig = 1f / (1f + MathF.Exp(-g));
            float silu = g * sig;
            // undoes: y = silu(g)·u:  ∂y/∂u = silu(g),  ∂y/∂g = u·σ(g)(1 + g(1 − σ(g)))
            dup[i] = dout[i] * silu;
            dgate[i] = dout[i] * up[i] * sig * (1 + g * (1 - sig));
        }
    }
}
