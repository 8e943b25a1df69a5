namespace Headwise.Training.Experiments;

/// <summary>One double-precision array of <see cref="SoftmaxRegressionAttention"/>: values, gradient, shape.</summary>
public sealed class Param(string name, int rows, int cols, bool trainable = true)
{
    public string Name { get; } = name;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public bool Trainable { get; } = trainable;
    public double[] W { get; } = new double[rows * cols];
    public double[] G { get; } = new double[rows * cols];
}

/// <summary>Plain gradient descent or Adam(W) over <see cref="Param"/>s (the double-precision in-context regression model;
/// the token models use <see cref="TrainableTransformer"/> and <see cref="AdamW"/>); zeroes the gradients after each step.</summary>
public sealed class TaskOptimizer(IReadOnlyList<Param> parameters, double lr, bool adam, double weightDecay = 0, double beta1 = 0.9, double beta2 = 0.999)
{
    private readonly Dictionary<Param, (double[] M, double[] V)> _state = [];
    private int _step;

    public double LearningRate { get; set; } = lr;

    public void ZeroGrad()
    {
        foreach (var p in parameters)
        {
            Array.Clear(p.G);
        }
    }

    public void Step()
    {
        _step++;
        double bc1 = 1 - Math.Pow(beta1, _step);
        double bc2 = 1 - Math.Pow(beta2, _step);
        foreach (var p in parameters)
        {
            if (!p.Trainable)
            {
                continue;
            }

            if (!adam)
            {
                for (int i = 0; i < p.W.Length; i++)
                {
                    p.W[i] -= LearningRate * (p.G[i] + (weightDecay * p.W[i]));
                }

                continue;
            }

            if (!_state.TryGetValue(p, out var s))
            {
                _state[p] = s = (new double[p.W.Length], new double[p.W.Length]);
            }

            for (int i = 0; i < p.W.Length; i++)
            {
                double g = p.G[i];
                s.M[i] = (beta1 * s.M[i]) + ((1 - beta1) * g);
                s.V[i] = (beta2 * s.V[i]) + ((1 - beta2) * g * g);
                p.W[i] -= LearningRate * ((s.M[i] / bc1 / (Math.Sqrt(s.V[i] / bc2) + 1e-8)) + (weightDecay * p.W[i]));
            }
        }

        ZeroGrad();
    }
}
