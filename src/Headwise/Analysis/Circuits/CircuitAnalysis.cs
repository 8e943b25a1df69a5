using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Analysis.Circuits;

/// <summary>One head's QK and OV circuits, summarised.</summary>
/// <param name="QkSingularValues">Singular values of W_QK = W_Q W_Kᵀ, largest first (d_head of them).</param>
/// <param name="OvSingularValues">Singular values of W_OV = W_V W_O, largest first.</param>
/// <param name="CopyingScore">Σλ / Σ|λ| over the eigenvalues λ of the OV circuit W_E W_OV W_U (real part of the sum; in [−1, 1];
/// 1 when every eigenvalue is positive — the head copies the tokens it attends to; 0 for a circuit that is zero up to float
/// rounding); NaN when not computed or when the eigen-solver does not converge.</param>
public sealed record HeadCircuit(HeadId Head, double[] QkSingularValues, double[] OvSingularValues, double CopyingScore)
{
    public double QkNorm => Math.Sqrt(QkSingularValues.Sum(s => s * s));
    public double OvNorm => Math.Sqrt(OvSingularValues.Sum(s => s * s));
}

/// <summary>Composition scores of one kind between every earlier head (row, writer) and later head (column, reader).</summary>
/// <param name="Kind">"Q", "K" or "V".</param>
/// <param name="Scores">Scores[i][j] for Heads[i] writing and Heads[j] reading; NaN unless Heads[i] is in an earlier layer.</param>
public sealed record CompositionScores(string Kind, string Definition, HeadId[] Heads, double[][] Scores)
{
    /// <summary>The pairs with the highest scores, highest first.</summary>
    public IReadOnlyList<(HeadId From, HeadId To, double Score)> Top(int k)
    {
        var all = new List<(HeadId, HeadId, double)>();
        for (int i = 0; i < Heads.Length; i++)
        {
            for (int j = 0; j < Heads.Length; j++)
            {
                if (!double.IsNaN(Scores[i][j]))
                {
                    all.Add((Heads[i], Heads[j], Scores[i][j]));
                }
            }
        }
        return all.OrderByDescending(x => x.Item3).ThenBy(x => x.Item1).ThenBy(x => x.Item2).Take(k).ToList();
    }

    public double this[HeadId from, HeadId to] => Scores[Array.IndexOf(Heads, from)][Array.IndexOf(Heads, to)];
}

/// <summary>Every head's circuits and the composition between heads.</summary>
public sealed record CircuitsResult(HeadCircuit[] Heads, CompositionScores? Q, CompositionScores? K, CompositionScores? V);

/// <summary>What <see cref="CircuitAnalysis.Compute(TransformerModel, CircuitOptions, IProgress{AnalysisProgress}, CancellationToken)"/> computes.</summary>
/// <param name="Heads">Restrict singular values and copying scores to these heads (null: all). Composition always uses all heads.</param>
public sealed record CircuitOptions(IReadOnlyList<HeadId>? Heads = null, bool SingularValues = true, bool CopyingScores = true, bool Composition = true);

/// <summary>
/// QK and OV circuits from the weights alone (Elhage et al., "A Mathematical Framework for Transformer Circuits";
/// Talking Heads). Row-vector convention as TransformerLens: W_QK = W_Q W_Kᵀ, W_OV = W_V W_O, both kept factored.
/// </summary>
public static class CircuitAnalysis
{
    public const string QDefinition = "Q-composition ‖W_OV¹·W_QK²‖_F / (‖W_OV¹‖_F ‖W_QK²‖_F): the earlier head's output feeds the later head's queries";
    public const string KDefinition = "K-composition ‖W_OV¹·W_QK²ᵀ‖_F / (‖W_OV¹‖_F ‖W_QK²‖_F): the earlier head's output feeds the later head's keys";
    public const string VDefinition = "V-composition ‖W_OV¹·W_OV²‖_F / (‖W_OV¹‖_F ‖W_OV²‖_F): the earlier head's output feeds the later head's values";

    public static CircuitsResult Compute(TransformerModel model, CircuitOptions? options = null,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= new CircuitOptions();
        var config = model.Config;
        var all = HeadWeights.Read(model).SelectMany(x => x).ToArray();
        var qk = all.Select(h => h.QK).ToArray();
        var ov = all.Select(h => h.OV).ToArray();
        var selected = options.Heads is null ? Enumerable.Range(0, all.Length).ToArray()
            : options.Heads.Select(h => Array.FindIndex(all, a => a.Head == h)).ToArray();
        if (selected.Any(i => i < 0))
        {
            throw new InvalidInputException($"--head: a head is outside the model's {config.NLayers} layers × {config.NHeads} heads");
        }

        float[]? g = options.CopyingScores ? RowMajor(HeadWeights.UnembedEmbed(model, cancel)) : null;
        var heads = new HeadCircuit[selected.Length];
        for (int n = 0; n < selected.Length; n++)
        {
            cancel.ThrowIfCancellationRequested();
            int i = selected[n];
            heads[n] = new HeadCircuit(all[i].Head,
                options.SingularValues ? qk[i].SingularValues() : [],
                options.SingularValues ? ov[i].SingularValues() : [],
                g is null ? double.NaN : CopyingScore(ov[i], g));
            progress?.Report(new AnalysisProgress("circuits", n + 1, selected.Length));
        }
        if (!options.Composition)
        {
            return new CircuitsResult(heads, null, null, null);
        }
        var ids = all.Select(h => h.Head).ToArray();
        var qkT = qk.Select(m => m.Transpose()).ToArray();
        return new CircuitsResult(heads,
            Composition("Q", QDefinition, ids, ov, qk, progress, cancel),
            Composition("K", KDefinition, ids, ov, qkT, progress, cancel),
            Composition("V", VDefinition, ids, ov, ov, progress, cancel));
    }

    /// <summary>Σλ / Σ|λ| over the eigenvalues of W_E·W_OV·W_U, from the d_head × d_head matrix B·G·A (W_OV = A·B, G = W_U·W_E),
    /// which has the same non-zero eigenvalues; the remaining vocab − d_head eigenvalues are zero and add nothing.</summary>
    public static double CopyingScore(FactoredMatrix ov, Matrix<double> unembedEmbed) => CopyingScore(ov, RowMajor(unembedEmbed));

    private static double CopyingScore(FactoredMatrix ov, float[] g)
    {
        int C = ov.Rows, D = ov.A.ColumnCount;
        // B·G·A in float through the engine's GEMM: GA (C × D) = G·A, then small (D × D) = B·GA
        var ga = new float[C * D];
        Kernels.MatMul(g, RowMajor(ov.A), [], ga, C, C, D, WeightLayout.InOut);
        var small = new float[D * D];
        Kernels.MatMul(RowMajor(ov.B), ga, [], small, D, C, D, WeightLayout.InOut);
        // Σλ/Σ|λ| does not change with scale: normalise to max |entry| = 1 before the eigen-solver. A circuit that is zero up
        // to float rounding (‖B·G·A‖ below 1e-6 of ‖B‖·‖G·A‖, e.g. a head writing a subspace the unembedding never reads) is
        // nilpotent noise on which the solver stalls: it copies nothing, score 0, as for an exactly zero circuit.
        double max = 0, smallNorm = Frobenius(small), bound = Frobenius(RowMajor(ov.B)) * Frobenius(ga);
        foreach (float v in small)
        {
            max = Math.Max(max, Math.Abs(v));
        }
        if (!double.IsFinite(max))
        {
            return double.NaN;
        }
        if (max == 0 || smallNorm < 1e-6 * bound)
        {
            return 0;
        }
        try
        {
            var eig = Matrix<double>.Build.Dense(D, D, (i, j) => small[i * D + j] / max).Evd().EigenValues;
            double sum = eig.Sum(e => e.Real), abs = eig.Sum(e => e.Magnitude);
            return abs == 0 ? 0 : sum / abs;
        }
        catch (MathNet.Numerics.NonConvergenceException)
        {
            return double.NaN; // reported as "–"; the record documents NaN as "not computed"
        }
    }

    private static double Frobenius(float[] a)
    {
        double sum = 0;
        foreach (float v in a)
        {
            sum += (double)v * v;
        }
        return Math.Sqrt(sum);
    }

    private static float[] RowMajor(Matrix<double> m)
    {
        var a = new float[m.RowCount * m.ColumnCount];
        for (int i = 0; i < m.RowCount; i++)
        {
            for (int j = 0; j < m.ColumnCount; j++)
            {
                a[i * m.ColumnCount + j] = (float)m.At(i, j);
            }
        }
        return a;
    }

    /// <summary>score[i][j] = ‖OV_i · R_j‖_F / (‖OV_i‖_F ‖R_j‖_F) for heads i in earlier layers than j.
    /// The d_model-long inner product B_i·A_j (d_head × d_head) is taken in float through the engine's GEMM (relative error
    /// ~1e-6); the rest, R_{A_i}·(B_i A_j)·R_{B_j}ᵀ and its norm, in double.</summary>
    public static CompositionScores Composition(string kind, string definition, HeadId[] ids, FactoredMatrix[] ov, FactoredMatrix[] right,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default)
    {
        int n = ids.Length;
        var scores = new double[n][];
        for (int i = 0; i < n; i++)
        {
            scores[i] = new double[n];
            Array.Fill(scores[i], double.NaN);
        }
        var leftB = ov.Select(f => RowMajor(f.B)).ToArray();       // d × C
        var rightA = right.Select(f => RowMajor(f.A)).ToArray();   // C × d
        int done = 0;
        Parallel.For(0, n, new ParallelOptions { CancellationToken = cancel }, j =>
        {
            int d = ov[0].A.ColumnCount, C = ov[0].Columns, dj = right[j].A.ColumnCount;
            var middle = new float[d * dj];
            for (int i = 0; i < n; i++)
            {
                if (ids[i].Layer >= ids[j].Layer)
                {
                    continue;
                }
                double denom = ov[i].FrobeniusNorm() * right[j].FrobeniusNorm();
                if (denom == 0)
                {
                    scores[i][j] = 0;
                    continue;
                }
                Kernels.MatMul(leftB[i], rightA[j], [], middle, d, C, dj, WeightLayout.InOut);
                var m = Matrix<double>.Build.Dense(d, dj, (r, c) => middle[r * dj + c]);
                scores[i][j] = (ov[i].RA * m * right[j].RB.Transpose()).FrobeniusNorm() / denom;
            }
            lock (scores)
            {
                progress?.Report(new AnalysisProgress($"{kind}-composition", ++done, n));
            }
        });
        return new CompositionScores(kind, definition, ids, scores);
    }
}
