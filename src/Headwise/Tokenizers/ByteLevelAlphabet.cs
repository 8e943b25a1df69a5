namespace Headwise.Tokenizers;

/// <summary>GPT-2's reversible byte ↔ printable-character alphabet used by byte-level BPE vocabularies.</summary>
internal static class ByteLevelAlphabet
{
    public static readonly char[] ByteToChar = BuildByteToChar();
    public static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }

        return map;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var d = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++)
        {
            d[ByteToChar[b]] = (byte)b;
        }

        return d;
    }

    /// <summary>Maps text's UTF-8 bytes to alphabet characters.</summary>
    public static string Encode(string text)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            chars[i] = ByteToChar[bytes[i]];
        }

        return new string(chars);
    }

    /// <summary>Maps alphabet characters back to bytes; characters outside the alphabet contribute their UTF-8.</summary>
    public static byte[] Decode(string token)
    {
        var bytes = new List<byte>(token.Length);
        foreach (char c in token)
        {
            if (CharToByte.TryGetValue(c, out byte b))
            {
                bytes.Add(b);
            }
            else
            {
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(c.ToString()));
            }
        }

        return [.. bytes];
    }
}
