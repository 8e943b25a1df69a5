using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Compute;

// GELU (tanh and erf), SiLU, SwiGLU, element-wise: x, gate, out: (N), N = T·C or T·F.
//
// Activations are evaluated in double, 8 lanes per zmm, like their scalar twins: it keeps the results within ~1 float
// ulp of the double-precision reference (erf: ≤ 1.2e-7 relative). The tanh GELU, which runs on every MLP value of a
// GPT-2 prefill, takes 16 float lanes on AVX-512 instead (GeluTanhOp.Invoke16): its exponent argument and range
// reduction stay in double, the rest in float: within 1.7e-7 relative of the reference at half the cost in the MLP's
// GEMM store (docs/performance.md).
public static unsafe partial class Kernels
{
    /// <summary>GELU, tanh approximation (HF "gelu_new"). In place allowed.</summary>
    // x: (N)  out: (N)
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> output)
    {
        Require(output.Length >= x.Length, "GeluTanh: out is shorter than x");
        fixed (float* px = x, po = output) MapParallel<GeluTanhOp>(px, null, po, x.Length);
    }

    /// <summary>GELU, exact erf form (HF "gelu"). In place allowed.</summary>
    // x: (N)  out: (N)
    public static void GeluErf(ReadOnlySpan<float> x, Span<float> output)
    {
        Require(output.Length >= x.Length, "GeluErf: out is shorter than x");
        fixed (float* px = x, po = output) MapParallel<GeluErfOp>(px, null, po, x.Length);
    }

    /// <summary>SiLU x·σ(x). In place allowed.</summary>
    // x: (N)  out: (N)
    public static void Silu(ReadOnlySpan<float> x, Span<float> output)
    {
        Require(output.Length >= x.Length, "Silu: out is shorter than x");
        fixed (float* px = x, po = output) MapParallel<SiluOp>(px, null, po, x.Length);
    }

    /// <summary>SwiGLU: out = silu(gate) · up. out may alias gate or up.</summary>
    // gate, up: (N)  out: (N)
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        Require(up.Length >= gate.Length && output.Length >= gate.Length, "SwiGlu: up or out is shorter than gate");
        fixed (float* pg = gate, pu = up, po = output) MapParallel<SiluOp>(pg, pu, po, gate.Length);
    }

    // An activation f evaluated in double precision, at every vector width; Invoke16: f on 16 float lanes (AVX-512), in
    // double unless the op has a float form as accurate (InDouble for the rest).
    private interface IDoubleOp
    {
        static abstract Vector512<float> Invoke16(Vector512<float> x);
        static abstract Vector512<double> Invoke(Vector512<double> x);
        static abstract Vector256<double> Invoke(Vector256<double> x);
        static abstract Vector128<double> Invoke(Vector128<double> x);
        static abstract double Invoke(double x);
    }

    private const int MapChunk = 1 << 15; // elements per task: ~50 µs of work, well above the hand-off cost

    private sealed class MapJob<TOp> where TOp : IDoubleOp
    {
        public float* X, Mul, Out;
        public int N;
        public readonly Action<int> Body;
        public readonly ParallelOptions Options = new();
        public MapJob() => Body = Run;
        private void Run(int task)
        {
            long i0 = (long)task * MapChunk;
            int count = (int)Math.Min(MapChunk, N - i0);
            Map<TOp>(X + i0, Mul == null ? null : Mul + i0, Out + i0, count);
        }

        [ThreadStatic] public static MapJob<TOp>? Cached;
    }

    // Elementwise activations are compute-bound in double precision, so large tensors are split across threads.
    private static void MapParallel<TOp>(float* x, float* mul, float* output, int n) where TOp : IDoubleOp
    {
        int tasks = (n + MapChunk - 1) / MapChunk;
        int threads = Math.Min(MaxThreads, tasks);
        if (threads <= 1 && !(ForceParallel && MaxThreads > 1 && n > 0))
        {
            Map<TOp>(x, mul, output, n);
            return;
        }
        var job = MapJob<TOp>.Cached ??= new MapJob<TOp>();
        job.X = x; job.Mul = mul; job.Out = output; job.N = n;
        job.Options.MaxDegreeOfParallelism = Math.Max(1, threads);
        Parallel.For(0, tasks, job.Options, job.Body);
    }

    // out[i] = f(x[i]) · (mul == null ? 1 : mul[i]), computed in double and rounded once to float.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Map<TOp>(float* x, float* mul, float* output, int n) where TOp : IDoubleOp
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            if (mul == null)
            {
                for (; i + 16 <= n; i += 16) TOp.Invoke16(Vector512.Load(x + i)).Store(output + i);
            }
            else
            {
                for (; i + 16 <= n; i += 16)
                {
                    // the product in double too: f(x)·mul rounded once
                    var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                    var (mlo, mhi) = Vector512.Widen(Vector512.Load(mul + i));
                    Vector512.Narrow(TOp.Invoke(lo) * mlo, TOp.Invoke(hi) * mhi).Store(output + i);
                }
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
                lo = TOp.Invoke(lo);
                hi = TOp.Invoke(hi);
                if (mul != null)
                {
                    var (mlo, mhi) = Vector256.Widen(Vector256.Load(mul + i));
                    lo *= mlo;
                    hi *= mhi;
                }
                Vector256.Narrow(lo, hi).Store(output + i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 4 <= n; i += 4)
            {
                var (lo, hi) = Vector128.Widen(Vector128.Load(x + i));
                lo = TOp.Invoke(lo);
                hi = TOp.Invoke(hi);
                if (mul != null)
                {
                    var (mlo, mhi) = Vector128.Widen(Vector128.Load(mul + i));
                    lo *= mlo;
                    hi *= mhi;
                }
                Vector128.Narrow(lo, hi).Store(output + i);
            }
        }
        // remainder
        for (; i < n; i++)
        {
            double r = TOp.Invoke((double)x[i]);
            output[i] = (float)(mul == null ? r : r * mul[i]);
        }
    }

    // f on 16 float lanes through the double form: widen, f, round once
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> InDouble<TOp>(Vector512<float> x) where TOp : IDoubleOp
    {
        var (lo, hi) = Vector512.Widen(x);
        return Vector512.Narrow(TOp.Invoke(lo), TOp.Invoke(hi));
    }

    // 0.5·x·(1 + tanh(u)) = x·σ(2u) = x / (1 + e^(−2u)), u = √(2/π)·(x + 0.044715·x³): no cancellation for u ≪ 0.
    private readonly struct GeluTanhOp : IDoubleOp
    {
        private const double K = 0.7978845608028654; // √(2/π)
        private const double M2K = -2 * K;
        private const double A = 0.044715;
        private const double Log2E = 1.4426950408889634, Ln2Hi = 0.693147180369123816490, Ln2Lo = 1.90821492927058770002e-10;

        // 16 float lanes: t = −2u and its reduction t = n·ln 2 + r (|r| ≤ ln 2 / 2) in double, where float would lose
        // |t|·2⁻²⁴ of e^t's relative accuracy (8 ulp at x = −5); then e^r by ExpSingle's polynomial, 2ⁿ by vscalefps (0 and
        // ∞ past the float range), and x / (1 + e^t) in float. Measured over every third float in [−12, 12]: within
        // 1.65e-7 relative of the double form wherever the value is above 1e-30 (below it, within 1e-30 absolute: the
        // float e^t overflows where the double form still returns a tiny quotient). ±0, ±∞ and NaN as the double form.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Invoke16(Vector512<float> x)
        {
            if (!Avx512F.IsSupported) return InDouble<GeluTanhOp>(x);
            var (lo, hi) = Vector512.Widen(x);
            var (nLo, rLo) = Reduce(lo);
            var (nHi, rHi) = Reduce(hi);
            var r = Vector512.Narrow(rLo, rHi);
            var n = Vector512.Narrow(nLo, nHi); // whole numbers in [−289, 289]: exact in float
            return x / (Vector512<float>.One + Avx512F.Scale(ExpReducedSingle(r), n));
        }

        // t = −2u clamped to ±200 (e^t is 0 or ∞ in float well before), n = round(t / ln 2), r = t − n·ln 2 (two-part ln 2)
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static (Vector512<double> N, Vector512<double> R) Reduce(Vector512<double> x)
        {
            var t = Vector512.Create(M2K) * x * Vector512.FusedMultiplyAdd(Vector512.Create(A), x * x, Vector512<double>.One);
            t = Vector512.MinNative(Vector512.MaxNative(t, Vector512.Create(-200.0)), Vector512.Create(200.0));
            var n = Vector512.Round(t * Vector512.Create(Log2E));
            var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), t);
            return (n, Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<double> Invoke(Vector512<double> x) => x / (Vector512<double>.One + ExpDouble(Vector512.Create(M2K) * (x + Vector512.Create(A) * x * x * x)));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<double> Invoke(Vector256<double> x) => x / (Vector256<double>.One + Vector256.Exp(Vector256.Create(M2K) * (x + Vector256.Create(A) * x * x * x)));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<double> Invoke(Vector128<double> x) => x / (Vector128<double>.One + Vector128.Exp(Vector128.Create(M2K) * (x + Vector128.Create(A) * x * x * x)));
        public static double Invoke(double x) => x / (1.0 + Math.Exp(M2K * (x + A * x * x * x)));
    }

    // x·σ(x) = x / (1 + e^(−x))
    private readonly struct SiluOp : IDoubleOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Invoke16(Vector512<float> x) => InDouble<SiluOp>(x);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<double> Invoke(Vector512<double> x) => x / (Vector512<double>.One + ExpDouble(-x));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<double> Invoke(Vector256<double> x) => x / (Vector256<double>.One + Vector256.Exp(-x));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<double> Invoke(Vector128<double> x) => x / (Vector128<double>.One + Vector128.Exp(-x));
        public static double Invoke(double x) => x / (1.0 + Math.Exp(-x));
    }

    // 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2), erfc from the Chebyshev fit erfc(z) ≈ t·exp(−z² + P(t)), t = 1/(1 + z/2)
    // (Numerical Recipes' erfcc), fractional error < 1.2e-7 for every z ≥ 0; erfc(−z) = 2 − erfc(z) keeps that bound.
    private readonly struct GeluErfOp : IDoubleOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Invoke16(Vector512<float> x) => InDouble<GeluErfOp>(x);

        private const double InvSqrt2 = 0.7071067811865476;
        private const double P0 = -1.26551223, P1 = 1.00002368, P2 = 0.37409196, P3 = 0.09678418, P4 = -0.18628806,
            P5 = 0.27886807, P6 = -1.13520398, P7 = 1.48851587, P8 = -0.82215223, P9 = 0.17087277;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<double> Invoke(Vector512<double> x)
        {
            var z = Vector512.Abs(x) * Vector512.Create(InvSqrt2);
            var t = Vector512<double>.One / (Vector512<double>.One + Vector512.Create(0.5) * z);
            var p = Vector512.Create(P9);
            p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P8)); p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P7));
            p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P6)); p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P5));
            p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P4)); p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P3));
            p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P2)); p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P1));
            p = Vector512.FusedMultiplyAdd(p, t, Vector512.Create(P0));
            var erfcAbs = t * ExpDouble(p - z * z);
            // erfc(−x/√2): for x ≥ 0 that is 2 − erfc(|z|), for x < 0 it is erfc(|z|)
            var erfcNeg = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, Vector512<double>.Zero), Vector512.Create(2.0) - erfcAbs, erfcAbs);
            return Vector512.Create(0.5) * x * erfcNeg;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<double> Invoke(Vector256<double> x)
        {
            var z = Vector256.Abs(x) * Vector256.Create(InvSqrt2);
            var t = Vector256<double>.One / (Vector256<double>.One + Vector256.Create(0.5) * z);
            var p = Vector256.Create(P9);
            p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P8)); p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P7));
            p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P6)); p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P5));
            p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P4)); p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P3));
            p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P2)); p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P1));
            p = Vector256.MultiplyAddEstimate(p, t, Vector256.Create(P0));
            var erfcAbs = t * Vector256.Exp(p - z * z);
            var erfcNeg = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256<double>.Zero), Vector256.Create(2.0) - erfcAbs, erfcAbs);
            return Vector256.Create(0.5) * x * erfcNeg;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<double> Invoke(Vector128<double> x)
        {
            var z = Vector128.Abs(x) * Vector128.Create(InvSqrt2);
            var t = Vector128<double>.One / (Vector128<double>.One + Vector128.Create(0.5) * z);
            var p = Vector128.Create(P9);
            p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P8)); p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P7));
            p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P6)); p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P5));
            p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P4)); p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P3));
            p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P2)); p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P1));
            p = Vector128.MultiplyAddEstimate(p, t, Vector128.Create(P0));
            var erfcAbs = t * Vector128.Exp(p - z * z);
            var erfcNeg = Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(x, Vector128<double>.Zero), Vector128.Create(2.0) - erfcAbs, erfcAbs);
            return Vector128.Create(0.5) * x * erfcNeg;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static double Invoke(double x)
        {
            double z = Math.Abs(x) * InvSqrt2;
            double t = 1.0 / (1.0 + 0.5 * z);
            double p = P9;
            p = p * t + P8; p = p * t + P7; p = p * t + P6;
            p = p * t + P5; p = p * t + P4; p = p * t + P3;
            p = p * t + P2; p = p * t + P1; p = p * t + P0;
            double erfcAbs = t * Math.Exp(p - z * z);
            return 0.5 * x * (x >= 0 ? 2.0 - erfcAbs : erfcAbs);
        }
    }
}
