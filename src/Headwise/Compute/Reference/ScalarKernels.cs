namespace Headwise.Compute.Reference;

/// <summary>
/// Scalar twins of every kernel: plain loops that state the algorithm and serve as the reference the SIMD paths are tested against.
/// Slow on purpose; never called on a hot path.
/// </summary>
public static partial class ScalarKernels
{
}
