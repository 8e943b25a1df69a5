using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Training.Experiments;

/// <summary>Small row-major double matrix products for the task models (sizes here are tens to a few hundred), and the
/// decompositions the experiments report, from MathNet.Numerics.</summary>
// The three products stay hand-written: they work on row-major spans in place (MathNet's matrices are column-major
// objects, so each call would copy in and out and allocate), they skip the zero rows of one-hot inputs, and their
// summation order is the one the experiments' quoted figures (docs/training.md) were trained with.
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

    /// <summary>Singular values of a small m×n matrix, descending (MathNet's SVD, values only).</summary>
    public static double[] SingularValues(ReadOnlySpan<double> a, int m, int n)
    {
        var matrix = Matrix<double>.Build.Dense(m, n);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                matrix[i, j] = a[(i * n) + j];
            }
        }
        return [.. matrix.Svd(computeVectors: false).S.OrderByDescending(x => x)];
    }

    /// <summary>Nuclear norm (sum of singular values).</summary>
    public static double NuclearNorm(ReadOnlySpan<double> a, int m, int n) => SingularValues(a, m, n).Sum();

    /// <summary>x solving A·x = b for a symmetric positive-definite A[d×d] (row-major), by MathNet's Cholesky factorization.</summary>
    public static double[] SolveSymmetricPositiveDefinite(ReadOnlySpan<double> a, ReadOnlySpan<double> b, int d)
    {
        var matrix = Matrix<double>.Build.Dense(d, d);
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                matrix[i, j] = a[(i * d) + j];
            }
        }
        return matrix.Cholesky().Solve(Vector<double>.Build.DenseOfArray(b[..d].ToArray())).ToArray();
    }
}
