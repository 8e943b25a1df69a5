using Headwise.Compute;

namespace Headwise.Training.Layers;

/// <summary>Token embedding plus (optionally) learned positions: out[b,t] = wte[ids[b,t]] + wpe[t].</summary>
public static class Embedding
{
    // ids: (N)  wte: (V, C)  wpe: (T, C) or empty  out: (N, C)
    public static void Forward(ReadOnlySpan<int> ids, ReadOnlySpan<float> wte, ReadOnlySpan<float> wpe, Span<float> output,
        int N, int T, int C)
    {
        int V = wte.Length / C;
        for (int n = 0; n < N; n++)
        {
            int id = ids[n];
            if ((uint)id >= (uint)V)
            {
                throw new InvalidInputException($"token id {id} at position {n} is outside the vocabulary (0..{V - 1})");
            }
            var o = output.Slice(n * C, C);
            wte.Slice(id * C, C).CopyTo(o);
            if (!wpe.IsEmpty)
            {
                Kernels.Add(o, wpe.Slice(n % T * C, C), o);
            }
        }
    }

    // dout: (N, C)  dwte: (V, C) += or empty (a fixed table)  dwpe: (T, C) += or empty
    // Rows are scattered into shared table rows, so this runs on one thread in row order (deterministic).
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<int> ids, Span<float> dwte, Span<float> dwpe, int N, int T, int C)
    {
        for (int n = 0; n < N; n++)
        {
            var d = dout.Slice(n * C, C);
            // undoes: wte.Slice(id * C, C).CopyTo(o)
            if (!dwte.IsEmpty) Kernels.Add(dwte.Slice(ids[n] * C, C), d, dwte.Slice(ids[n] * C, C));
            if (!dwpe.IsEmpty)
            {
                // undoes: Kernels.Add(o, wpe.Slice(n % T * C, C), o)
                Kernels.Add(dwpe.Slice(n % T * C, C), d, dwpe.Slice(n % T * C, C));
            }
        }
    }
}
