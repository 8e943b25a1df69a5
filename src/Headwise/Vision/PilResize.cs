namespace Headwise.Vision;

/// <summary>The resampling filters of PIL's <c>Image.resize</c>, by the numbers Hugging Face's <c>resample</c> field uses.</summary>
public enum ResampleFilter
{
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}

/// <summary>
/// PIL's resize of 8-bit images (Pillow's Resample.c), re-implemented from its definition so that a Hugging Face image
/// processor's <c>image.resize((w, h), resample)</c> is reproduced to the byte: a separable convolution, horizontal pass
/// first (over the rows the vertical pass reads), then vertical, each rounding to uint8. For output pixel i the filter is
/// centred on the source coordinate (i + 0.5)·scale and, when downscaling, stretched by scale = in/out (so a bilinear
/// downscale averages every source pixel under a triangle of half-width scale, not just the two nearest); the weights are
/// normalised, then fixed-point with 22 fraction bits, and the sums rounded and clipped to 0..255.
/// </summary>
public static class PilResize
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes <paramref name="channels"/> interleaved 8-bit planes, src (inH, inW, channels) → (outH, outW, channels).</summary>
    public static byte[] Resize(ReadOnlySpan<byte> src, int inH, int inW, int channels, int outH, int outW, ResampleFilter filter)
    {
        if (inH <= 0 || inW <= 0 || outH <= 0 || outW <= 0 || src.Length != inH * inW * channels)
        {
            throw new InvalidInputException($"resize: {src.Length} bytes do not fill {inH}×{inW}×{channels}, or a size is not positive (to {outH}×{outW})");
        }
        if (inH == outH && inW == outW)
        {
            return src.ToArray(); // PIL returns a copy when nothing changes
        }
        var (boundsH, kH, kSizeH) = Coefficients(inW, outW, filter);
        var (boundsV, kV, kSizeV) = Coefficients(inH, outH, filter);
        // the rows the vertical pass reads: the horizontal pass need not touch the others
        int yFirst = boundsV[0], yLast = boundsV[(outH - 1) * 2] + boundsV[(outH - 1) * 2 + 1];
        byte[] rows = src.ToArray();
        int rowsH = inH;
        if (inW != outW)
        {
            rowsH = yLast - yFirst;
            rows = new byte[rowsH * outW * channels];
            for (int y = 0; y < rowsH; y++)
            {
                for (int x = 0; x < outW; x++)
                {
                    int xmin = boundsH[x * 2], n = boundsH[x * 2 + 1];
                    for (int c = 0; c < channels; c++)
                    {
                        int sum = 1 << (PrecisionBits - 1);
                        for (int i = 0; i < n; i++)
                        {
                            sum += src[((y + yFirst) * inW + xmin + i) * channels + c] * kH[x * kSizeH + i];
                        }
                        rows[(y * outW + x) * channels + c] = Clip8(sum);
                    }
                }
            }
            for (int i = 0; i < outH; i++)
            {
                boundsV[i * 2] -= yFirst;
            }
        }
        if (inH == outH)
        {
            return rows;
        }
        var dst = new byte[outH * outW * channels];
        for (int y = 0; y < outH; y++)
        {
            int ymin = boundsV[y * 2], n = boundsV[y * 2 + 1];
            for (int x = 0; x < outW; x++)
            {
                for (int c = 0; c < channels; c++)
                {
                    int sum = 1 << (PrecisionBits - 1);
                    for (int i = 0; i < n; i++)
                    {
                        sum += rows[((ymin + i) * outW + x) * channels + c] * kV[y * kSizeV + i];
                    }
                    dst[(y * outW + x) * channels + c] = Clip8(sum);
                }
            }
        }
        return dst;
    }

    private static byte Clip8(int sum) => sum >= (1 << PrecisionBits << 8) ? (byte)255 : sum <= 0 ? (byte)0 : (byte)(sum >> PrecisionBits);

    // per output pixel: the first source pixel and the count (bounds, 2 per output), and the fixed-point weights (ksize each)
    private static (int[] Bounds, int[] Weights, int KSize) Coefficients(int inSize, int outSize, ResampleFilter filter)
    {
        var (support0, f) = Filter(filter);
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = support0 * filterScale;
        int kSize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * kSize];
        var k = new double[kSize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterScale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);  // C's (int) truncates, as PIL's "round the value"
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            double ww = 0;
            for (int x = 0; x < xmax; x++)
            {
                k[x] = f((x + xmin - center + 0.5) * ss);
                ww += k[x];
            }
            for (int x = 0; x < xmax; x++)
            {
                double w = ww != 0 ? k[x] / ww : k[x];
                // normalize_coeffs_8bpc: to fixed point, rounding half away from zero
                weights[xx * kSize + x] = (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return (bounds, weights, kSize);
    }

    private static (double Support, Func<double, double> F) Filter(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Box => (0.5, x => x > -0.5 && x <= 0.5 ? 1.0 : 0.0),
        ResampleFilter.Bilinear => (1.0, x => Math.Abs(x) < 1.0 ? 1.0 - Math.Abs(x) : 0.0),
        ResampleFilter.Hamming => (1.0, Hamming),
        ResampleFilter.Bicubic => (2.0, Bicubic),
        ResampleFilter.Lanczos => (3.0, x => x >= -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3.0) : 0.0),
        _ => throw new InvalidInputException($"resample {(int)filter} is not one of PIL's filters 1–5 (lanczos, bilinear, bicubic, box, hamming)"),
    };

    private static double Hamming(double x)
    {
        x = Math.Abs(x);
        if (x == 0.0)
        {
            return 1.0;
        }
        if (x >= 1.0)
        {
            return 0.0;
        }
        x *= Math.PI;
        return Math.Sin(x) / x * (0.54 + 0.46 * Math.Cos(x));
    }

    // Keys' cubic with a = −0.5, as PIL's bicubic_filter
    private static double Bicubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        return x < 1.0 ? ((a + 2.0) * x - (a + 3.0)) * x * x + 1
            : x < 2.0 ? (((x - 5) * x + 8) * x - 4) * a
            : 0.0;
    }

    private static double Sinc(double x)
    {
        if (x == 0.0)
        {
            return 1.0;
        }
        x *= Math.PI;
        return Math.Sin(x) / x;
    }
}
