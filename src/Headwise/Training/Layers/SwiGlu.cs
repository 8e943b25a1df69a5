using System.Numerics;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>SwiGLU: y = silu(gate)·up, silu(g) = g·σ(g).</summary>
public static class SwiGlu
{
    // gate, up, out: (n)
    public static void Forward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output) => K.SwiGlu(gate, up, output);

    // dout, gate, up: (n)  dgate, dup: (n) overwritten
    // undoes: y = silu(g)·u:  ∂y/∂u = silu(g),  ∂y/∂g = u·σ(g)(1 + g(1 − σ(g)))
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> dgate, Span<float> dup)
    {
        int n = gate.Length, i = 0, W = Vector<float>.Count;
        var one = Vector<float>.One;
        for (; i + W <= n; i += W)
        {
            var g = new Vector<float>(gate[i..]);
            var d = new Vector<float>(dout[i..]);
            var sig = one / (one + Vector.Exp(-g));
            (d * g * sig).CopyTo(dup[i..]);
            (d * new Vector<float>(up[i..]) * sig * (one + g * (one - sig))).CopyTo(dgate[i..]);
        }
        for (; i < n; i++) // remainder
        {
            float g = gate[i];
            float sig = 1f / (1f + MathF.Exp(-g));
            dup[i] = dout[i] * g * sig;
            dgate[i] = dout[i] * up[i] * sig * (1 + g * (1 - sig));
        }
    }
}
