using Headwise.Training;
using Headwise.Training.Layers;

namespace Headwise.Tests.Unit.Training;

// The distillation loss KL(teacher ‖ student): its backward against finite differences of an independent double-precision
// forward (LayerGradientTests' helper and tolerance), its value at a known answer, and through the whole model
// (TrainableTransformer.BackwardFromLogits) against finite differences of the model's own forward.
public class KlDivergenceTests
{
    private static float[] TeacherLogProbs(float[] teacherLogits, int N, int V)
    {
        var lp = new float[N * V];
        KlDivergence.LogSoftmax(teacherLogits, lp, N, V);
        return lp;
    }

    [Fact]
    public void BackwardMatchesFiniteDifferencesInDouble()
    {
        int N = 4, V = 7;
        var r = new Random(21);
        var logits = LayerGradientTests.Rand(r, N * V, 3);
        var teacher = TeacherLogProbs(LayerGradientTests.Rand(r, N * V, 3), N, V);
        var probs = new float[N * V];
        var losses = new float[N];
        KlDivergence.Forward(logits, teacher, probs, losses, N, V);
        KlDivergence.Backward(probs, teacher, N, V, 1f / N);
        LayerGradientTests.Check("kl divergence", [logits], x =>
        {
            // independent: mean_n Σ_v p_t (log p_t − log softmax(x))
            double total = 0;
            for (int n = 0; n < N; n++)
            {
                double max = double.NegativeInfinity, sum = 0;
                for (int v = 0; v < V; v++) max = Math.Max(max, x[0][n * V + v]);
                for (int v = 0; v < V; v++) sum += Math.Exp(x[0][n * V + v] - max);
                double lse = max + Math.Log(sum);
                for (int v = 0; v < V; v++)
                {
                    double lt = teacher[n * V + v];
                    total += Math.Exp(lt) * (lt - (x[0][n * V + v] - lse));
                }
            }
            return total / N;
        }, [probs]);
    }

    [Fact]
    public void ZeroForTheTeachersOwnLogitsAndKnownForTwoTokens()
    {
        int N = 2, V = 5;
        var r = new Random(3);
        var logits = LayerGradientTests.Rand(r, N * V, 4);
        var probs = new float[N * V];
        var losses = new float[N];
        // a student equal to the teacher up to a constant per row (softmax ignores it)
        var shifted = logits.Select((x, i) => x + (i / V == 0 ? 7f : -2f)).ToArray();
        Assert.True(KlDivergence.Forward(shifted, TeacherLogProbs(logits, N, V), probs, losses, N, V) <= 1e-6f);
        // two tokens: teacher (0.75, 0.25), student (0.5, 0.5): 0.75 log 1.5 + 0.25 log 0.5
        float kl = KlDivergence.Forward(new float[] { 0, 0 }, new[] { MathF.Log(0.75f), MathF.Log(0.25f) }, new float[2], new float[1], 1, 2);
        Assert.Equal(0.75 * Math.Log(1.5) + 0.25 * Math.Log(0.5), kl, 1e-6);
    }

    [Fact]
    public void ThroughTheWholeModelMatchesFiniteDifferences()
    {
        // the tolerance of ModelGradientTests: h = 1e-2 on a float32 forward, 1e-4 absolute + 2% relative
        var config = ModelGradientTests.Variant("llama-gqa");
        var model = new TrainableTransformer(config, seed: 5);
        int B = 2, T = 6, N = B * T, V = config.VocabSize;
        var r = new Random(13);
        var tokens = Enumerable.Range(0, N).Select(_ => r.Next(V)).ToArray();
        var teacher = TeacherLogProbs(LayerGradientTests.Rand(r, N * V, 2), N, V);
        var probs = new float[N * V];
        var losses = new float[N];
        double Loss()
        {
            model.Forward(tokens, default, B, T);
            return KlDivergence.Forward(model.Logits, teacher, probs, losses, N, V);
        }
        Loss();
        KlDivergence.Backward(probs, teacher, N, V, 1f / N);
        model.ZeroGrad();
        model.BackwardFromLogits(probs);
        var grads = (float[])model.Grads.Clone();
        const float h = 1e-2f;
        foreach (var p in model.Parameters)
        {
            var u = LayerGradientTests.Rand(r, p.Length);
            double norm = Math.Sqrt(u.Sum(x => (double)x * x)), analytic = 0;
            for (int i = 0; i < p.Length; i++)
            {
                u[i] = (float)(u[i] / norm);
                analytic += (double)u[i] * grads[p.Offset + i];
            }
            var saved = model.Params.AsSpan(p.Offset, p.Length).ToArray();
            for (int i = 0; i < p.Length; i++) model.Params[p.Offset + i] = saved[i] + h * u[i];
            double plus = Loss();
            for (int i = 0; i < p.Length; i++) model.Params[p.Offset + i] = saved[i] - h * u[i];
            double minus = Loss();
            saved.CopyTo(model.Params, p.Offset);
            double fd = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(fd - analytic) <= 1e-4 + 0.02 * Math.Abs(analytic), $"{p.Name}: finite difference {fd:G6} vs backward {analytic:G6}");
        }
    }

    [Fact]
    public void BackwardFromTheCrossEntropysLogitGradientEqualsBackward()
    {
        var model = new TrainableTransformer(ModelGradientTests.Variant("gpt2"), seed: 5);
        int[] tokens = [1, 2, 3, 4, 5, 6], targets = [2, 3, 4, 5, 6, 7];
        int V = model.Config.VocabSize;
        model.ZeroGrad();
        model.Forward(tokens, targets, 1, 6);
        model.Backward();
        var viaLoss = (float[])model.Grads.Clone();
        // dlogits of the mean cross-entropy: (softmax − onehot) / N
        model.Forward(tokens, default, 1, 6);
        var d = model.Logits.ToArray();
        var lp = TeacherLogProbs(d, 6, V);
        for (int n = 0; n < 6; n++)
        {
            for (int v = 0; v < V; v++) d[n * V + v] = (MathF.Exp(lp[n * V + v]) - (v == targets[n] ? 1f : 0f)) / 6f;
        }
        model.ZeroGrad();
        model.BackwardFromLogits(d);
        for (int i = 0; i < viaLoss.Length; i++) Assert.Equal(viaLoss[i], model.Grads[i], 1e-6f + 1e-4f * Math.Abs(viaLoss[i]));
    }
}
