namespace Headwise.Training;

/// <summary>
/// A token stream split into a training part (the first 1 − heldOut of it) and a held-out tail. Training batches are
/// B windows of T + 1 tokens at offsets drawn by a seeded RNG (inputs = window[..T], targets = window[1..]); evaluation
/// uses fixed, evenly spaced windows of the held-out tail, so eval losses are comparable across steps.
/// </summary>
public sealed class TrainingData
{
    public int[] Train { get; }
    public int[] HeldOut { get; }
    public int SeqLen { get; }

    public TrainingData(int[] tokens, int seqLen, double heldOutFraction, string source = "data")
    {
        if (heldOutFraction is < 0 or >= 1 || double.IsNaN(heldOutFraction))
        {
            throw new InvalidInputException($"held-out fraction must be in [0, 1) (got {heldOutFraction})");
        }
        int held = (int)(tokens.Length * heldOutFraction);
        Train = tokens[..(tokens.Length - held)];
        HeldOut = tokens[(tokens.Length - held)..];
        SeqLen = seqLen;
        if (Train.Length < seqLen + 1)
        {
            throw new InvalidInputException($"{source}: {tokens.Length} tokens leave {Train.Length} for training, too short for one window of sequence length {seqLen} + 1");
        }
        if (held > 0 && HeldOut.Length < seqLen + 1)
        {
            throw new InvalidInputException($"{source}: the held-out split has {HeldOut.Length} tokens, too short for one window of {seqLen} + 1 (use more data or a larger --held-out)");
        }
    }

    /// <summary>
    /// Fills inputs and targets (B, T) with B random training windows. With <paramref name="repeatFraction"/> &gt; 0, each
    /// window is, with that probability, a slice of h = T/2 + 1 training tokens followed by the same slice again (a copying
    /// curriculum: the second half is predictable from the first, which is what induction heads learn). With
    /// <paramref name="randomRepeatFraction"/> &gt; 0, a further share of windows is <see cref="FillRandomRepeat">random
    /// tokens repeated</see> (what the induction detector measures), and with <paramref name="pairRecallFraction"/> &gt; 0 a
    /// further share is <see cref="FillPairRecall">random pairs recalled in shuffled order</see>. At 0, 0 and 0 the RNG is drawn
    /// exactly as without the options.
    /// </summary>
    public void SampleBatch(TrainingRng rng, Span<int> inputs, Span<int> targets, int B, double repeatFraction = 0,
        double randomRepeatFraction = 0, int vocabSize = 0, int bosId = -1, double pairRecallFraction = 0)
    {
        if ((randomRepeatFraction > 0 || pairRecallFraction > 0) && vocabSize < 3)
        {
            throw new InvalidInputException($"random repeated windows need the vocabulary size (got {vocabSize})");
        }
        int T = SeqLen;
        for (int b = 0; b < B; b++)
        {
            var inp = inputs.Slice(b * T, T);
            var tgt = targets.Slice(b * T, T);
            double u = repeatFraction > 0 || randomRepeatFraction > 0 || pairRecallFraction > 0 ? rng.NextDouble() : 1;
            if (u < repeatFraction)
            {
                // window u = s ++ s with |s| = h, 2h = T + 2 ≥ T + 1: inputs = u[..T], targets = u[1..T + 1]
                int h = (T / 2) + 1;
                int s0 = rng.NextInt(Train.Length - h + 1);
                for (int i = 0; i < T; i++)
                {
                    inp[i] = Train[s0 + (i % h)];
                    tgt[i] = Train[s0 + ((i + 1) % h)];
                }
                continue;
            }
            if (u < repeatFraction + randomRepeatFraction)
            {
                FillRandomRepeat(rng, inp, tgt, vocabSize, bosId);
                continue;
            }
            if (u < repeatFraction + randomRepeatFraction + pairRecallFraction)
            {
                FillPairRecall(rng, inp, tgt, vocabSize, bosId);
                continue;
            }
            int start = rng.NextInt(Train.Length - T);
            Train.AsSpan(start, T).CopyTo(inp);
            Train.AsSpan(start + 1, T).CopyTo(tgt);
        }
    }

    /// <summary>
    /// One window (T) of random tokens repeated with a random period p in [max(2, T/16), T/2]: u = [BOS] r₁..r_p r₁..r_p r₁…,
    /// rᵢ uniform over the vocabulary without BOS (no BOS when <paramref name="bosId"/> &lt; 0), inputs = u[..T], targets =
    /// u[1..T + 1]. Only targets an induction head can predict count: those from the second token of the second copy on
    /// (the rest are <see cref="Layers.CrossEntropy.Ignore"/>), so the window teaches copying and nothing about the unigram.
    /// </summary>
    private static void FillRandomRepeat(TrainingRng rng, Span<int> inputs, Span<int> targets, int vocabSize, int bosId)
    {
        int T = inputs.Length, offset = bosId >= 0 ? 1 : 0;
        int lo = Math.Max(2, T / 16), hi = Math.Max(lo, T / 2);
        int p = lo + rng.NextInt(hi - lo + 1);
        int drawable = bosId >= 0 ? vocabSize - 1 : vocabSize;
        Span<int> period = p <= 512 ? stackalloc int[p] : new int[p];
        for (int k = 0; k < p; k++)
        {
            int t = rng.NextInt(drawable);
            period[k] = bosId >= 0 && t >= bosId ? t + 1 : t;
        }
        for (int i = 0; i < T; i++)
        {
            // u[j] for j ≥ offset is r at m = j − offset; it is predictable once m ≥ p + 1 (its predecessor seen one period before)
            inputs[i] = i < offset ? bosId : period[(i - offset) % p];
            int m = i + 1 - offset;
            targets[i] = m > p ? period[m % p] : Layers.CrossEntropy.Ignore;
        }
    }

    /// <summary>
    /// One window (T) of n random pairs (aⱼ, bⱼ), n in [max(2, T/16), T/4] with distinct aⱼ, shown again and again, each round
    /// in a new random order: u = [BOS] (f) a₃ b₃ a₁ b₁ a₂ b₂ | a₁ b₁ a₃ b₃ … (no BOS when <paramref name="bosId"/> &lt; 0; f a
    /// random filler token, half the time, so that pairs start at either parity). Only a bⱼ
    /// whose pair was shown before counts as a target; the rest are <see cref="Layers.CrossEntropy.Ignore"/>. Unlike
    /// <see cref="FillRandomRepeat"/>, the token two back differs between a pair's showings, so the head that tells the
    /// induction head "what came before" is rewarded for looking exactly one token back (a previous-token head) rather
    /// than at a window of recent tokens.
    /// </summary>
    private static void FillPairRecall(TrainingRng rng, Span<int> inputs, Span<int> targets, int vocabSize, int bosId)
    {
        int T = inputs.Length, offset = bosId >= 0 ? 1 : 0;
        int lo = Math.Max(2, T / 16), hi = Math.Max(lo, T / 4);
        int n = lo + rng.NextInt(hi - lo + 1);
        int drawable = bosId >= 0 ? vocabSize - 1 : vocabSize;
        n = Math.Min(n, drawable);
        Span<int> first = n <= 256 ? stackalloc int[n] : new int[n];
        Span<int> second = n <= 256 ? stackalloc int[n] : new int[n];
        Span<int> order = n <= 256 ? stackalloc int[n] : new int[n];
        for (int k = 0; k < n; k++)
        {
            int a;
            do
            {
                a = rng.NextInt(drawable);
                a = bosId >= 0 && a >= bosId ? a + 1 : a;
            }
            while (first[..k].Contains(a));
            first[k] = a;
            int b = rng.NextInt(drawable);
            second[k] = bosId >= 0 && b >= bosId ? b + 1 : b;
        }
        // u = [BOS] then rounds of the pairs in shuffled order, one token longer than the window (targets are u shifted by one)
        int length = T + 1;
        Span<int> u = length <= 1024 ? stackalloc int[length] : new int[length];
        Span<bool> counts = length <= 1024 ? stackalloc bool[length] : new bool[length];
        counts.Clear();
        if (offset == 1) u[0] = bosId;
        // a random filler token after BOS half the time, so that pairs start at either parity of position: a head cannot
        // learn "look back one" for even positions only
        int j = offset, round = 0;
        if (rng.NextInt(2) == 1)
        {
            int filler = rng.NextInt(drawable);
            u[j++] = bosId >= 0 && filler >= bosId ? filler + 1 : filler;
        }
        while (j < length)
        {
            for (int k = 0; k < n; k++) order[k] = k;
            for (int k = n - 1; k > 0; k--)
            {
                int r = rng.NextInt(k + 1);
                (order[k], order[r]) = (order[r], order[k]);
            }
            for (int k = 0; k < n && j < length; k++)
            {
                u[j++] = first[order[k]];
                if (j < length)
                {
                    counts[j] = round > 0;
                    u[j++] = second[order[k]];
                }
            }
            round++;
        }
        for (int i = 0; i < T; i++)
        {
            inputs[i] = u[i];
            targets[i] = counts[i + 1] ? u[i + 1] : Layers.CrossEntropy.Ignore;
        }
    }

    /// <summary>Start offsets of the evaluation windows in <see cref="HeldOut"/>.</summary>
    public int[] EvalStarts(int windows)
    {
        if (HeldOut.Length < SeqLen + 1 || windows <= 0) return [];
        int span = HeldOut.Length - SeqLen - 1;
        var starts = new int[windows];
        for (int i = 0; i < windows; i++) starts[i] = windows == 1 ? 0 : (int)((long)i * span / (windows - 1));
        return starts;
    }

    /// <summary>FNV-1a hash of the whole stream: a resume checks it is given the same data.</summary>
    public static ulong Hash(int[] tokens)
    {
        ulong h = 14695981039346656037UL;
        foreach (int t in tokens)
        {
            h = (h ^ (uint)t) * 1099511628211UL;
        }
        return h ^ (ulong)tokens.Length;
    }
}
