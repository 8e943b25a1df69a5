using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Headwise.Reports;

/// <summary>
/// A minimal PNG encoder (RFC 2083): 8-bit RGB, no interlace, filter 0 on every row, one zlib-compressed IDAT chunk.
/// Layout: the 8-byte signature, then chunks of [length (4, big-endian)] [type (4)] [data] [CRC-32 of type + data].
/// </summary>
public static class Png
{
    private static readonly byte[] s_signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly uint[] s_crcTable = BuildCrcTable();

    public static byte[] Encode(RgbImage image)
    {
        int w = image.Width, h = image.Height;
        if (w <= 0 || h <= 0 || image.Pixels.Length != (long)w * h * 3)
        {
            throw new ArgumentException($"an RGB image of {w} × {h} needs {(long)w * h * 3} bytes, got {image.Pixels.Length}");
        }
        using var png = new MemoryStream();
        png.Write(s_signature);

        // IHDR: width, height, bit depth 8, colour type 2 (RGB), compression 0, filter 0, interlace 0
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8;
        ihdr[9] = 2;
        WriteChunk(png, "IHDR", ihdr);

        // IDAT: zlib stream of the scanlines, each prefixed by its filter type (0 = none)
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            {
                for (int y = 0; y < h; y++)
                {
                    z.WriteByte(0);
                    z.Write(image.Pixels, y * w * 3, w * 3);
                }
            }
            WriteChunk(png, "IDAT", raw.ToArray());
        }
        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>Writes the PNG through a temporary file renamed into place, so a reader never sees half an image.</summary>
    public static void Write(string path, RgbImage image) => AtomicFile.WriteAllBytes(path, Encode(image));

    /// <summary>CRC-32 (ISO-HDLC, polynomial 0xEDB88320, as PNG and zlib's crc32 use).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data, uint crc = 0)
    {
        crc = ~crc;
        foreach (byte b in data)
        {
            crc = s_crcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }
        return ~crc;
    }

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> u32 = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(u32, data.Length);
        s.Write(u32);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(u32, Crc32(data, Crc32(typeBytes)));
        s.Write(u32);
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            table[n] = c;
        }
        return table;
    }
}

/// <summary>Writes a file through a temporary sibling renamed over the target: the target is either the old file or the
/// complete new one, never half written (a crash or Ctrl-C leaves at most a stray *.tmp, which is removed on failure).</summary>
public static class AtomicFile
{
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var f = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                f.Write(bytes);
                f.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, Encoding.UTF8.GetBytes(text));
}
