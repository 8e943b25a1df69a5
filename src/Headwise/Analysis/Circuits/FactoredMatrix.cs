using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Analysis.Circuits;

/// <summary>
/// A low-rank matrix M = A·B kept as its factors — A (m × r), B (r × n), r ≪ m, n — as TransformerLens' FactoredMatrix.
/// Everything here is computed through the r × r cores, never by forming the m × n product:
/// with thin QR factorisations A = Q_A R_A and Bᵀ = Q_B R_B, M = Q_A (R_A R_Bᵀ) Q_Bᵀ, and Q_A, Q_B have orthonormal columns,
/// so M's singular values and Frobenius norm are those of the r × r core R_A R_Bᵀ.
/// </summary>
public sealed class FactoredMatrix
{
    public FactoredMatrix(Matrix<double> a, Matrix<double> b)
    {
        if (a.ColumnCount != b.RowCount)
        {
            throw new ArgumentException($"factors do not chain: A is {a.RowCount}×{a.ColumnCount}, B is {b.RowCount}×{b.ColumnCount}");
        }
        A = a;
        B = b;
        _ra = new(() => ThinR(a));
        _rb = new(() => ThinR(b.Transpose()));
        _core = new(() => RA * RB.Transpose());
        _norm = new(() => Core.FrobeniusNorm());
    }

    private readonly Lazy<Matrix<double>> _ra, _rb, _core;
    private readonly Lazy<double> _norm;

    /// <summary>Left factor (m × r).</summary>
    public Matrix<double> A { get; }

    /// <summary>Right factor (r × n).</summary>
    public Matrix<double> B { get; }

    /// <summary>R of the thin QR of A (r × r).</summary>
    public Matrix<double> RA => _ra.Value;

    /// <summary>R of the thin QR of Bᵀ (r × r).</summary>
    public Matrix<double> RB => _rb.Value;

    /// <summary>R_A R_Bᵀ: same singular values as A·B.</summary>
    public Matrix<double> Core => _core.Value;

    public int Rows => A.RowCount;
    public int Columns => B.ColumnCount;

    /// <summary>The singular values of A·B, largest first (r of them).</summary>
    public double[] SingularValues() => Core.Svd(computeVectors: false).S.ToArray();

    /// <summary>‖A·B‖_F.</summary>
    public double FrobeniusNorm() => _norm.Value;

    /// <summary>(A·B)ᵀ = Bᵀ·Aᵀ, reusing this matrix's R factors (swapped) instead of factorising again.</summary>
    public FactoredMatrix Transpose() => new(B.Transpose(), A.Transpose(), _rb, _ra);

    private FactoredMatrix(Matrix<double> a, Matrix<double> b, Lazy<Matrix<double>> ra, Lazy<Matrix<double>> rb)
    {
        A = a;
        B = b;
        _ra = ra;
        _rb = rb;
        _core = new(() => RA * RB.Transpose());
        _norm = new(() => Core.FrobeniusNorm());
    }

    /// <summary>
    /// R of a thin QR of <paramref name="a"/> (m × n, m ≥ n) by Householder reflections, Q not formed: for k = 0..n−1, reflect
    /// column k below the diagonal onto e_k and apply the same reflection to the columns right of it. Equivalent to MathNet's
    /// QR(Thin).R up to the signs of R's rows (which change neither singular values nor norms), and several times faster.
    /// </summary>
    public static Matrix<double> ThinR(Matrix<double> a)
    {
        int m = a.RowCount, n = a.ColumnCount;
        if (m < n)
        {
            throw new ArgumentException($"a thin QR needs at least as many rows as columns (got {m}×{n})");
        }
        var w = a.ToColumnMajorArray(); // column j is w[j·m .. j·m + m)
        var v = new double[m];
        for (int k = 0; k < n; k++)
        {
            var col = w.AsSpan(k * m + k, m - k);
            double norm = 0;
            foreach (double x in col)
            {
                norm += x * x;
            }
            norm = Math.Sqrt(norm);
            if (norm == 0)
            {
                continue; // nothing to reflect: column k is already zero below (and on) the diagonal
            }
            double alpha = col[0] > 0 ? -norm : norm;
            // v = x − α e₁, normalised; H = I − 2vvᵀ maps x to α e₁
            var vk = v.AsSpan(0, m - k);
            col.CopyTo(vk);
            vk[0] -= alpha;
            double vnorm = 0;
            foreach (double x in vk)
            {
                vnorm += x * x;
            }
            vnorm = Math.Sqrt(vnorm);
            for (int i = 0; i < vk.Length; i++)
            {
                vk[i] /= vnorm;
            }
            col[0] = alpha;
            col[1..].Clear();
            for (int j = k + 1; j < n; j++)
            {
                var cj = w.AsSpan(j * m + k, m - k);
                double dot = 0;
                for (int i = 0; i < cj.Length; i++)
                {
                    dot += vk[i] * cj[i];
                }
                dot *= 2;
                for (int i = 0; i < cj.Length; i++)
                {
                    cj[i] -= dot * vk[i];
                }
            }
        }
        return Matrix<double>.Build.Dense(n, n, (i, j) => i <= j ? w[j * m + i] : 0);
    }

    /// <summary>The explicit m × n product (for tests and small matrices only).</summary>
    public Matrix<double> Dense() => A * B;

    /// <summary>‖L·R‖_F for two factored matrices, through the factors:
    /// L·R = Q_{A_L} · R_{A_L} (B_L A_R) R_{B_R}ᵀ · Q_{B_R}ᵀ, so the norm is that of an r_L × r_R matrix.</summary>
    public static double ProductFrobeniusNorm(FactoredMatrix left, FactoredMatrix right)
    {
        if (left.Columns != right.Rows)
        {
            throw new ArgumentException($"cannot multiply {left.Rows}×{left.Columns} by {right.Rows}×{right.Columns}");
        }
        var middle = left.B * right.A;
        return (left.RA * middle * right.RB.Transpose()).FrobeniusNorm();
    }

    /// <summary>Elhage et al.'s composition score ‖L·R‖_F / (‖L‖_F ‖R‖_F), in [0, 1].</summary>
    public static double CompositionScore(FactoredMatrix left, FactoredMatrix right)
    {
        double denom = left.FrobeniusNorm() * right.FrobeniusNorm();
        return denom == 0 ? 0 : ProductFrobeniusNorm(left, right) / denom;
    }
}
