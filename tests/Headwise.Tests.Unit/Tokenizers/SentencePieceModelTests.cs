using System.Text;
using Google.Protobuf;
using Headwise.Tokenizers;

namespace Headwise.Tests.Unit.Tokenizers;

/// <summary>
/// A SentencePiece BPE <c>tokenizer.model</c> written field by field (ModelProto: pieces = 1, trainer_spec = 2, normalizer_spec = 3),
/// with the same pieces as the hand-made Llama-2 tokenizer.json; SentencePiece merges the pair whose result scores highest.
/// </summary>
public sealed class SentencePieceModelTests : IDisposable
{
    private const int Meta = 259, O = 263, R = 265, L = 262, D = 266, MetaHe = 269, MetaHell = 270, Or = 271, MetaW = 272;

    private readonly string _dir = TokenizerTestFiles.NewTempDir("spmodel");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Message(Action<CodedOutputStream> write)
    {
        using var ms = new MemoryStream();
        var cos = new CodedOutputStream(ms);
        write(cos);
        cos.Flush();
        return ms.ToArray();
    }

    private static void WriteMessage(CodedOutputStream cos, int field, byte[] body)
    {
        cos.WriteTag(field, WireFormat.WireType.LengthDelimited);
        cos.WriteBytes(ByteString.CopyFrom(body));
    }

    private static byte[] Piece(string text, float score, int type) => Message(c =>
    {
        c.WriteTag(1, WireFormat.WireType.LengthDelimited);
        c.WriteString(text);
        c.WriteTag(2, WireFormat.WireType.Fixed32);
        c.WriteFloat(score);
        c.WriteTag(3, WireFormat.WireType.Varint);
        c.WriteEnum(type);
    });

    private static byte[] ModelProto()
    {
        const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;
        var pieces = new List<byte[]> { Piece("<unk>", 0, Unknown), Piece("<s>", 0, Control), Piece("</s>", 0, Control) };
        for (int b = 0; b < 256; b++)
        {
            pieces.Add(Piece($"<0x{b:X2}>", 0, Byte));
        }

        // Single characters score low; merged pieces score in the order they should merge.
        (string, float)[] normal =
        [
            ("▁", -100), ("h", -101), ("e", -102), ("l", -103), ("o", -104), ("w", -105), ("r", -106), ("d", -107),
            ("▁h", -2), ("ll", -1), ("▁he", -3), ("▁hell", -4), ("or", -5), ("▁w", -6), ("el", -7),
        ];
        pieces.AddRange(normal.Select(p => Piece(p.Item1, p.Item2, Normal)));

        byte[] trainer = Message(c =>
        {
            c.WriteTag(3, WireFormat.WireType.Varint);
            c.WriteEnum(2); // model_type BPE
            c.WriteTag(35, WireFormat.WireType.Varint);
            c.WriteBool(true); // byte_fallback
            c.WriteTag(40, WireFormat.WireType.Varint);
            c.WriteInt32(0); // unk_id
            c.WriteTag(41, WireFormat.WireType.Varint);
            c.WriteInt32(1); // bos_id
            c.WriteTag(42, WireFormat.WireType.Varint);
            c.WriteInt32(2); // eos_id
            c.WriteTag(43, WireFormat.WireType.Varint);
            c.WriteInt32(-1); // pad_id
        });
        byte[] normalizer = Message(c =>
        {
            c.WriteTag(1, WireFormat.WireType.LengthDelimited);
            c.WriteString("identity");
            c.WriteTag(3, WireFormat.WireType.Varint);
            c.WriteBool(true); // add_dummy_prefix
            c.WriteTag(4, WireFormat.WireType.Varint);
            c.WriteBool(false); // remove_extra_whitespaces
            c.WriteTag(5, WireFormat.WireType.Varint);
            c.WriteBool(true); // escape_whitespaces
        });

        return Message(c =>
        {
            foreach (byte[] p in pieces)
            {
                WriteMessage(c, 1, p);
            }

            WriteMessage(c, 2, trainer);
            WriteMessage(c, 3, normalizer);
        });
    }

    private TextTokenizer Load()
    {
        File.WriteAllBytes(Path.Combine(_dir, "tokenizer.model"), ModelProto());
        return TokenizerLoader.Load(_dir);
    }

    [Fact]
    public void Encodes_by_piece_score_with_bos_and_byte_fallback()
    {
        var tok = Load();
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.True(tok.AddsBos);
        Assert.Equal(274, tok.VocabSize);
        Assert.Equal([1, MetaHell, O, MetaW, Or, L, D], tok.Encode("hello world"));
        Assert.Equal([MetaHe, L, 3 + 'p'], tok.Encode("help", addSpecial: false));
        Assert.Equal([1, Meta, 3 + 0xC3, 3 + 0xA9], tok.Encode("é"));
        Assert.Equal(" hell", tok.TokenText(MetaHell));
    }

    [Fact]
    public void Decodes_and_streams()
    {
        var tok = Load();
        Assert.Equal("hello world", tok.Decode([1, MetaHell, O, MetaW, Or, L, D, 2]));
        foreach (string s in new[] { "hello world", "héllo wörld", "dr. who" })
        {
            int[] ids = tok.Encode(s);
            Assert.Equal(s, tok.Decode(ids));
            var streamed = new StringBuilder();
            for (int i = 0; i < ids.Length; i++)
            {
                streamed.Append(tok.DecodeNext(ids.AsSpan(0, i), ids[i]));
            }

            Assert.Equal(s, streamed.ToString());
        }
    }
}
