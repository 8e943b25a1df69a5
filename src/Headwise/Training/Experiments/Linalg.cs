namespace Headwise.Training.Experiments;

/// <summary>Small row-major double matrix products for the task models (sizes here are tens to a few hundred).</summary>
internal static class Linalg
{
    /// <summary>C[m×n] (+)= A[m×k] · B[k×n].</summary>
    public static void Mm(ReadOnlySpan<double> a, ReadOnlySpan<double> b, Span<double> c, int m, int k, int n, bool accumulate = false)
    {
        if (!accumulate)
        {
            c[..(m * n)].Clear();
        }

        for (int i = 0; i < m; i++)
        {
            var ci = c.Slice(i * n, n);
            for (int p = 0; p < k; p++)
            {
                double av = a[(i * k) + p];
                if (av == 0)
                {
                    continue;
                }

                var bp = b.Slice(p * n, n);
                for (int j = 0; j < n; j++)
                {
                    ci[j] += av * bp[j];
                }
            }
        }
    }

    /// <summary>C[k×n] (+)= Aᵀ · B with A[m×k], B[m×n].</summary>
    public static void MmAt(ReadOnlySpan<double> a, ReadOnlySpan<double> b, Span<double> c, int m, int k, int n, bool accumulate = false)
    {
        if (!accumulate)
        {
            c[..(k * n)].Clear();
        }

        for (int i = 0; i < m; i++)
        {
            var bi = b.Slice(i * n, n);
            for (int p = 0; p < k; p++)
            {
                double av = a[(i * k) + p];
                if (av == 0)
                {
                    continue;
                }

                var cp = c.Slice(p * n, n);
                for (int j = 0; j < n; j++)
                {
                    cp[j] += av * bi[j];
                }
            }
        }
    }

    /// <summary>C[m×n] (+)= A · Bᵀ with A[m×k], B[n×k].</summary>
    public static void MmBt(ReadOnlySpan<double> a, ReadOnlySpan<double> b, Span<double> c, int m, int k, int n, bool accumulate = false)
    {
        for (int i = 0; i < m; i++)
        {
            var ai = a.Slice(i * k, k);
            for (int j = 0; j < n; j++)
            {
                var bj = b.Slice(j * k, k);
                double s = 0;
                for (int p = 0; p < k; p++)
                {
                    s += ai[p] * bj[p];
                }

                c[(i * n) + j] = accumulate ? c[(i * n) + j] + s : s;
            }
        }
    }

    /// <summary>Singular values of a small m×n matrix (eigenvalues of AᵀA by Jacobi rotations), descending.</summary>
    public static double[] SingularValues(ReadOnlySpan<double> a, int m, int n)
    {
        var g = new double[n * n];
        MmAt(a, a, g, m, n, n);
        var ev = SymmetricEigenvalues(g, n);
        return [.. ev.Select(e => Math.Sqrt(Math.Max(0, e))).OrderByDescending(x => x)];
    }

    /// <summary>Nuclear norm (sum of singular values).</summary>
    public static double NuclearNorm(ReadOnlySpan<double> a, int m, int n) => SingularValues(a, m, n).Sum();

    private static double[] SymmetricEigenvalues(double[] s, int n)
    {
        var a = (double[])s.Clone();
        for (int sweep = 0; sweep < 60; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    off += a[(p * n) + q] * a[(p * n) + q];
                }
            }

            if (off < 1e-22)
            {
                break;
            }

            for (int p = 0; p < n; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    double apq = a[(p * n) + q];
                    if (Math.Abs(apq) < 1e-300)
                    {
                        continue;
                    }

                    double theta = (a[(q * n) + q] - a[(p * n) + p]) / (2 * apq);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt((theta * theta) + 1));
                    double c = 1 / Math.Sqrt((t * t) + 1);
                    double sn = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[(k * n) + p];
                        double akq = a[(k * n) + q];
                        a[(k * n) + p] = (c * akp) - (sn * akq);
                        a[(k * n) + q] = (sn * akp) + (c * akq);
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[(p * n) + k];
                        double aqk = a[(q * n) + k];
                        a[(p * n) + k] = (c * apk) - (sn * aqk);
                        a[(q * n) + k] = (sn * apk) + (c * aqk);
                    }
                }
            }
        }

        var ev = new double[n];
        for (int i = 0; i < n; i++)
        {
            ev[i] = a[(i * n) + i];
        }

        return ev;
    }
}
