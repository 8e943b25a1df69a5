using System.Text;
using System.Text.Json;

namespace Headwise.Loading;

/// <summary>Writes float32 tensors as a <c>.safetensors</c> file, atomically: a temp file beside the target, then a rename.</summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, TensorDType dtype = TensorDType.F32)
    {
        if (dtype is not (TensorDType.F32 or TensorDType.F16 or TensorDType.BF16))
        {
            throw new ArgumentException($"cannot write dtype {dtype}", nameof(dtype));
        }
        var list = tensors.ToList();
        int elementSize = SafeTensorsFile.ElementSize(dtype);
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is not null)
        {
            header["__metadata__"] = metadata;
        }
        long offset = 0;
        foreach (var (name, shape, data) in list)
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            if (n != data.Length)
            {
                throw new ArgumentException($"tensor '{name}': {data.Length} values do not fill shape [{string.Join(", ", shape)}]");
            }
            header[name] = new { dtype = dtype.ToString(), shape, data_offsets = new[] { offset, offset + n * elementSize } };
            offset += n * elementSize;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8; // the data section starts 8-aligned
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                f.Write(BitConverter.GetBytes((long)padded));
                f.Write(json);
                for (int i = json.Length; i < padded; i++)
                {
                    f.WriteByte((byte)' ');
                }
                var buffer = new byte[1 << 20];
                foreach (var (_, _, data) in list)
                {
                    var span = data.Span;
                    for (int start = 0; start < span.Length;)
                    {
                        int count = Math.Min(span.Length - start, buffer.Length / elementSize);
                        Encode(span.Slice(start, count), buffer, dtype);
                        f.Write(buffer, 0, count * elementSize);
                        start += count;
                    }
                }
                f.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static void Encode(ReadOnlySpan<float> src, byte[] dst, TensorDType dtype)
    {
        switch (dtype)
        {
            case TensorDType.F32:
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(src).CopyTo(dst);
                break;
            case TensorDType.F16:
                for (int i = 0; i < src.Length; i++)
                {
                    BitConverter.TryWriteBytes(dst.AsSpan(i * 2), BitConverter.HalfToUInt16Bits((Half)src[i]));
                }
                break;
            case TensorDType.BF16:
                for (int i = 0; i < src.Length; i++)
                {
                    // round to nearest even, as torch's float → bfloat16 conversion does
                    uint bits = BitConverter.SingleToUInt32Bits(src[i]);
                    uint rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16;
                    BitConverter.TryWriteBytes(dst.AsSpan(i * 2), (ushort)rounded);
                }
                break;
        }
    }
}
