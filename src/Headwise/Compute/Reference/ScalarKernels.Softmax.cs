namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // x: (R, S) softmax over each row in place; −∞ entries become 0; a row that is all −∞ becomes all 0.
    public static void MaskedSoftmax(Span<float> x, int R, int S)
    {
        for (int r = 0; r < R; r++)
        {
            var row = x.Slice(r * S, S);
            float max = float.NegativeInfinity;
            for (int j = 0; j < S; j++) max = Math.Max(max, row[j]);
            if (float.IsNegativeInfinity(max))
            {
                row.Clear();
                continue;
            }
            double sum = 0;
            for (int j = 0; j < S; j++) sum += Math.Exp(row[j] - max);
            for (int j = 0; j < S; j++) row[j] = (float)(Math.Exp(row[j] - max) / sum);
        }
    }

    // x: (V) — log Σ exp(x) in double, max subtracted first; −∞ for an empty x.
    public static double LogSumExp(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }
}
