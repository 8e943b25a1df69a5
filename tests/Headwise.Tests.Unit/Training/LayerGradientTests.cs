using Headwise.Training.Layers;

namespace Headwise.Tests.Unit.Training;

// Every backward against central finite differences of an independent double-precision forward.
// Tolerance: |fd − analytic| ≤ 1e-3·max(|fd|, |analytic|) + 1e-5·max|fd|. The finite difference in double with h = 1e-5
// is accurate to ~1e-9; the analytic gradient is float32 with sums of at most ~50 terms (relative error ~1e-5), so 1e-3
// leaves a wide margin while a wrong term (a missing factor, a wrong index) shows up as an O(1) relative error.
public class LayerGradientTests
{
    private const double H = 1e-5;

    internal static void Check(string what, float[][] inputs, Func<double[][], double> loss, float[][] analytic)
    {
        var xs = inputs.Select(a => a.Select(v => (double)v).ToArray()).ToArray();
        for (int k = 0; k < inputs.Length; k++)
        {
            var fd = new double[xs[k].Length];
            for (int i = 0; i < fd.Length; i++)
            {
                double saved = xs[k][i];
                xs[k][i] = saved + H;
                double plus = loss(xs);
                xs[k][i] = saved - H;
                double minus = loss(xs);
                xs[k][i] = saved;
                fd[i] = (plus - minus) / (2 * H);
            }
            double scale = fd.Max(Math.Abs);
            Assert.True(scale > 0, $"{what}: input {k} has an all-zero gradient — the check would prove nothing");
            for (int i = 0; i < fd.Length; i++)
            {
                double err = Math.Abs(fd[i] - analytic[k][i]);
                double tol = 1e-3 * Math.Max(Math.Abs(fd[i]), Math.Abs(analytic[k][i])) + 1e-5 * scale;
                Assert.True(err <= tol, $"{what}: d input{k}[{i}] finite difference {fd[i]:G7} vs backward {analytic[k][i]:G7}");
            }
        }
    }

    internal static float[] Rand(Random r, int n, double scale = 1) => Enumerable.Range(0, n).Select(_ => (float)((r.NextDouble() * 2 - 1) * scale)).ToArray();

    private static double Dot(double[] y, float[] d) => y.Select((v, i) => v * d[i]).Sum();

    [Fact]
    public void Embedding()
    {
        int N = 6, T = 3, C = 5, V = 4;
        var r = new Random(1);
        int[] ids = [0, 3, 3, 1, 2, 0];
        var wte = Rand(r, V * C);
        var wpe = Rand(r, T * C);
        var dout = Rand(r, N * C);
        var dwte = new float[V * C];
        var dwpe = new float[T * C];
        Headwise.Training.Layers.Embedding.Backward(dout, ids, dwte, dwpe, N, T, C);
        Check("embedding", [wte, wpe], x =>
        {
            double s = 0;
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++)
                    s += (x[0][ids[n] * C + c] + x[1][n % T * C + c]) * dout[n * C + c];
            return s;
        }, [dwte, dwpe]);
    }

    [Fact]
    public void LayerNorm()
    {
        int N = 3, C = 7;
        var r = new Random(2);
        var x = Rand(r, N * C, 2);
        var w = Rand(r, C);
        var b = Rand(r, C);
        var dout = Rand(r, N * C);
        var y = new float[N * C];
        var mean = new float[N];
        var rstd = new float[N];
        Headwise.Training.Layers.LayerNorm.Forward(x, w, b, y, mean, rstd, N, C, 1e-5f);
        var dx = new float[N * C];
        var dw = new float[C];
        var db = new float[C];
        Headwise.Training.Layers.LayerNorm.Backward(dout, x, w, mean, rstd, dx, dw, db, N, C);
        Check("layernorm", [x, w, b], p =>
        {
            double s = 0;
            for (int n = 0; n < N; n++)
            {
                var row = p[0].Skip(n * C).Take(C).ToArray();
                double m = row.Average(), v = row.Select(u => (u - m) * (u - m)).Average();
                for (int c = 0; c < C; c++) s += ((row[c] - m) / Math.Sqrt(v + 1e-5) * p[1][c] + p[2][c]) * dout[n * C + c];
            }
            return s;
        }, [dx, dw, db]);
    }

    [Fact]
    public void RmsNorm()
    {
        int N = 3, C = 6;
        var r = new Random(3);
        var x = Rand(r, N * C, 2);
        var w = Rand(r, C);
        var dout = Rand(r, N * C);
        var y = new float[N * C];
        var rstd = new float[N];
        Headwise.Training.Layers.RmsNorm.Forward(x, w, y, rstd, N, C, 1e-5f);
        var dx = new float[N * C];
        var dw = new float[C];
        Headwise.Training.Layers.RmsNorm.Backward(dout, x, w, rstd, dx, dw, N, C);
        Check("rmsnorm", [x, w], p =>
        {
            double s = 0;
            for (int n = 0; n < N; n++)
            {
                var row = p[0].Skip(n * C).Take(C).ToArray();
                double rs = 1 / Math.Sqrt(row.Select(u => u * u).Average() + 1e-5);
                for (int c = 0; c < C; c++) s += row[c] * rs * p[1][c] * dout[n * C + c];
            }
            return s;
        }, [dx, dw]);
    }

    [Theory]
    [InlineData(3, 5, 4, false)]   // T ≤ 4: the GEMV path of MatMul
    [InlineData(9, 7, 13, false)]  // the GEMM path with remainders
    [InlineData(9, 7, 13, true)]
    public void Linear(int N, int C, int OC, bool accumulate)
    {
        var r = new Random(4);
        var x = Rand(r, N * C);
        var w = Rand(r, OC * C);
        var b = Rand(r, OC);
        var dout = Rand(r, N * OC);
        var dx = new float[N * C];
        var dw = new float[OC * C];
        var db = new float[OC];
        var (st, sp) = Headwise.Training.Layers.Linear.ScratchSize(N, C, OC);
        var dx0 = accumulate ? Rand(r, N * C) : new float[N * C];
        dx0.CopyTo(dx, 0);
        Headwise.Training.Layers.Linear.Backward(dout, x, w, dx, dw, db, new float[st], new float[sp], N, C, OC, accumulate);
        if (accumulate)
        {
            for (int i = 0; i < dx.Length; i++) dx[i] -= dx0[i];
        }
        Check("linear", [x, w, b], p =>
        {
            double s = 0;
            for (int n = 0; n < N; n++)
                for (int o = 0; o < OC; o++)
                {
                    double y = p[2][o];
                    for (int c = 0; c < C; c++) y += p[0][n * C + c] * p[1][o * C + c];
                    s += y * dout[n * OC + o];
                }
            return s;
        }, [dx, dw, db]);
    }

    [Fact]
    public void Gelu()
    {
        var r = new Random(5);
        var x = Rand(r, 40, 4);
        var dout = Rand(r, 40);
        var dx = new float[40];
        Headwise.Training.Layers.Gelu.Backward(dout, x, dx);
        Check("gelu", [x], p => p[0].Select((v, i) => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))) * dout[i]).Sum(), [dx]);
    }

    [Fact]
    public void SwiGlu()
    {
        var r = new Random(6);
        var g = Rand(r, 30, 4);
        var u = Rand(r, 30, 2);
        var dout = Rand(r, 30);
        var dg = new float[30];
        var du = new float[30];
        Headwise.Training.Layers.SwiGlu.Backward(dout, g, u, dg, du);
        Check("swiglu", [g, u], p => p[0].Select((v, i) => v / (1 + Math.Exp(-v)) * p[1][i] * dout[i]).Sum(), [dg, du]);
    }

    [Fact]
    public void Rope()
    {
        int N = 6, H = 2, HD = 8, T = 3;
        var r = new Random(7);
        var (cos, sin) = Headwise.Compute.Kernels.RopeTables(T, HD, 10000);
        int[] pos = [0, 1, 2, 0, 1, 2];
        var x = Rand(r, N * H * HD);
        var dout = Rand(r, N * H * HD);
        var dx = (float[])dout.Clone();
        Headwise.Training.Layers.Rope.Backward(dx, pos, N, H, HD, cos, sin);
        // the forward (Kernels.Rope) agrees with the double reference too
        var y = (float[])x.Clone();
        Headwise.Training.Layers.Rope.Forward(y, pos, N, H, HD, cos, sin);
        double[] Ref(double[] v)
        {
            var o = new double[v.Length];
            int half = HD / 2;
            for (int n = 0; n < N; n++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < half; i++)
                    {
                        int a = (n * H + h) * HD + i;
                        double c = cos[pos[n] * half + i], s = sin[pos[n] * half + i];
                        o[a] = v[a] * c - v[a + half] * s;
                        o[a + half] = v[a + half] * c + v[a] * s;
                    }
            return o;
        }
        var yRef = Ref(x.Select(v => (double)v).ToArray());
        for (int i = 0; i < y.Length; i++) Assert.Equal(yRef[i], y[i], 5);
        Check("rope", [x], p => Dot(Ref(p[0]), dout), [dx]);
    }

    [Theory]
    [InlineData(4, 4, 4, true)]  // multi-head
    [InlineData(4, 2, 3, true)]  // grouped-query, value head size ≠ query head size (as with a combined W_OV)
    [InlineData(1, 1, 4, true)]  // single head
    [InlineData(4, 4, 4, false)] // bidirectional (ViT): every key visible
    [InlineData(4, 2, 3, false)]
    public void Attention(int NH, int NKV, int HDV, bool causal)
    {
        int B = 2, T = 5, HD = 4;
        var r = new Random(8);
        var q = Rand(r, B * T * NH * HD);
        var k = Rand(r, B * T * NKV * HD);
        var v = Rand(r, B * T * NKV * HDV);
        var dz = Rand(r, B * T * NH * HDV);
        var att = new float[B * NH * T * T];
        var z = new float[B * T * NH * HDV];
        Headwise.Training.Layers.Attention.Forward(q, k, v, att, z, B, T, NH, NKV, HD, HDV, causal: causal);
        var dq = new float[q.Length];
        var dk = Rand(r, k.Length); // overwritten, so garbage must not leak
        var dv = Rand(r, v.Length);
        Headwise.Training.Layers.Attention.Backward(dz, q, k, v, att, dq, dk, dv, B, T, NH, NKV, HD, HDV, causal: causal);
        double Ref(double[][] p)
        {
            double s = 0;
            int g = NH / NKV;
            for (int b = 0; b < B; b++)
                for (int h = 0; h < NH; h++)
                    for (int t = 0; t < T; t++)
                    {
                        int last = causal ? t : T - 1;
                        var sc = new double[last + 1];
                        for (int j = 0; j <= last; j++)
                        {
                            double d = 0;
                            for (int i = 0; i < HD; i++) d += p[0][((b * T + t) * NH + h) * HD + i] * p[1][((b * T + j) * NKV + h / g) * HD + i];
                            sc[j] = d / Math.Sqrt(HD);
                        }
                        double max = sc.Max(), sum = sc.Sum(u => Math.Exp(u - max));
                        for (int j = 0; j <= last; j++)
                        {
                            double a = Math.Exp(sc[j] - max) / sum;
                            for (int i = 0; i < HDV; i++) s += a * p[2][((b * T + j) * NKV + h / g) * HDV + i] * dz[((b * T + t) * NH + h) * HDV + i];
                        }
                    }
            return s;
        }
        Check("attention", [q, k, v], Ref, [dq, dk, dv]);
    }

    [Fact]
    public void CrossEntropy()
    {
        int N = 4, V = 7;
        var r = new Random(9);
        var logits = Rand(r, N * V, 3);
        int[] targets = [0, 6, 3, 3];
        var probs = new float[N * V];
        var losses = new float[N];
        float loss = Headwise.Training.Layers.CrossEntropy.Forward(logits, targets, probs, losses, N, V);
        Headwise.Training.Layers.CrossEntropy.Backward(probs, targets, N, V, 1f / N);
        double Ref(double[][] p)
        {
            double s = 0;
            for (int n = 0; n < N; n++)
            {
                var row = p[0].Skip(n * V).Take(V).ToArray();
                double max = row.Max();
                s += Math.Log(row.Sum(u => Math.Exp(u - max))) + max - row[targets[n]];
            }
            return s / N;
        }
        Assert.Equal(Ref([logits.Select(v => (double)v).ToArray()]), loss, 5);
        Check("cross-entropy", [logits], Ref, [probs]);
    }

    [Fact]
    public void CrossEntropyIgnoresMaskedRows()
    {
        int N = 4, V = 5;
        var logits = Rand(new Random(3), N * V, 2);
        int[] targets = [-1, 4, -1, 0];
        var probs = new float[N * V];
        var losses = new float[N];
        float loss = Headwise.Training.Layers.CrossEntropy.Forward(logits, targets, probs, losses, N, V);
        // the mean over the two counted rows only, each computed independently
        double Row(int n, int y)
        {
            var row = logits.Skip(n * V).Take(V).Select(v => (double)v).ToArray();
            return Math.Log(row.Sum(Math.Exp)) - row[y];
        }
        Assert.Equal((Row(1, 4) + Row(3, 0)) / 2, loss, 5);
        Assert.Equal(0f, losses[0]);
        Assert.Equal(2, Headwise.Training.Layers.CrossEntropy.Counted(targets, N));
        Headwise.Training.Layers.CrossEntropy.Backward(probs, targets, N, V, 0.5f);
        Assert.All(probs[..V], g => Assert.Equal(0f, g));
        Assert.All(probs[(2 * V)..(3 * V)], g => Assert.Equal(0f, g));
        Assert.Equal(0, probs.Skip(V).Take(V).Sum(), 5);   // softmax − onehot sums to 0
        Assert.Throws<InvalidInputException>(() => Headwise.Training.Layers.CrossEntropy.Forward(logits, [-2, 0, 0, 0], probs, losses, N, V));
    }
}
