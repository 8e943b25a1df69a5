using System.Text;
using System.Text.Json;
using Headwise.Tokenizers;

namespace Headwise.Tests.Unit.Tokenizers;

/// <summary>
/// A Llama-2-style tokenizer.json written by hand: ids 0..2 are &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, 3..258 are &lt;0x00&gt;..&lt;0xFF&gt;,
/// then a few pieces and merges, so every expected id below follows from the construction.
/// </summary>
public sealed class SentencePieceJsonTests : IDisposable
{
    // Ids of the pieces after the byte tokens.
    private const int Meta = 259, H = 260, E = 261, L = 262, O = 263, W = 264, R = 265, D = 266;
    private const int MetaH = 267, LL = 268, MetaHe = 269, MetaHell = 270, Or = 271, MetaW = 272, El = 273;

    private static readonly string[] Pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "ll", "▁he", "▁hell", "or", "▁w", "el"];

    // Rank order: "l l" before "▁ h" before "▁h e" ...; "e l" comes last, so "▁hel" never forms via "el".
    private static readonly (string, string)[] Merges =
        [("l", "l"), ("▁", "h"), ("▁h", "e"), ("▁he", "ll"), ("o", "r"), ("▁", "w"), ("e", "l")];

    private readonly string _dir = TokenizerTestFiles.NewTempDir("spjson");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Dictionary<string, object?> TokenizerJson(bool metaspaceStyle, bool pairMerges)
    {
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++)
        {
            vocab[$"<0x{b:X2}>"] = 3 + b;
        }

        for (int i = 0; i < Pieces.Length; i++)
        {
            vocab[Pieces[i]] = Meta + i;
        }

        object merges = pairMerges ? Merges.Select(m => new[] { m.Item1, m.Item2 }).ToArray() : Merges.Select(m => m.Item1 + " " + m.Item2).ToArray();
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[]
            {
                Added(0, "<unk>"), Added(1, "<s>"), Added(2, "</s>"),
            },
            ["post_processor"] = new Dictionary<string, object>
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new object[]
                {
                    new Dictionary<string, object> { ["SpecialToken"] = new Dictionary<string, object> { ["id"] = "<s>", ["type_id"] = 0 } },
                    new Dictionary<string, object> { ["Sequence"] = new Dictionary<string, object> { ["id"] = "A", ["type_id"] = 0 } },
                },
                ["pair"] = Array.Empty<object>(),
                ["special_tokens"] = new Dictionary<string, object>
                {
                    ["<s>"] = new Dictionary<string, object> { ["id"] = "<s>", ["ids"] = new[] { 1 }, ["tokens"] = new[] { "<s>" } },
                },
            },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = "<unk>",
                ["fuse_unk"] = true,
                ["byte_fallback"] = true,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };

        if (metaspaceStyle)
        {
            // Newer Llama / Mistral files: Metaspace pre-tokenizer and decoder.
            json["normalizer"] = null;
            json["pre_tokenizer"] = new Dictionary<string, object> { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false };
            json["decoder"] = new Dictionary<string, object> { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false };
        }
        else
        {
            // Llama-2 as published: Prepend + Replace normalizer; Replace, ByteFallback, Fuse, Strip decoder.
            json["normalizer"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["normalizers"] = new object[]
                {
                    new Dictionary<string, object> { ["type"] = "Prepend", ["prepend"] = "▁" },
                    new Dictionary<string, object> { ["type"] = "Replace", ["pattern"] = new Dictionary<string, object> { ["String"] = " " }, ["content"] = "▁" },
                },
            };
            json["pre_tokenizer"] = null;
            json["decoder"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["decoders"] = new object[]
                {
                    new Dictionary<string, object> { ["type"] = "Replace", ["pattern"] = new Dictionary<string, object> { ["String"] = "▁" }, ["content"] = " " },
                    new Dictionary<string, object> { ["type"] = "ByteFallback" },
                    new Dictionary<string, object> { ["type"] = "Fuse" },
                    new Dictionary<string, object> { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 },
                },
            };
        }

        return json;
    }

    private static Dictionary<string, object> Added(int id, string content) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = false,
        ["lstrip"] = false,
        ["rstrip"] = false,
        ["normalized"] = false,
        ["special"] = true,
    };

    private TextTokenizer Load(bool metaspaceStyle = false, bool pairMerges = false, string? tokenizerConfig = null)
    {
        string dir = Path.Combine(_dir, $"m{metaspaceStyle}-p{pairMerges}-c{tokenizerConfig?.Length ?? 0}");
        Directory.CreateDirectory(dir);
        TokenizerTestFiles.Write(dir, "tokenizer.json", JsonSerializer.Serialize(TokenizerJson(metaspaceStyle, pairMerges)));
        if (tokenizerConfig is not null)
        {
            TokenizerTestFiles.Write(dir, "tokenizer_config.json", tokenizerConfig);
        }

        return TokenizerLoader.Load(dir);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void Merges_apply_in_rank_order_with_leading_meta_and_bos(bool metaspaceStyle, bool pairMerges)
    {
        var tok = Load(metaspaceStyle, pairMerges);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.True(tok.AddsBos);

        // ▁hello▁world: l+l, ▁+h, ▁h+e, ▁he+ll, o+r, ▁+w; "l d" is no merge.
        Assert.Equal([1, MetaHell, O, MetaW, Or, L, D], tok.Encode("hello world"));
        Assert.Equal([MetaHell, O, MetaW, Or, L, D], tok.Encode("hello world", addSpecial: false));
        // "help": ▁h+e (rank 2) wins over e+l (rank 6), leaving ▁he l; "p" is not a piece, so byte fallback <0x70>.
        Assert.Equal([1, MetaHe, L, 3 + 'p'], tok.Encode("help"));
        // A leading space: the Prepend normalizer always adds ▁ ("▁▁elo"); Metaspace adds none when ▁ is already there.
        int[] expected = metaspaceStyle ? [1, Meta, El, O] : [1, Meta, Meta, El, O];
        Assert.Equal(expected, tok.Encode(" elo"));
    }

    [Fact]
    public void Byte_fallback_and_decode()
    {
        var tok = Load();
        // é = C3 A9 is not a piece: <0xC3> <0xA9>.
        Assert.Equal([1, Meta, 3 + 0xC3, 3 + 0xA9], tok.Encode("é"));
        Assert.Equal("é", tok.Decode([1, Meta, 3 + 0xC3, 3 + 0xA9]));
        Assert.Equal([1, MetaH, 3 + 0xC3, 3 + 0xA9, LL, O], tok.Encode("héllo"));
        Assert.Equal("<0xC3>", tok.TokenText(3 + 0xC3));
        Assert.Equal(" hell", tok.TokenText(MetaHell));
        Assert.Equal("<s>", tok.TokenText(1));

        foreach (string s in new[] { "hello world", "héllo wörld", "  two spaces", "ünïcödé 🙂", "d" })
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

        // Half a character is held back while streaming.
        Assert.Equal("", tok.DecodeNext([1, Meta], 3 + 0xC3));
        Assert.Equal("é", tok.DecodeNext([1, Meta, 3 + 0xC3], 3 + 0xA9));
    }

    [Fact]
    public void Special_tokens_are_matched_before_bpe_and_skipped_in_decode()
    {
        var tok = Load();
        // Each text segment between special tokens gets its own leading ▁ (Prepend normalizer).
        Assert.Equal([1, MetaHell, O, 2], tok.Encode("hello</s>"));
        Assert.Equal([1, 1, MetaHell, O], tok.Encode("<s>hello"));
        // Not quite a special token: plain text, bytes via fallback.
        Assert.Equal([1, Meta, 3 + '<', 3 + '/', 3 + 's', R], tok.Encode("</sr"));
        Assert.Equal("hello", tok.Decode([1, MetaHell, O, 2]));
    }

    [Fact]
    public void Tokenizer_config_can_turn_bos_off()
    {
        var tok = Load(tokenizerConfig: """{"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>", "eos_token": {"content": "</s>"}}""");
        Assert.False(tok.AddsBos);
        Assert.Equal([MetaHell, O, 2], tok.Encode("hello"));
    }

    [Fact]
    public void Config_json_ids_and_explicit_overrides()
    {
        string dir = Path.Combine(_dir, "withconfig");
        Directory.CreateDirectory(dir);
        TokenizerTestFiles.Write(dir, "tokenizer.json", JsonSerializer.Serialize(TokenizerJson(false, false)));
        TokenizerTestFiles.Write(dir, "config.json", """{"bos_token_id": 1, "eos_token_id": [2, 0]}""");
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);

        var overridden = TokenizerLoader.Load(Path.Combine(dir, "tokenizer.json"), bosId: 1, eosId: 0);
        Assert.Equal(0, overridden.EosId);
        Assert.Equal([1, MetaHell, O], overridden.Encode("hello"));
    }

    [Fact]
    public void Long_text_without_spaces_encodes()
    {
        var tok = Load();
        string text = string.Concat(Enumerable.Repeat("hello", 2000));
        int[] ids = tok.Encode(text, addSpecial: false);
        Assert.Equal(MetaHell, ids[0]);
        Assert.Equal(text, tok.Decode(ids));
    }
}
