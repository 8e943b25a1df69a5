namespace Headwise.Models;

/// <summary>
/// Which positions' logits a forward computes: for batch row b, positions <c>Start[b] … Start[b] + Count[b] − 1</c>, packed one
/// after another as (Σ Count, V). A scorer that needs only some positions — eval's sliding windows score only the part of a
/// window not scored before, and no position predicts past the end of a text or from padding — skips the unembedding of the
/// rest, which on a small model with a large vocabulary is a third of the forward.
/// </summary>
public sealed record LogitRows(int[] Start, int[] Count)
{
    /// <summary>Rows in all: the logits are (Total, V).</summary>
    public int Total { get; } = Count.Sum();

    /// <summary>Every range inside [0, T) of its batch row, for a batch of <paramref name="B"/>.</summary>
    public void Check(int B, int T)
    {
        if (Start.Length != B || Count.Length != B)
        {
            throw new InvalidInputException($"logit rows for {Start.Length} sequences ({Count.Length} counts) do not match the batch of {B}");
        }
        for (int b = 0; b < B; b++)
        {
            if (Start[b] < 0 || Count[b] < 0 || Start[b] + Count[b] > T)
            {
                throw new InvalidInputException($"logit rows {Start[b]}..{Start[b] + Count[b] - 1} of sequence {b} are outside its {T} positions");
            }
        }
    }
}
