using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Headwise.Tokenizers;

namespace Headwise.Tests.Unit.Tokenizers;

/// <summary>
/// A Llama-3 / Qwen2-style byte-level tokenizer.json written by hand: Sequence[Split(Llama-3 regex), ByteLevel(use_regex false)],
/// ignore_merges, &lt;|begin_of_text|&gt; via TemplateProcessing. Ids 0..255 are the 256 byte symbols (id = byte value).
/// </summary>
public sealed class SplitPreTokenizerTests : IDisposable
{
    private const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const int GW = 256, Or = 257, GWor = 258, Ld = 259, GWorld = 260, Twelve = 261, GHello = 262, Bot = 300, Eot = 301;

    private readonly string _dir = TokenizerTestFiles.NewTempDir("split");
    private readonly TextTokenizer _tok;

    public SplitPreTokenizerTests()
    {
        char[] alphabet = TokenizerTestFiles.Gpt2ByteAlphabet();
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++)
        {
            vocab[alphabet[b].ToString()] = b;
        }

        // "Ġ" is the alphabet's space.
        vocab["Ġw"] = GW;
        vocab["or"] = Or;
        vocab["Ġwor"] = GWor;
        vocab["ld"] = Ld;
        vocab["Ġworld"] = GWorld;
        vocab["12"] = Twelve;
        vocab["Ġhello"] = GHello; // reachable only through ignore_merges: no merges build it
        string[] merges = ["Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2"];

        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[]
            {
                new Dictionary<string, object> { ["id"] = Bot, ["content"] = "<|begin_of_text|>", ["special"] = true },
                new Dictionary<string, object> { ["id"] = Eot, ["content"] = "<|end_of_text|>", ["special"] = true },
            },
            ["normalizer"] = null,
            ["pre_tokenizer"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new object[]
                {
                    new Dictionary<string, object> { ["type"] = "Split", ["pattern"] = new Dictionary<string, object> { ["Regex"] = Llama3Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false },
                },
            },
            ["post_processor"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["processors"] = new object[]
                {
                    new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                    new Dictionary<string, object>
                    {
                        ["type"] = "TemplateProcessing",
                        ["single"] = new object[]
                        {
                            new Dictionary<string, object> { ["SpecialToken"] = new Dictionary<string, object> { ["id"] = "<|begin_of_text|>", ["type_id"] = 0 } },
                            new Dictionary<string, object> { ["Sequence"] = new Dictionary<string, object> { ["id"] = "A", ["type_id"] = 0 } },
                        },
                        ["special_tokens"] = new Dictionary<string, object>
                        {
                            ["<|begin_of_text|>"] = new Dictionary<string, object> { ["id"] = "<|begin_of_text|>", ["ids"] = new[] { Bot }, ["tokens"] = new[] { "<|begin_of_text|>" } },
                        },
                    },
                },
            },
            ["decoder"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["byte_fallback"] = false,
                ["ignore_merges"] = true,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        string path = TokenizerTestFiles.Write(_dir, "tokenizer.json", JsonSerializer.Serialize(json));
        _tok = TokenizerLoader.Load(path);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Llama3_pattern_compiles_in_dotnet()
    {
        var rx = new Regex(Llama3Pattern);
        Assert.Equal(["IT", "'S", " ok"], rx.Matches("IT'S ok").Select(m => m.Value));
        Assert.Equal(["world", " ", "123", "45"], rx.Matches("world 12345").Select(m => m.Value));
    }

    [Fact]
    public void Split_regex_decides_the_words()
    {
        Assert.Equal(Bot, _tok.BosId);
        Assert.Equal(Eot, _tok.EosId);
        Assert.True(_tok.AddsBos);

        // Digits go in groups of three, and the space before them stands alone (GPT-2's regex would keep " 12345" together).
        Assert.Equal([Bot, 'w', Or, Ld, ' ', Twelve, '3', '4', '5'], _tok.Encode("world 12345"));
        Assert.Equal([Bot, GWorld], _tok.Encode(" world"));
        Assert.Equal(['w', Or, Ld], _tok.Encode("world", addSpecial: false));
        // Case-insensitive contraction: "'S" is its own word, so ' and S stay separate bytes.
        Assert.Equal(['I', 'T', '\'', 'S'], _tok.Encode("IT'S", addSpecial: false));
        // é is two bytes, each its own byte-level symbol.
        Assert.Equal([0xC3, 0xA9], _tok.Encode("é", addSpecial: false));
    }

    [Fact]
    public void Ignore_merges_takes_whole_words_from_the_vocabulary()
    {
        Assert.Equal([GHello, GWorld], _tok.Encode(" hello world", addSpecial: false));
        Assert.Equal([Bot, 'h', 'e', 'l', 'l', 'o', Eot], _tok.Encode("hello<|end_of_text|>"));
    }

    [Fact]
    public void Decode_round_trips_and_streams()
    {
        Assert.Equal(" world", _tok.TokenText(GWorld));
        foreach (string s in new[] { "world 12345", " hello world", "ünïcödé 🙂 and 中文", "tabs\tand\nnewlines\r\n", "IT'S" })
        {
            int[] ids = _tok.Encode(s);
            Assert.Equal(s, _tok.Decode(ids));
            var streamed = new StringBuilder();
            for (int i = 0; i < ids.Length; i++)
            {
                streamed.Append(_tok.DecodeNext(ids.AsSpan(0, i), ids[i]));
            }

            Assert.Equal(s, streamed.ToString());
        }
    }
}
