using Headwise.Compute;
using static Headwise.Tests.Unit.Compute.KernelTestUtil;
using K = Headwise.Compute.Kernels;

namespace Headwise.Tests.Unit.Compute;

// Hot paths allocate nothing per call once their per-thread scratch exists (single-threaded; Parallel.For itself
// allocates a little bookkeeping when threads > 1).
[Collection(KernelThreadsCollection.Name)]
public sealed class AllocationTests
{
    [Fact]
    public void SingleThreadedKernelsDoNotAllocate()
    {
        var rng = new Random(9);
        const int T = 20, C = 64, OC = 48, NH = 4, NKV = 2, HD = 16, S = 20;
        float[] x = RandomArray(rng, T * C), w = RandomArray(rng, C * OC), b = RandomArray(rng, OC), o = new float[T * OC];
        float[] q = RandomArray(rng, T * NH * HD), k = RandomArray(rng, S * NKV * HD), v = RandomArray(rng, S * NKV * HD), z = new float[T * NH * HD];
        float[] nw = RandomArray(rng, C), y = new float[T * C], scale = new float[T], scores = new float[NH * T * S];
        var (cos, sin) = K.RopeTables(64, HD, 10000.0);
        int[] positions = new int[T];
        using var scope = new ThreadScope(1);
        void RunAll()
        {
            K.MatMul(x, w, b, o, T, C, OC, WeightLayout.OutIn);
            K.MatMul(x, w, b, o, 2, C, OC, WeightLayout.InOut);
            K.Attention(q, k, v, z, T, S, NH, NKV, HD, 0, 0.25f, [], 0);
            K.AttentionScores(q, k, scores, T, S, NH, NKV, HD, 0, 0.25f, [], 0);
            K.MaskedSoftmax(scores, NH * T, S);
            K.AttentionApply(scores, v, z, T, S, NH, NKV, HD);
            K.LayerNorm(x, nw, nw, y, scale, T, C, 1e-5f);
            K.RmsNorm(x, nw, y, scale, T, C, 1e-5f);
            K.GeluTanh(x, y);
            K.GeluErf(x, y);
            K.SwiGlu(x, x, y);
            K.Add(x, x, y);
            K.Rope(q, positions, T, NH, HD, HD, cos, sin, RopeLayout.RotateHalf);
        }
        RunAll(); // warm-up: per-thread scratch, JIT
        long before = GC.GetAllocatedBytesForCurrentThread();
        RunAll();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
    }
}
