using Headwise.Compute;

namespace Headwise.Sparse;

/// <summary><c>dense</c>: every causal pair — what the model computes with no policy set.</summary>
public sealed class DensePolicy : AttentionPolicy
{
    /// <summary>Counts are per instance; <see cref="AttentionSpec.Parse"/> returns a fresh one each time.</summary>
    public static DensePolicy Instance => new();

    public override string Spec => "dense";

    public override bool IsDense => true;

    protected override AttentionSparsity Choose(ReadOnlySpan<float> q, ReadOnlySpan<float> k, int T, int S,
        int NH, int NKV, int HD, int pastLen, ReadOnlySpan<byte> keyMask) => AttentionSparsity.Dense;
}
