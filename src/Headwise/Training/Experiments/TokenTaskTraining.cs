using Headwise.Analysis;

namespace Headwise.Training.Experiments;

/// <summary>
/// The training loop the token-task experiments share (induction, list recall): every step samples a batch of examples,
/// runs the model's forward and backward and takes an Adam step; every <c>evalEvery</c> steps, and at the end, it calls
/// <c>evaluate(step)</c> and reports progress. Returns the evaluation points in order.
/// </summary>
internal static class TokenTaskTraining
{
    public static List<TPoint> Run<TPoint>(TrainableTransformer model, AdamW adam, Func<Random, (int[] Tokens, int[] Targets)> sample,
        Random rng, int batch, int T, int steps, double learningRate, int evalEvery, Func<int, TPoint> evaluate,
        IProgress<AnalysisProgress>? progress, CancellationToken ct)
    {
        var curve = new List<TPoint>();
        var tokens = new int[batch * T];
        var targets = new int[batch * T];
        for (int step = 0; step <= steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            if (step % evalEvery == 0 || step == steps)
            {
                curve.Add(evaluate(step));
                progress?.Report(new AnalysisProgress("train", step, steps));
            }
            if (step == steps)
            {
                break;
            }
            for (int b = 0; b < batch; b++)
            {
                var (tok, tgt) = sample(rng);
                tok.CopyTo(tokens, b * T);
                tgt.CopyTo(targets, b * T);
            }
            model.ZeroGrad();
            model.Forward(tokens, targets, batch, T);
            model.Backward();
            adam.Step(model.Params, model.Grads, model.Parameters, (float)learningRate, step + 1);
        }
        return curve;
    }
}
