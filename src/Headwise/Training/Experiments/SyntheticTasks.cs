namespace Headwise.Training.Experiments;

/// <summary>A token sequence with a next-token target per position (−1: no loss there).</summary>
public sealed record TokenExample(int[] Tokens, int[] Targets);

/// <summary>A repeated-sequence sample: the copy of length <see cref="Period"/> starts at <see cref="Start"/> and repeats
/// right after it.</summary>
public sealed record InductionExample(int[] Tokens, int[] Targets, int Start, int Period);

/// <summary>
/// Repeated random sequences (the induction task): [BOS, r₁…r_p, s₁…s_L, s₁…s_L] of fixed length 2·H+1, with the period
/// L uniform in [⌈H/2⌉, H], a random prefix r filling the rest, and all tokens uniform over 1…V−1; the target at each
/// position is the next token. Varying L and the prefix means no fixed positional offset finds the earlier copy: the
/// second copy is predictable only by looking back at what followed the same token earlier — what an induction head does.
/// </summary>
public sealed class InductionTask(int vocab, int half)
{
    public const int Bos = 0;

    public int Vocab { get; } = vocab >= 3 ? vocab : throw new InvalidInputException($"--vocab: {vocab} is too small for the induction task (need ≥ 3).");
    public int Half { get; } = half >= 4 ? half : throw new InvalidInputException($"--half: {half} is too short for the induction task (need ≥ 4).");
    public int Length => (2 * Half) + 1;

    public InductionExample Sample(Random rng)
    {
        int period = ((Half + 1) / 2) + rng.Next(Half - ((Half + 1) / 2) + 1);
        int start = Length - (2 * period);
        var toks = new int[Length];
        toks[0] = Bos;
        for (int i = 1; i < start; i++)
        {
            toks[i] = 1 + rng.Next(Vocab - 1);
        }

        for (int i = 0; i < period; i++)
        {
            toks[start + i] = toks[start + period + i] = 1 + rng.Next(Vocab - 1);
        }

        var targets = new int[Length];
        for (int i = 0; i < Length; i++)
        {
            targets[i] = i + 1 < Length ? toks[i + 1] : -1;
        }

        return new InductionExample(toks, targets, start, period);
    }

    /// <summary>True at positions whose target is predictable by induction (inside the second copy).</summary>
    public static bool IsRepeatTarget(InductionExample e, int pos) => pos >= e.Start + e.Period && pos + 1 < e.Tokens.Length;

    /// <summary>True at positions whose target is random (the prefix and the first copy).</summary>
    public static bool IsRandomTarget(InductionExample e, int pos) => pos >= 1 && pos + 1 < e.Start + e.Period;

    /// <summary>
    /// Induction score of an attention pattern [T×T] on a sample: mean attention from each position i of the second copy to
    /// position i − L + 1 (the token after the earlier occurrence of the current token). Previous-token score: mean attention
    /// from each position i ≥ 1 to i − 1.
    /// </summary>
    public static (double Induction, double PreviousToken) Scores(InductionExample e, double[] pattern)
    {
        int t = e.Tokens.Length;
        double ind = 0;
        int n = 0;
        for (int i = e.Start + e.Period; i < t; i++)
        {
            ind += pattern[(i * t) + i - e.Period + 1];
            n++;
        }

        double prev = 0;
        for (int i = 1; i < t; i++)
        {
            prev += pattern[(i * t) + i - 1];
        }

        return (ind / n, prev / (t - 1));
    }
}

/// <summary>
/// The out-of-context reasoning (OCR) factual-recall task of "Generalization or Hallucination?": S subjects, two relations
/// (r₁ a fact, r₂ its implication), A fact objects b₀…b_{A−1} and A implied objects c₀…c_{A−1}. Subject s has fact object
/// b_{f(s)} and implication object c_{f(s)} — the implication follows from the fact. Prompts are [s, r] with the object as
/// the target at position 1. Training holds every fact and the implications of a subset of subjects; the test is the
/// implications of the other subjects, never seen.
/// Token ids: subjects 0…S−1, r₁ = S, r₂ = S+1, b_k = S+2+k, c_k = S+2+A+k.
/// </summary>
public sealed class OcrTask
{
    public int Subjects { get; }
    public int Objects { get; }
    public int Vocab => Subjects + 2 + (2 * Objects);
    public int Fact => Subjects;
    public int Implication => Subjects + 1;
    public int[] FactObject { get; }
    public bool[] ImplicationSeen { get; }

    public OcrTask(int subjects, int objects, double trainFraction, int seed)
    {
        if (objects < 2 || subjects < 2 * objects)
        {
            throw new InvalidInputException($"OCR task: need ≥ 2 objects and ≥ 2 subjects per object (got {subjects} subjects, {objects} objects).");
        }

        if (trainFraction is <= 0 or >= 1)
        {
            throw new InvalidInputException($"--train-fraction: {trainFraction} must be in (0, 1).");
        }

        Subjects = subjects;
        Objects = objects;
        var rng = new Random(seed);
        // Balanced assignment: subject s → object s mod A, shuffled; in each object group the first ⌈fraction⌉ are seen.
        var order = Enumerable.Range(0, subjects).OrderBy(_ => rng.Next()).ToArray();
        FactObject = new int[subjects];
        ImplicationSeen = new bool[subjects];
        var perObject = new int[objects];
        int seenPerObject = Math.Max(1, (int)Math.Round(trainFraction * subjects / objects));
        for (int i = 0; i < subjects; i++)
        {
            int s = order[i];
            int o = i % objects;
            FactObject[s] = o;
            ImplicationSeen[s] = perObject[o]++ < seenPerObject;
        }
    }

    public int FactToken(int s) => Subjects + 2 + FactObject[s];
    public int ImplicationToken(int s) => Subjects + 2 + Objects + FactObject[s];

    private TokenExample Prompt(int s, bool implication) =>
        new([s, implication ? Implication : Fact], [-1, implication ? ImplicationToken(s) : FactToken(s)]);

    /// <summary>All facts and the seen implications.</summary>
    public IReadOnlyList<TokenExample> Train()
    {
        var list = new List<TokenExample>();
        for (int s = 0; s < Subjects; s++)
        {
            list.Add(Prompt(s, false));
            if (ImplicationSeen[s])
            {
                list.Add(Prompt(s, true));
            }
        }

        return list;
    }

    /// <summary>The held-out implications.</summary>
    public IReadOnlyList<TokenExample> Test() =>
        [.. Enumerable.Range(0, Subjects).Where(s => !ImplicationSeen[s]).Select(s => Prompt(s, true))];
}

/// <summary>
/// In-context linear regression: each prompt draws w ~ N(0, I/dx), N inputs xᵢ ~ N(0, I) and yᵢ = w·xᵢ (+ noise), and a
/// query x_q whose y_q is to be predicted. Tokens are zᵢ = (xᵢ, yᵢ) and z_q = (x_q, 0), rows of a [N×(dx+1)] matrix.
/// </summary>
public sealed class IclRegressionTask(int dx, int n, double noise = 0)
{
    public int Dx { get; } = dx >= 1 ? dx : throw new InvalidInputException($"--dx: {dx} must be ≥ 1.");
    public int N { get; } = n >= 1 ? n : throw new InvalidInputException($"--context: {n} must be ≥ 1.");
    public int Dim => Dx + 1;

    /// <summary>A standard normal draw (Box–Muller).</summary>
    public static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble();
        double u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    public (double[] Context, double[] Query, double Y, double[] W) Sample(Random rng)
    {
        var w = new double[Dx];
        for (int j = 0; j < Dx; j++)
        {
            w[j] = Gaussian(rng) / Math.Sqrt(Dx);
        }

        var ctx = new double[N * Dim];
        for (int i = 0; i < N; i++)
        {
            double y = 0;
            for (int j = 0; j < Dx; j++)
            {
                double x = Gaussian(rng);
                ctx[(i * Dim) + j] = x;
                y += w[j] * x;
            }

            ctx[(i * Dim) + Dx] = y + (noise * Gaussian(rng));
        }

        var q = new double[Dim];
        double yq = 0;
        for (int j = 0; j < Dx; j++)
        {
            q[j] = Gaussian(rng);
            yq += w[j] * q[j];
        }

        return (ctx, q, yq + (noise * Gaussian(rng)), w);
    }

    /// <summary>Ridge-regression prediction from the context (λ = noise² · dx, the Bayes posterior mean under the prior).</summary>
    public double RidgePredict(double[] ctx, double[] q, double lambda)
    {
        // w = (XᵀX + λI)⁻¹ Xᵀy over the N context rows x_i = ctx[i, 0..Dx), y_i = ctx[i, Dx]; then the prediction q·w
        int d = Dx;
        var xtx = new double[d * d];
        var xty = new double[d];
        for (int i = 0; i < N; i++)
        {
            for (int r = 0; r < d; r++)
            {
                for (int c = 0; c < d; c++)
                {
                    xtx[(r * d) + c] += ctx[(i * Dim) + r] * ctx[(i * Dim) + c];
                }

                xty[r] += ctx[(i * Dim) + r] * ctx[(i * Dim) + d];
            }
        }

        for (int r = 0; r < d; r++)
        {
            xtx[(r * d) + r] += Math.Max(lambda, 1e-9);
        }

        var w = Linalg.SolveSymmetricPositiveDefinite(xtx, xty, d);
        double pred = 0;
        for (int r = 0; r < d; r++)
        {
            pred += q[r] * w[r];
        }

        return pred;
    }
}

/// <summary>
/// Recall from a list (the "Laundry List" task of Talking Heads, in tokens): [BOS, i₁…i_n, SEP, the list again with one
/// item left out, in shuffled order, ANS] → the left-out item. Items are tokens 0…I−1; BOS = I, SEP = I+1, ANS = I+2.
/// Answering needs the model to find which list item was not repeated.
/// </summary>
public sealed class ListRecallTask(int items, int listLength)
{
    public int Items { get; } = items;
    public int ListLength { get; } = listLength >= 2 && listLength <= items
        ? listLength : throw new InvalidInputException($"--list-length: {listLength} must be in [2, {items}].");
    public int Vocab => Items + 3;
    public int Length => (2 * ListLength) + 2;

    public TokenExample Sample(Random rng)
    {
        var list = Enumerable.Range(0, Items).OrderBy(_ => rng.Next()).Take(ListLength).ToArray();
        return Build(rng, list, rng.Next(ListLength));
    }

    /// <summary>A sample whose left-out item is the one at <paramref name="missing"/> (0-based) in the first list — for
    /// measuring accuracy by position (the order sensitivity of Talking Heads).</summary>
    public TokenExample Sample(Random rng, int missing)
    {
        if ((uint)missing >= (uint)ListLength)
        {
            throw new InvalidInputException($"missing position {missing} is outside the list's 0..{ListLength - 1}");
        }
        var list = Enumerable.Range(0, Items).OrderBy(_ => rng.Next()).Take(ListLength).ToArray();
        return Build(rng, list, missing);
    }

    /// <summary>Where the left-out item stood in the first list (0-based): the first-list position of the answer.</summary>
    public int MissingPosition(TokenExample e) => Array.IndexOf(e.Tokens, e.Targets[^1], 1, ListLength) - 1;

    private TokenExample Build(Random rng, int[] list, int missing)
    {
        var rest = list.Where((_, i) => i != missing).OrderBy(_ => rng.Next()).ToArray();
        int[] toks = [Items, .. list, Items + 1, .. rest, Items + 2];
        var targets = Enumerable.Repeat(-1, toks.Length).ToArray();
        targets[^1] = list[missing];
        return new TokenExample(toks, targets);
    }
}

/// <summary>
/// Facts against a counterfactual context ("Characterizing Mechanisms for Factual Recall", in tokens): S subjects, each with a
/// memorised attribute a(s) among A; every sequence is [BOS, s′, r, x, ".", s, r] → the answer at the last position:
/// <list type="bullet">
/// <item>fact: s′ ≠ s with its own attribute x = a(s′) → a(s) (the prefix is irrelevant);</item>
/// <item>consistent: s′ = s, x = a(s) → a(s);</item>
/// <item>counterfactual: s′ = s, x = a′ ≠ a(s) → a′ with probability p(s), else a(s). Half the subjects (chosen by the seed)
/// are "stubborn", p = <c>stubbornRate</c>; the others p = <c>yieldingRate</c> — so both behaviours exist and the model must
/// learn which wins for whom.</item>
/// </list>
/// Pairs (s, a′) with (s + a′) mod 4 = 0 never appear as counterfactuals in training: they are the held-out prompts.
/// The prefix's fact is a target too (position 2 → x) when it is true. Token ids: subjects 0…S−1, attributes S…S+A−1,
/// r = S+A, "." = S+A+1, BOS = S+A+2.
/// </summary>
public sealed class FactualRecallTask
{
    public const int Length = 7;
    public const int AnswerPosition = Length - 1;

    public int Subjects { get; }
    public int Attributes { get; }
    public double StubbornRate { get; }
    public double YieldingRate { get; }
    public int Relation => Subjects + Attributes;
    public int Dot => Subjects + Attributes + 1;
    public int Bos => Subjects + Attributes + 2;
    public int Vocab => Subjects + Attributes + 3;

    /// <summary>a(s), as an attribute index 0…A−1 (token <see cref="AttributeToken"/>).</summary>
    public int[] Memorised { get; }

    /// <summary>Subjects whose memorised attribute usually wins over a counterfactual context.</summary>
    public bool[] Stubborn { get; }

    public FactualRecallTask(int subjects, int attributes, double stubbornRate, double yieldingRate, int seed)
    {
        if (subjects < 2 || attributes < 5)
        {
            throw new InvalidInputException($"factual recall task: need ≥ 2 subjects and ≥ 5 attributes (got {subjects}, {attributes}).");
        }
        if (stubbornRate is < 0 or > 1 || yieldingRate is < 0 or > 1)
        {
            throw new InvalidInputException($"factual recall task: in-context rates {stubbornRate}, {yieldingRate} must be in [0, 1].");
        }
        Subjects = subjects;
        Attributes = attributes;
        StubbornRate = stubbornRate;
        YieldingRate = yieldingRate;
        var rng = new Random(seed);
        Memorised = [.. Enumerable.Range(0, subjects).Select(_ => rng.Next(attributes))];
        var order = Enumerable.Range(0, subjects).OrderBy(_ => rng.Next()).ToArray();
        Stubborn = new bool[subjects];
        for (int i = 0; i < subjects / 2; i++)
        {
            Stubborn[order[i]] = true;
        }
    }

    public int AttributeToken(int attribute) => Subjects + attribute;

    /// <summary>True for (subject, counterfactual attribute) pairs kept out of training.</summary>
    public static bool IsHeldOut(int subject, int attribute) => (subject + attribute) % 4 == 0;

    /// <summary>One training sequence: a fact (45%), a consistent prefix (10%) or a seen counterfactual (45%).</summary>
    public TokenExample Sample(Random rng)
    {
        int s = rng.Next(Subjects);
        double kind = rng.NextDouble();
        if (kind < 0.45)
        {
            int other = (s + 1 + rng.Next(Subjects - 1)) % Subjects;
            return Sequence(other, Memorised[other], s, Memorised[s], prefixIsTrue: true);
        }
        if (kind < 0.55)
        {
            return Sequence(s, Memorised[s], s, Memorised[s], prefixIsTrue: true);
        }
        int cf;
        do
        {
            cf = rng.Next(Attributes);
        }
        while (cf == Memorised[s] || IsHeldOut(s, cf));
        bool inContext = rng.NextDouble() < (Stubborn[s] ? StubbornRate : YieldingRate);
        return Sequence(s, cf, s, inContext ? cf : Memorised[s], prefixIsTrue: false);
    }

    /// <summary>Every held-out counterfactual prompt [BOS, s, r, a′, ".", s, r] with (s, a′) held out and a′ ≠ a(s); the
    /// target is the in-context a′ (the memorised answer is <see cref="Memorised"/>[s]).</summary>
    public IReadOnlyList<(TokenExample Prompt, int Subject, int InContext)> HeldOut()
    {
        var list = new List<(TokenExample, int, int)>();
        for (int s = 0; s < Subjects; s++)
        {
            for (int a = 0; a < Attributes; a++)
            {
                if (IsHeldOut(s, a) && a != Memorised[s])
                {
                    list.Add((Sequence(s, a, s, a, prefixIsTrue: false), s, a));
                }
            }
        }
        return list;
    }

    /// <summary>Every subject's fact with an irrelevant prefix (the next subject's fact): the target is a(s).</summary>
    public IReadOnlyList<TokenExample> Facts() =>
        [.. Enumerable.Range(0, Subjects).Select(s => Sequence((s + 1) % Subjects, Memorised[(s + 1) % Subjects], s, Memorised[s], prefixIsTrue: true))];

    private TokenExample Sequence(int prefixSubject, int prefixAttribute, int subject, int answer, bool prefixIsTrue)
    {
        int[] toks = [Bos, prefixSubject, Relation, AttributeToken(prefixAttribute), Dot, subject, Relation];
        int[] targets = [-1, -1, prefixIsTrue ? AttributeToken(prefixAttribute) : -1, -1, -1, -1, AttributeToken(answer)];
        return new TokenExample(toks, targets);
    }
}
