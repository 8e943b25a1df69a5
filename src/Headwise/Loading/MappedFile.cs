using System.IO.MemoryMappedFiles;

namespace Headwise.Loading;

/// <summary>A read-only memory mapping of a whole file: pages are loaded on first touch, and shared with the OS page cache.</summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private bool _disposed;

    public string Path { get; }
    public long Length { get; }
    public byte* Base { get; }

    public MappedFile(string path)
    {
        Path = path;
        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
        {
            // Hugging Face cache snapshots are symbolic links into blobs/: size and mapping must come from the target.
            info = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
        }
        if (!info.Exists)
        {
            throw new ModelFormatException($"{path}: file not found{(info.FullName != System.IO.Path.GetFullPath(path) ? $" (a link to {info.FullName}, which is missing)" : "")}");
        }
        Length = info.Length;
        if (Length == 0)
        {
            throw new ModelFormatException($"{path}: file is empty");
        }
        _map = MemoryMappedFile.CreateFromFile(info.FullName, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        Base = p + _view.PointerOffset;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _view?.SafeMemoryMappedViewHandle.ReleasePointer();
        _view?.Dispose();
        _map?.Dispose();
    }
}
