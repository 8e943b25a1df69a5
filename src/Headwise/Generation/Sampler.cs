namespace Headwise.Generation;

/// <summary>How the next token is chosen. Temperature 0 is greedy (argmax); otherwise sample from softmax(logits / T)
/// restricted to the top-k tokens and then to the smallest set whose probability reaches top-p.</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; }
    public int TopK { get; init; }
    public float TopP { get; init; } = 1f;
    public int? Seed { get; init; }

    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature))
        {
            throw new InvalidInputException($"temperature must be ≥ 0 (got {Temperature})");
        }
        if (TopK < 0)
        {
            throw new InvalidInputException($"top-k must be ≥ 0 (got {TopK}; 0 means no limit)");
        }
        if (!(TopP > 0 && TopP <= 1))
        {
            throw new InvalidInputException($"top-p must be in (0, 1] (got {TopP})");
        }
    }
}

/// <summary>Chooses tokens from logits. Holds its random state, so one sampler per generation run gives reproducible output for a seed.</summary>
public sealed class Sampler
{
    private readonly SamplingOptions _o;
    private readonly Random _rng;
    private int[] _order = [];
    private float[] _probs = [];

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _o = options;
        _rng = options.Seed is int s ? new Random(s) : new Random();
    }

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }
        return best;
    }

    public int Sample(ReadOnlySpan<float> logits)
    {
        if (_o.Temperature == 0)
        {
            return ArgMax(logits);
        }
        int V = logits.Length;
        if (_probs.Length < V)
        {
            _probs = new float[V];
            _order = new int[V];
        }
        // softmax(logits / T), in double for the normaliser
        float max = float.NegativeInfinity;
        for (int i = 0; i < V; i++)
        {
            max = Math.Max(max, logits[i]);
        }
        for (int i = 0; i < V; i++)
        {
            _probs[i] = MathF.Exp((logits[i] - max) / _o.Temperature);
            _order[i] = i;
        }
        int keep = V;
        if (_o.TopK > 0 || _o.TopP < 1)
        {
            var probs = _probs;
            Array.Sort(_order, 0, V, Comparer<int>.Create((a, b) => probs[b].CompareTo(probs[a])));
            if (_o.TopK > 0)
            {
                keep = Math.Min(keep, _o.TopK);
            }
            if (_o.TopP < 1)
            {
                double total = 0;
                for (int i = 0; i < keep; i++)
                {
                    total += probs[_order[i]];
                }
                double cumulative = 0;
                for (int i = 0; i < keep; i++)
                {
                    cumulative += probs[_order[i]] / total;
                    if (cumulative >= _o.TopP)
                    {
                        keep = i + 1;
                        break;
                    }
                }
            }
        }
        double sum = 0;
        for (int i = 0; i < keep; i++)
        {
            sum += _probs[_order[i]];
        }
        double r = _rng.NextDouble() * sum;
        for (int i = 0; i < keep; i++)
        {
            r -= _probs[_order[i]];
            if (r <= 0)
            {
                return _order[i];
            }
        }
        return _order[keep - 1];
    }
}
