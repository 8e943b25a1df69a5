using Headwise.Compute;

namespace Headwise.Sparse;

/// <summary>
/// A sparse-attention policy: for one layer and one sequence of a step it decides which query–key pairs attention computes
/// (an <see cref="AttentionSparsity"/>), from the step's queries and the cached keys. Parsed from a spec
/// (<see cref="AttentionSpec.Parse"/>: <c>dense</c>, <c>window:W,sinks:S</c>, <c>topk-blocks:B,K[,proxy:P]</c>,
/// <c>chunks:B,K</c>) and set on <see cref="Models.TransformerModel.SparseAttention"/>; the forward asks it once per layer
/// and sequence, and it counts what it kept so that <see cref="Density"/> says how sparse the run was.
/// </summary>
public abstract class AttentionPolicy
{
    /// <summary>The spec this policy was parsed from, in its canonical form (e.g. <c>window:64,sinks:4</c>).</summary>
    public abstract string Spec { get; }

    /// <summary>True when the policy keeps every causal pair whatever the input (<c>dense</c>).</summary>
    public virtual bool IsDense => false;

    /// <summary>Query–key pairs computed since the last <see cref="ResetCounts"/> (real queries and keys, all layers and heads).</summary>
    public long KeptPairs { get; private set; }

    /// <summary>Causal query–key pairs seen since the last <see cref="ResetCounts"/>: what dense attention computes.</summary>
    public long CausalPairs { get; private set; }

    /// <summary>Computed pairs ÷ causal pairs since the last <see cref="ResetCounts"/> (1 before any forward).</summary>
    public double Density => CausalPairs == 0 ? 1 : (double)KeptPairs / CausalPairs;

    /// <summary>Called with (layer, sequence, sparsity) for each decision: lets analyses see what was kept.</summary>
    public Action<int, int, AttentionSparsity>? Observer { get; set; }

    public void ResetCounts()
    {
        KeptPairs = 0;
        CausalPairs = 0;
    }

    /// <summary>The pairs layer <paramref name="layer"/> computes for sequence <paramref name="sequence"/> of the step; counted
    /// into <see cref="Density"/> and shown to <see cref="Observer"/>.</summary>
    // q: (T, NH, HD) after RoPE  k: (S, NKV, HD) the cached keys after RoPE  keyMask: (S) or empty (1 = a real token)
    public AttentionSparsity Select(int layer, int sequence, ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask) =>
        Select(layer, sequence, q, k, T, S, NH, NKV, HD, pastLen, keyMask, out _);

    /// <summary>As above; <paramref name="keepsAll"/> says whether this decision drops nothing (the forward then runs dense).</summary>
    public AttentionSparsity Select(int layer, int sequence, ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask, out bool keepsAll)
    {
        var sparsity = Choose(q, k, T, S, NH, NKV, HD, pastLen, keyMask);
        var (kept, causal) = SparseMask.Count(sparsity, T, S, NH, pastLen, keyMask);
        KeptPairs += kept;
        CausalPairs += causal;
        keepsAll = kept == causal;
        Observer?.Invoke(layer, sequence, sparsity);
        return sparsity;
    }

    /// <summary>The policy's decision for one (layer, sequence); same shapes as <see cref="Select"/>.</summary>
    protected abstract AttentionSparsity Choose(ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask);

    public override string ToString() => Spec;
}
