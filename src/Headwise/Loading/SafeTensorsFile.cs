using System.Text.Json;

namespace Headwise.Loading;

/// <summary>Element types a checkpoint may store.</summary>
public enum TensorDType { F32, F16, BF16, I32, I64 }

/// <summary>One tensor's entry in a safetensors header, already validated against the file's size.</summary>
public sealed record TensorEntry(string Name, TensorDType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A memory-mapped <c>.safetensors</c> file: an 8-byte little-endian header length N, N bytes of JSON header, then the raw data.
/// Every offset and size in the header is checked before any byte is read; tensor data is never copied by this class.
/// Spec: https://github.com/huggingface/safetensors (format section).
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024; // the reference implementation's own limit
    private readonly MappedFile _file;
    private readonly byte* _base;
    private readonly long _dataStart;

    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(string path)
    {
        Path = path;
        _file = new MappedFile(path);
        FileLength = _file.Length;
        _base = _file.Base;
        if (FileLength < 8)
        {
            Dispose();
            throw new ModelFormatException($"{path}: truncated safetensors file ({FileLength} bytes; expected at least an 8-byte header length)");
        }
        long headerLen = *(long*)_base;
        if (headerLen <= 0 || headerLen > MaxHeaderBytes || 8 + headerLen > FileLength)
        {
            Dispose();
            throw new ModelFormatException($"{path}: safetensors header length {headerLen} is impossible for a file of {FileLength} bytes (truncated or not a safetensors file)");
        }
        _dataStart = 8 + headerLen;
        try
        {
            (Tensors, Metadata) = ParseHeader(new ReadOnlySpan<byte>(_base + 8, (int)headerLen), FileLength - _dataStart);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens and validates a safetensors file. Throws <see cref="ModelFormatException"/> naming the file on any inconsistency.</summary>
    public static SafeTensorsFile Open(string path) => new(path);

    private (Dictionary<string, TensorEntry>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> json, long dataLength)
    {
        var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        // JsonDocument accepts invalid UTF-8 inside strings and fails only when a name is read, with a non-typed exception
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            throw new ModelFormatException($"{Path}: safetensors header is not valid UTF-8 text");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray());
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{Path}: safetensors header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException($"{Path}: safetensors header must be a JSON object");
            }
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                    {
                        foreach (var m in prop.Value.EnumerateObject())
                        {
                            metadata[m.Name] = m.Value.ToString();
                        }
                    }
                    continue;
                }
                tensors[prop.Name] = ParseEntry(prop.Name, prop.Value, dataLength);
            }
        }
        // Tensors must not overlap: sort by offset and check neighbours.
        TensorEntry? previous = null;
        foreach (var t in tensors.Values.OrderBy(t => t.Begin))
        {
            if (previous is not null && t.Begin < previous.End && t.End > t.Begin)
            {
                throw new ModelFormatException($"{Path}: tensors '{previous.Name}' and '{t.Name}' overlap in the data section");
            }
            previous = t;
        }
        return (tensors, metadata);
    }

    private TensorEntry ParseEntry(string name, JsonElement e, long dataLength)
    {
        string where = $"{Path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object ||
            !e.TryGetProperty("dtype", out var dt) || !e.TryGetProperty("shape", out var sh) || !e.TryGetProperty("data_offsets", out var off) ||
            sh.ValueKind != JsonValueKind.Array || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
        {
            throw new ModelFormatException($"{where}: header entry needs dtype, shape and data_offsets [begin, end]");
        }
        TensorDType dtype = (dt.ValueKind == JsonValueKind.String ? dt.GetString() : dt.GetRawText()) switch
        {
            "F32" => TensorDType.F32,
            "F16" => TensorDType.F16,
            "BF16" => TensorDType.BF16,
            "I32" => TensorDType.I32,
            "I64" => TensorDType.I64,
            var other => throw new ModelFormatException($"{where}: unsupported dtype '{other}' (supported: F32, F16, BF16; I32/I64 for integer tensors)"),
        };
        var shape = new long[sh.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
            {
                throw new ModelFormatException($"{where}: shape entries must be non-negative integers");
            }
            shape[i++] = v;
            if (v > 0 && count > (1L << 40) / v)
            {
                throw new ModelFormatException($"{where}: shape {string.Join('x', shape)} is impossibly large");
            }
            count *= v;
        }
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number ||
            !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end))
        {
            throw new ModelFormatException($"{where}: data_offsets must be integers");
        }
        long expectedBytes = count * ElementSize(dtype);
        if (begin < 0 || end < begin || end > dataLength)
        {
            throw new ModelFormatException($"{where}: data_offsets [{begin}, {end}] lie outside the data section of {dataLength} bytes (file truncated or header corrupt)");
        }
        if (end - begin != expectedBytes)
        {
            throw new ModelFormatException($"{where}: data_offsets span {end - begin} bytes but dtype {dtype} and shape [{string.Join(", ", shape)}] need {expectedBytes}");
        }
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    public static int ElementSize(TensorDType d) => d switch
    {
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 => 2,
        TensorDType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(d)),
    };

    /// <summary>Pointer to a tensor's first byte inside the mapping. Valid while this file is open.</summary>
    public byte* DataPointer(TensorEntry t) => _base + _dataStart + t.Begin;

    /// <summary>The tensor's raw bytes (no copy).</summary>
    public ReadOnlySpan<byte> Bytes(TensorEntry t) => new(DataPointer(t), checked((int)(t.End - t.Begin)));

    public void Dispose() => _file.Dispose();
}
