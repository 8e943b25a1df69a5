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
        _ra = new(() => a.QR(MathNet.Numerics.LinearAlgebra.Factorization.QRMethod.Thin).R);
        _rb = new(() => b.Transpose().QR(MathNet.Numerics.LinearAlgebra.Factorization.QRMethod.Thin).R);
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

    public FactoredMatrix Transpose() => new(B.Transpose(), A.Transpose());

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
