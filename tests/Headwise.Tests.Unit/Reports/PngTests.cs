using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Headwise.Analysis;
using Headwise.Reports;

namespace Headwise.Tests.Unit.Reports;

/// <summary>The PNG encoder, read back by an independent minimal decoder: chunk layout and CRCs, IHDR, IDAT pixels.</summary>
public sealed class PngTests
{
    [Fact]
    public void Crc32MatchesTheStandardCheckValue()
    {
        // the CRC-32 check value of "123456789" (ISO-HDLC, as in zlib and PNG) is 0xCBF43926
        Assert.Equal(0xCBF43926u, Png.Crc32(Encoding.ASCII.GetBytes("123456789")));
        // and the IEND chunk every PNG ends with has CRC AE 42 60 82
        Assert.Equal(0xAE426082u, Png.Crc32("IEND"u8));
    }

    [Fact]
    public void EncodedImageDecodesToTheSamePixels()
    {
        // a 3 × 2 image with six distinct colours
        byte[] px = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90];
        var png = Png.Encode(new RgbImage(3, 2, px));
        var (w, h, depth, colorType, pixels) = Decode(png);
        Assert.Equal((3, 2, 8, 2), (w, h, depth, colorType));
        Assert.Equal(px, pixels);
    }

    [Fact]
    public void ScoreGridHasOneCellPerHeadInViridis()
    {
        // 2 layers × 3 heads; head 1.2 is the maximum (yellow), head 0.0 the minimum (dark purple)
        var scores = new HeadScores("s", "test", [[0f, 0.5f, 0.25f], [0.75f, 0.5f, 1f]]);
        var png = Png.Encode(Heatmap.ScoreGrid(scores, cellPx: 4));
        var (w, h, _, _, pixels) = Decode(png);
        Assert.Equal((12, 8), (w, h));
        (byte, byte, byte) At(int x, int y) => (pixels[(y * w + x) * 3], pixels[(y * w + x) * 3 + 1], pixels[(y * w + x) * 3 + 2]);
        Assert.Equal(((byte)0x44, (byte)0x01, (byte)0x54), At(1, 1));     // 0.0 → #440154
        Assert.Equal(((byte)0xfd, (byte)0xe7, (byte)0x25), At(11, 7));    // 1.2 → #fde725
        Assert.Equal(((byte)0x21, (byte)0x90, (byte)0x8d), At(5, 2));     // 0.5 → the middle anchor #21908d
        Assert.Equal(((byte)0x3b, (byte)0x51, (byte)0x8b), At(8, 3));     // 0.25 → anchor 2, #3b518b
        Assert.Equal(At(4, 0), At(7, 3));                                  // a cell is one colour
    }

    [Fact]
    public void PatternHeatmapGreysTheFutureAndColoursWeights()
    {
        // T = 2: row 0 attends to itself; row 1 splits 0 / 1
        var p = new AttentionPatterns([5, 6], ["a", "b"], [[[1f, 0f, 0f, 1f]]]);
        var img = Heatmap.Pattern(p, new HeadId(0, 0), cellPx: 2);
        Assert.Equal((4, 4), (img.Width, img.Height));
        Assert.Equal(((byte)0xfd, (byte)0xe7, (byte)0x25), img[0, 0]);   // weight 1
        Assert.Equal(Heatmap.Masked, img[3, 0]);                         // key 1 is after query 0
        Assert.Equal(((byte)0x44, (byte)0x01, (byte)0x54), img[0, 3]);   // weight 0
    }

    [Fact]
    public void ViridisInterpolatesBetweenAnchors()
    {
        // halfway between #440154 and #472c7a
        Assert.Equal(((byte)0x46, (byte)0x17, (byte)0x67), Heatmap.Viridis(1 / 16.0));
        Assert.Equal(Heatmap.Viridis(0), Heatmap.Viridis(double.NaN));
        Assert.Equal(Heatmap.Viridis(1), Heatmap.Viridis(7));
    }

    /// <summary>Reads signature, chunks (checking each CRC), IHDR, and the inflated, unfiltered (filter 0) IDAT rows.</summary>
    internal static (int W, int H, int Depth, int ColorType, byte[] Pixels) Decode(byte[] png)
    {
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        int w = 0, h = 0, depth = 0, colorType = 0;
        using var idat = new MemoryStream();
        var types = new List<string>();
        for (int o = 8; o < png.Length;)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(o));
            string type = Encoding.ASCII.GetString(png, o + 4, 4);
            var data = png.AsSpan(o + 8, len);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(o + 8 + len));
            Assert.Equal(crc, Png.Crc32(png.AsSpan(o + 4, 4 + len)));
            types.Add(type);
            if (type == "IHDR")
            {
                w = BinaryPrimitives.ReadInt32BigEndian(data);
                h = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                (depth, colorType) = (data[8], data[9]);
            }
            else if (type == "IDAT")
            {
                idat.Write(data);
            }
            o += 12 + len;
        }
        Assert.Equal("IHDR", types[0]);
        Assert.Equal("IEND", types[^1]);
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        using var raw = new MemoryStream();
        z.CopyTo(raw);
        var bytes = raw.ToArray();
        Assert.Equal(h * (1 + w * 3), bytes.Length);
        var pixels = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
        {
            Assert.Equal(0, bytes[y * (1 + w * 3)]);
            Array.Copy(bytes, y * (1 + w * 3) + 1, pixels, y * w * 3, w * 3);
        }
        return (w, h, depth, colorType, pixels);
    }
}
