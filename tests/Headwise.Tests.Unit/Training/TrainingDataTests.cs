using Headwise.Training;

namespace Headwise.Tests.Unit.Training;

/// <summary>The training-window sampler: plain windows are consecutive text, repeat windows are a slice and its copy, and
/// the option at 0 draws the RNG exactly as before it existed (so earlier runs resume and reproduce bit for bit).</summary>
public class TrainingDataTests
{
    private static readonly int[] Stream = Enumerable.Range(0, 1000).Select(i => (i * 7919) % 997).ToArray();

    [Fact]
    public void PlainWindowsAreConsecutiveTextAndUnchangedByTheOption()
    {
        const int T = 8, B = 16;
        var data = new TrainingData(Stream, T, 0.1);
        var (inputs, targets) = (new int[B * T], new int[B * T]);
        var rng = new TrainingRng(42);
        data.SampleBatch(rng, inputs, targets, B, repeatFraction: 0);
        var replay = new TrainingRng(42);
        for (int b = 0; b < B; b++)
        {
            int start = replay.NextInt(data.Train.Length - T); // the sampler's draws, replayed
            Assert.Equal(data.Train.AsSpan(start, T).ToArray(), inputs.AsSpan(b * T, T).ToArray());
            Assert.Equal(data.Train.AsSpan(start + 1, T).ToArray(), targets.AsSpan(b * T, T).ToArray());
        }
        Assert.Equal(replay.State, rng.State);
    }

    [Fact]
    public void RepeatWindowsAreASliceFollowedByItsCopy()
    {
        const int T = 9, B = 64, h = (T / 2) + 1;
        var data = new TrainingData(Stream, T, 0.1);
        var (inputs, targets) = (new int[B * T], new int[B * T]);
        data.SampleBatch(new TrainingRng(7), inputs, targets, B, repeatFraction: 1);
        for (int b = 0; b < B; b++)
        {
            var x = inputs.AsSpan(b * T, T);
            var y = targets.AsSpan(b * T, T);
            for (int i = 0; i + 1 < T; i++)
            {
                Assert.Equal(x[i + 1], y[i]); // next-token targets
            }
            for (int i = h; i < T; i++)
            {
                Assert.Equal(x[i - h], x[i]); // the second half repeats the first
            }
            Assert.Equal(x[(T - h)], y[T - 1]); // the last target continues the copy
            int s0 = Array.IndexOf(data.Train, x[0]);
            Assert.True(s0 >= 0 && data.Train.AsSpan(s0, h).SequenceEqual(x[..h]), "the slice is consecutive training text");
        }

        // a fraction in between mixes both kinds
        data.SampleBatch(new TrainingRng(7), inputs, targets, B, repeatFraction: 0.5);
        int repeated = Enumerable.Range(0, B).Count(b => inputs[(b * T) + h] == inputs[b * T] && inputs[(b * T) + h + 1] == inputs[(b * T) + 1]);
        Assert.InRange(repeated, B / 5, 4 * B / 5);
    }

    [Fact]
    public void RandomRepeatWindowsAreBosThenAPeriodicRandomSequenceScoredOnlyWhereCopyingPredicts()
    {
        const int T = 64, B = 64, V = 500, bos = 499;
        var data = new TrainingData(Stream, T, 0.1);
        var (inputs, targets) = (new int[B * T], new int[B * T]);
        data.SampleBatch(new TrainingRng(3), inputs, targets, B, randomRepeatFraction: 1, vocabSize: V, bosId: bos);
        var periods = new HashSet<int>();
        for (int b = 0; b < B; b++)
        {
            int[] x = inputs.AsSpan(b * T, T).ToArray();
            int[] y = targets.AsSpan(b * T, T).ToArray();
            Assert.Equal(bos, x[0]);
            // the period: the first shift under which x[1..] repeats itself
            int p = Enumerable.Range(1, T - 2).First(q => x.AsSpan(q + 1).SequenceEqual(x.AsSpan(1, T - 1 - q)));
            Assert.InRange(p, T / 16, T / 2);
            periods.Add(p);
            for (int i = 1; i < T; i++)
            {
                Assert.InRange(x[i], 0, V - 2); // never BOS again
            }
            for (int i = 0; i < T; i++)
            {
                if (i <= p) Assert.Equal(Headwise.Training.Layers.CrossEntropy.Ignore, y[i]); // the first copy and its wrap are unpredictable
                else if (i + 1 < T) Assert.Equal(x[i + 1], y[i]);
                else Assert.Equal(x[i + 1 - p], y[i]);
            }
        }
        Assert.True(periods.Count > 10, $"periods vary ({periods.Count} distinct)");

        // the two curricula and plain text mix by one draw per window; without BOS the window starts with a random token
        data.SampleBatch(new TrainingRng(3), inputs, targets, B, repeatFraction: 0.3, randomRepeatFraction: 0.3, vocabSize: V);
        int ignored = Enumerable.Range(0, B).Count(b => targets[b * T] == Headwise.Training.Layers.CrossEntropy.Ignore);
        Assert.InRange(ignored, B / 8, B / 2);
        Assert.Throws<InvalidInputException>(() => data.SampleBatch(new TrainingRng(3), inputs, targets, B, randomRepeatFraction: 0.5));
    }

    [Fact]
    public void PairRecallWindowsShowEachPairEveryRoundInANewOrderScoredOnlyOnRecalledSeconds()
    {
        const int T = 64, B = 64, V = 500, bos = 499;
        var data = new TrainingData(Stream, T, 0.1);
        var (inputs, targets) = (new int[B * T], new int[B * T]);
        data.SampleBatch(new TrainingRng(5), inputs, targets, B, pairRecallFraction: 1, vocabSize: V, bosId: bos);
        var pairCounts = new HashSet<int>();
        var phases = new HashSet<int>();
        int twoBackDiffers = 0, reshown = 0;
        for (int b = 0; b < B; b++)
        {
            int[] x = inputs.AsSpan(b * T, T).ToArray();
            int[] y = targets.AsSpan(b * T, T).ToArray();
            Assert.Equal(bos, x[0]);
            Assert.All(x.Skip(1), t => Assert.InRange(t, 0, V - 2)); // never BOS again
            // the pairs start right after BOS or after one filler token: the first scored target is a second (b), at a
            // position of the pairs' parity
            int firstScored = Array.FindIndex(y, t => t != Headwise.Training.Layers.CrossEntropy.Ignore);
            Assert.True(firstScored > 0, "a window scores some recalled seconds");
            int phase = (firstScored + 1) % 2 == 0 ? 0 : 1, start = 1 + phase;
            phases.Add(phase);
            // a first token decides its second everywhere
            var second = new Dictionary<int, int>();
            for (int i = start; i + 1 < T; i += 2)
            {
                if (second.TryGetValue(x[i], out int bj))
                {
                    Assert.Equal(bj, x[i + 1]);
                }
                second[x[i]] = x[i + 1];
            }
            int n = second.Count;
            Assert.InRange(n, T / 16, T / 4);
            pairCounts.Add(n);
            // the first n pairs are one round (each pair once); targets only on the seconds of rounds after the first
            Assert.Equal(n, x.Skip(start).Take(2 * n).Where((_, k) => k % 2 == 0).Distinct().Count());
            for (int i = 0; i < T; i++)
            {
                int pos = i + 1; // the target's position in the window
                bool isSecond = pos >= start && (pos - start) % 2 == 1;
                if (isSecond && pos > start + (2 * n) - 1)
                {
                    Assert.Equal(pos < T ? x[pos] : second[x[i]], y[i]);
                }
                else
                {
                    Assert.Equal(Headwise.Training.Layers.CrossEntropy.Ignore, y[i]);
                }
            }
            var lastAt = new Dictionary<int, int>();
            for (int i = start; i < T; i += 2)
            {
                if (lastAt.TryGetValue(x[i], out int before) && before > start)
                {
                    reshown++;
                    if (x[before - 1] != x[i - 1]) twoBackDiffers++;
                }
                lastAt[x[i]] = i;
            }
        }
        Assert.True(pairCounts.Count > 5, $"pair counts vary ({pairCounts.Count} distinct)");
        Assert.Equal(2, phases.Count); // both parities occur
        // the shuffle: the token before a pair's first is usually not the same as at its earlier showing
        Assert.True(twoBackDiffers > reshown * 3 / 4, $"orders reshuffled ({twoBackDiffers} of {reshown})");
        Assert.Throws<InvalidInputException>(() => data.SampleBatch(new TrainingRng(3), inputs, targets, B, pairRecallFraction: 0.5));
    }
}
