using Headwise.Compute;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// The decode GEMVs' tasks run on the parked worker team (WorkerTeam.cs) instead of Parallel.For: the same tasks, so the
// same bits, and no allocation per call; a second thread that finds the team busy takes Parallel.For and gets its own
// right answer.
[Collection(KernelThreadsCollection.Name)]
public sealed class GemvTeamTests
{
    // decode shapes: T = 1..8 rows, OC around the tasks' 16-column rounding, C long enough to split (InOut) and not
    private static readonly (int T, int C, int OC)[] Shapes = [(1, 768, 2304), (1, 3072, 768), (3, 700, 333), (8, 65, 1100), (4, 1500, 17)];

    [Theory]
    [InlineData(WeightLayout.OutIn)]
    [InlineData(WeightLayout.InOut)]
    public void TeamGivesTheBitsOfParallelFor(WeightLayout layout)
    {
        var rng = new Random(3 + (int)layout);
        bool saved = K.GemvTeam;
        using var scope = new ThreadScope(2);
        try
        {
            foreach (var (T, C, OC) in Shapes)
            {
                float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), b = RandomArray(rng, OC);
                float[] pooled = new float[T * OC], team = new float[T * OC];
                K.GemvTeam = false;
                K.MatMul(x, w, b, pooled, T, C, OC, layout);
                K.GemvTeam = true;
                K.MatMul(x, w, b, team, T, C, OC, layout);
                for (int i = 0; i < team.Length; i++)
                {
                    Assert.True(BitConverter.SingleToInt32Bits(pooled[i]) == BitConverter.SingleToInt32Bits(team[i]),
                        $"T={T} C={C} OC={OC} [{i}]: team {team[i]:R}, Parallel.For {pooled[i]:R}");
                }
            }
        }
        finally
        {
            K.GemvTeam = saved;
        }
    }

    [Fact]
    public void TeamGemvDoesNotAllocate()
    {
        var rng = new Random(8);
        const int C = 512, OC = 640;
        float[] x = RandomArray(rng, C), w = RandomArray(rng, C * OC), o = new float[OC];
        bool saved = K.GemvTeam;
        using var scope = new ThreadScope(2);
        try
        {
            K.GemvTeam = true;
            void RunBoth()
            {
                K.MatMul(x, w, [], o, 1, C, OC, WeightLayout.OutIn);
                K.MatMul(x, w, [], o, 1, C, OC, WeightLayout.InOut);
            }
            RunBoth(); // warm-up: the team's threads, per-thread partial sums, JIT
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 20; i++) RunBoth();
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally
        {
            K.GemvTeam = saved;
        }
    }

    [Fact]
    public void ConcurrentCallersEachGetTheirOwnResult()
    {
        var rng = new Random(21);
        const int C = 300, OC = 900;
        float[] w = RandomArray(rng, C * OC);
        var xs = Enumerable.Range(0, 4).Select(_ => RandomArray(rng, C)).ToArray();
        var want = new float[xs.Length][];
        bool saved = K.GemvTeam;
        using var scope = new ThreadScope(2);
        try
        {
            K.GemvTeam = true;
            for (int k = 0; k < xs.Length; k++)
            {
                want[k] = new float[OC];
                K.MatMul(xs[k], w, [], want[k], 1, C, OC, WeightLayout.OutIn);
            }
            // four threads at once: one holds the team, the others fall back to Parallel.For; every result is its own
            Parallel.For(0, 4 * xs.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
            {
                int k = i % xs.Length;
                var got = new float[OC];
                for (int rep = 0; rep < 10; rep++)
                {
                    K.MatMul(xs[k], w, [], got, 1, C, OC, WeightLayout.OutIn);
                    Assert.Equal(want[k], got);
                }
            });
        }
        finally
        {
            K.GemvTeam = saved;
        }
    }
}
