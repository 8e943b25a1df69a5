using Headwise.Compute;

namespace Headwise.Sparse;

/// <summary>
/// <c>window:W,sinks:S</c> (StreamingLLM): query i sees key s ≤ i iff i − s &lt; W (its own position and the W − 1 before it)
/// or s &lt; S (the first S tokens, the attention sinks). Key positions are unchanged; in generation the same spec makes the
/// KV cache a rolling cache of S sinks + W recent tokens (<see cref="Generation.StreamingGenerator"/>).
/// </summary>
public sealed class WindowPolicy : AttentionPolicy
{
    private readonly AttentionSparsity _sparsity;

    public WindowPolicy(int window, int sinks)
    {
        if (window < 1 || sinks < 0)
        {
            throw new InvalidInputException($"window:{window},sinks:{sinks}: the window must be at least 1 and sinks 0 or more");
        }
        Window = window;
        Sinks = sinks;
        _sparsity = new AttentionSparsity { Window = window, Sinks = sinks };
    }

    public int Window { get; }
    public int Sinks { get; }

    public override string Spec => $"window:{Window},sinks:{Sinks}";

    /// <summary>The density of a rolling cache of Sinks + Window tokens over a stream of <paramref name="tokens"/>: token i
    /// attends to min(i + 1, Sinks + Window) keys of its i + 1 causal ones.</summary>
    public double RollingDensity(long tokens)
    {
        long capacity = Sinks + Window, kept = 0, causal = 0;
        for (long i = 0; i < tokens; i++)
        {
            kept += Math.Min(i + 1, capacity);
            causal += i + 1;
        }
        return causal == 0 ? 1 : (double)kept / causal;
    }

    // the same pairs whatever the input
    protected override AttentionSparsity Choose(ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask) => _sparsity;
}
