namespace Headwise.Compute.Reference;

public static partial class ScalarKernels
{
    // a, b: (n) — Σ a[i]·b[i], accumulated in double (the fast paths sum in float, in other orders)
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return sum;
    }

    // x, y: (n) — y[i] += alpha·x[i], multiply then add (two roundings)
    public static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] += alpha * x[i];
    }

    // x: (n) — x[i] *= alpha
    public static void Scale(Span<float> x, float alpha)
    {
        for (int i = 0; i < x.Length; i++) x[i] *= alpha;
    }

    // x: (n) — the largest entry; −∞ for an empty x
    public static float Max(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        return max;
    }
}
