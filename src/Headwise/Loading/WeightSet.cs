using Headwise.Compute;

namespace Headwise.Loading;

/// <summary>
/// The named tensors of a checkpoint, from one or several safetensors files (sharded), or from a llama2.c file.
/// <see cref="Get"/> checks each tensor's shape against what the config implies and names file and tensor when it does not match.
/// </summary>
public sealed unsafe class WeightSet : IDisposable
{
    private readonly List<IDisposable> _owners = [];
    private readonly Dictionary<string, (SafeTensorsFile File, TensorEntry Entry)> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Weight> _extra = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Weight> _loaded = new(StringComparer.Ordinal);

    /// <summary>Where the weights came from (a file, or a directory for sharded checkpoints), for messages.</summary>
    public string Source { get; }

    /// <summary>The dtype the checkpoint stores its float tensors in (the most common one).</summary>
    public TensorDType StoredDType { get; private set; } = TensorDType.F32;

    /// <summary>Bytes served straight from file mappings (F32, and F16/BF16 bits not converted), and bytes converted into
    /// owned float32 arrays so far: an F16/BF16 tensor is converted on its first float32 read (<see cref="Weight.Span"/>),
    /// never when only the prepacked GEMM reads it.</summary>
    public long MappedBytes { get; private set; }
    public long ConvertedBytes => _loaded.Values.Sum(w => w.ConvertedBytes);

    public WeightSet(string source) => Source = source;

    public IEnumerable<string> Names => _entries.Keys.Concat(_extra.Keys);

    public bool Contains(string name) => _entries.ContainsKey(name) || _extra.ContainsKey(name);

    internal void AddFile(SafeTensorsFile file, IEnumerable<string>? only = null)
    {
        _owners.Add(file);
        foreach (var (name, entry) in file.Tensors)
        {
            if (only is not null && !only.Contains(name))
            {
                continue;
            }
            if (_entries.ContainsKey(name))
            {
                throw new ModelFormatException($"{file.Path}: tensor '{name}' also appears in {_entries[name].File.Path}");
            }
            _entries[name] = (file, entry);
        }
        var counts = _entries.Values.Where(e => e.Entry.DType is TensorDType.F32 or TensorDType.F16 or TensorDType.BF16)
            .GroupBy(e => e.Entry.DType).OrderByDescending(g => g.Count()).FirstOrDefault();
        if (counts is not null)
        {
            StoredDType = counts.Key;
        }
    }

    internal void AddOwner(IDisposable owner) => _owners.Add(owner);

    /// <summary>Registers a tensor that already is float32 in memory (llama2.c mapping, or a hand-built model).</summary>
    public void Add(Weight w)
    {
        _extra[w.Name] = w;
        if (w.IsMapped)
        {
            MappedBytes += w.Length * 4L;
        }
    }

    /// <summary>The tensor <paramref name="name"/>, checked to have exactly <paramref name="shape"/>.</summary>
    public Weight Get(string name, params int[] shape)
    {
        var w = GetAnyShape(name);
        if (!w.Shape.SequenceEqual(shape))
        {
            throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' has shape [{string.Join(", ", w.Shape)}] but the config implies [{string.Join(", ", shape)}]");
        }
        return w;
    }

    public Weight? TryGet(string name, params int[] shape) => Contains(name) ? Get(name, shape) : null;

    public Weight GetAnyShape(string name)
    {
        if (_loaded.TryGetValue(name, out var cached))
        {
            return cached;
        }
        if (_extra.TryGetValue(name, out var extra))
        {
            return extra;
        }
        if (!_entries.TryGetValue(name, out var e))
        {
            throw new ModelFormatException($"{Source}: tensor '{name}' is missing from the checkpoint");
        }
        var w = Materialize(name, e.File, e.Entry);
        _loaded[name] = w;
        return w;
    }

    private string FileOf(string name) => _entries.TryGetValue(name, out var e) ? e.File.Path : Source;

    private Weight Materialize(string name, SafeTensorsFile file, TensorEntry entry)
    {
        if (entry.ElementCount > int.MaxValue)
        {
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has {entry.ElementCount} elements; more than 2³¹ per tensor is not supported");
        }
        if (entry.Shape.Any(d => d > int.MaxValue))
        {
            // an empty tensor may still name a dimension that no int index reaches, e.g. [2⁴⁰, 0]
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}]; a dimension above 2³¹ is not supported");
        }
        int[] shape = entry.Shape.Select(d => checked((int)d)).ToArray();
        int n = (int)entry.ElementCount;
        byte* p = file.DataPointer(entry);
        switch (entry.DType)
        {
            case TensorDType.F32:
                MappedBytes += n * 4L;
                if (((nint)p & 3) != 0)
                {
                    // An unaligned F32 tensor cannot be read in place as floats on every path; copy it once.
                    var copy = GC.AllocateUninitializedArray<float>(n, pinned: true);
                    new ReadOnlySpan<byte>(p, n * 4).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(copy.AsSpan()));
                    return new Weight(name, shape, Weight.Unsafe_AsPointer(copy), copy);
                }
                return new Weight(name, shape, (float*)p, null);
            case TensorDType.F16:
            case TensorDType.BF16:
                // read from the mapping: converted on the first float32 read, or packed straight from the bits
                MappedBytes += n * 2L;
                return new Weight(name, shape, (ushort*)p, entry.DType == TensorDType.BF16);
            default:
                throw new ModelFormatException($"{file.Path}: tensor '{name}' has dtype {entry.DType}; a float tensor (F32, F16, BF16) was expected");
        }
    }

    public void Dispose()
    {
        foreach (var o in _owners)
        {
            o.Dispose();
        }
        _owners.Clear();
    }
}
