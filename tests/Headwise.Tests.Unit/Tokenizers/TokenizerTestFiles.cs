using System.Text;

namespace Headwise.Tests.Unit.Tokenizers;

/// <summary>Paths to shared model data and throwaway temp directories for tokenizer tests.</summary>
internal static class TokenizerTestFiles
{
    /// <summary>The repository's sibling <c>shared/</c> folder, found by walking up to the folder holding Headwise.slnx.</summary>
    public static string? SharedDir()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Headwise.slnx")))
            {
                string shared = Path.Combine(dir.Parent?.FullName ?? dir.FullName, "shared");
                return Directory.Exists(shared) ? shared : null;
            }
        }

        return null;
    }

    public static string? Tok512Path()
    {
        string? shared = SharedDir();
        if (shared is null)
        {
            return null;
        }

        string path = Path.Combine(shared, "models", "stories260K", "tok512.bin");
        return File.Exists(path) ? path : null;
    }

    /// <summary>tok512.bin, or the calling test is skipped (a clone without ../shared).</summary>
    public static string RequireTok512()
    {
        string? path = Tok512Path();
        if (path is null)
        {
            Assert.Skip("../shared/models/stories260K/tok512.bin is absent (project cloned without the shared data)");
        }

        return path;
    }

    public static string NewTempDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "headwise-tok-" + name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static string Write(string dir, string file, string text)
    {
        string path = Path.Combine(dir, file);
        File.WriteAllText(path, text, new UTF8Encoding(false));
        return path;
    }

    /// <summary>GPT-2's byte → printable character table, written out here independently of the library's copy.</summary>
    public static char[] Gpt2ByteAlphabet()
    {
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            table[b] = keep ? (char)b : (char)(256 + n++);
        }

        return table;
    }

    public static string ToAlphabet(ReadOnlySpan<byte> bytes, char[] table)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (byte b in bytes)
        {
            sb.Append(table[b]);
        }

        return sb.ToString();
    }
}
