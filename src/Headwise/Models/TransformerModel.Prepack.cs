using Headwise.Compute;
using Headwise.Loading;

namespace Headwise.Models;

// Prepacked weights: each linear weight packed once into the GEMM's panel layout (Kernels.Prepack.cs) on its first prefill
// use and kept, instead of being packed again by every GEMM call. Decode-sized steps (≤ 8 rows) stream the panels too where
// PackedFor says so (the packed GEMV, Kernels.GemvPacked.cs), else the weight itself through the GEMV. The packed GEMM
// computes the same sums in the same order: prefill logits are bitwise the same either way.
public abstract partial class TransformerModel
{
    /// <summary>The environment variable that sets the default of <see cref="Prepack"/>: <c>0</c>/<c>off</c> never packs,
    /// <c>1</c>/<c>on</c> always packs, unset or <c>auto</c> decides by memory (<see cref="PrepackFits"/>).</summary>
    public const string PrepackVariable = "HEADWISE_PREPACK";

    private bool? _prepack;
    private long _packedBytes;

    /// <summary>Whether prefill GEMMs read weights packed once (a second copy of each linear weight, made on first use)
    /// rather than packing them on every call. Default: <see cref="PrepackVariable"/>, else on when
    /// <see cref="PrepackFits"/>. Turning it off stops using the packed copies; it does not free them.</summary>
    public bool Prepack
    {
        get => _prepack ??= PrepackDefault();
        set => _prepack = value;
    }

    /// <summary>Bytes of packed weight copies made so far (0 until a prefill has run with <see cref="Prepack"/> on, or
    /// <see cref="PrepackWeights"/> was called).</summary>
    public long PackedWeightBytes => Interlocked.Read(ref _packedBytes);

    /// <summary>Packs every linear weight now (one forward of 9 tokens, the smallest step that takes the GEMM), so that
    /// the first real prefill does not pay for it; returns <see cref="PackedWeightBytes"/>. Does nothing with
    /// <see cref="Prepack"/> off.</summary>
    public long PrepackWeights()
    {
        if (Prepack)
        {
            RunSmallestPrefill();
        }
        return PackedWeightBytes;
    }

    /// <summary>The bytes <see cref="PrepackWeights"/> would pack, counted from the shapes of the weights a prefill packs
    /// (one forward of 9 tokens that packs nothing): what <c>info</c> reports without making the copies. Counts whether
    /// or not <see cref="Prepack"/> is on; weights already packed count too.</summary>
    public long PlannedPackBytes()
    {
        _counted = new HashSet<Weight>(ReferenceEqualityComparer.Instance);
        _countedBytes = 0;
        try
        {
            RunSmallestPrefill();
            return _countedBytes;
        }
        finally
        {
            _counted = null;
        }
    }

    private HashSet<Weight>? _counted; // set while PlannedPackBytes runs its forward: PackedFor then counts instead of packing
    private long _countedBytes;

    // the smallest forward that takes the GEMM (and so the packed path) for every linear weight
    private void RunSmallestPrefill()
    {
        {
            const int rows = Kernels.GemvMaxRows + 1;
            if (Config.Vision is { } v)
            {
                // a vision model reads images: blank ones of its own size, enough of them to fill the rows
                int n = v.SequenceLength, images = (rows + n - 1) / n, side = v.ImageSize;
                Forward(ModelInput.Image(new ImagePixels(new float[images * v.Channels * side * side], images, v.Channels, side, side), v));
            }
            else
            {
                int T = Math.Min(rows, Config.MaxPositions), B = (rows + T - 1) / T;
                Forward(new ModelInput(new int[B * T], B, T));
            }
        }
    }

    /// <summary>True when a packed copy of the weights fits comfortably: the weights' bytes twice over (loaded and packed;
    /// the packed copy is never larger than the weights plus one panel of padding per tensor) within half of the memory
    /// this process may use (<see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>, which honours container limits).</summary>
    public static bool PrepackFits(long weightBytes) =>
        2 * weightBytes <= GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;

    private bool PrepackDefault() => Environment.GetEnvironmentVariable(PrepackVariable)?.Trim().ToLowerInvariant() switch
    {
        "0" or "off" or "false" or "no" => false,
        "1" or "on" or "true" or "yes" => true,
        _ => PrepackFits(Config.ParameterCount * 4L),
    };

    // The weight values a GEMM over `rows` rows reads besides `packed`: none when the panels serve it (so a half-precision
    // weight packed from its bits is never converted to float32), else w itself (the unpacked GEMV, or prepacking off).
    private static ReadOnlySpan<float> UnpackedFor(Weight w, PackedWeight? packed, int rows) =>
        packed is not null && (rows > Kernels.GemvMaxRows || Kernels.PackedGemvSupported) ? default : w.Span;

    // w's packed panels when prepacking is on and the step is a prefill (the GEMM's path). For a decode step (the GEMV's
    // rows), where the packed GEMV runs: a half-precision weight's panels (packed from its bits rather than converted: the
    // same float32 bytes, which a prefill reads too), an nn.Linear (out, in) weight's panels, made on its first decode step
    // if no prefill made them (the (out, in) GEMV streams 1.1–1.3× slower than the panels: the unembedding W_E above all,
    // which a prompt scored last-token-only never packs), and the panels a prefill already made — they stream as fast as
    // a Conv1D (in, out) weight for one row (within ±10% either way across runs), and faster than either for several rows
    // (docs/performance.md, "Decode from the packed panels"), and decode then reads one copy of the weights, not two. Else
    // null (a Conv1D weight no prefill packed decodes from the weight as stored).
    private PackedWeight? PackedFor(Weight w, int rows, int C, int OC, WeightLayout layout)
    {
        if (_counted is not null)
        {
            if (rows > Kernels.GemvMaxRows && _counted.Add(w))
            {
                _countedBytes += Kernels.PackedWeightBytes(C, OC);
            }
            return null;
        }
        if (!Prepack || (rows <= Kernels.GemvMaxRows
            && !(Kernels.PackedGemvSupported && (w.IsHalfPrecision || w.PackedBytes > 0 || layout == WeightLayout.OutIn))))
        {
            return null;
        }
        var packed = w.Packed(C, OC, layout, out bool created);
        if (created)
        {
            Interlocked.Add(ref _packedBytes, packed.Bytes);
        }
        return packed;
    }
}
