using Headwise.Tokenizers;

namespace Headwise.Tests.Unit.Tokenizers;

public sealed class Llama2cTokenizerTests(ITestOutputHelper output)
{
    private const string Story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

    // Published by the model's author: the first ids of the greedy story, starting with BOS.
    private static readonly int[] PublishedIds = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];

    private static TextTokenizer LoadOrSkip() => TokenizerLoader.LoadLlama2c(TokenizerTestFiles.RequireTok512(), 512);

    [Fact]
    public void Encode_story_reproduces_published_ids()
    {
        var tok = LoadOrSkip();
        int[] ids = tok.Encode(Story);
        output.WriteLine(string.Join(", ", ids));
        Assert.Equal(PublishedIds, ids[..PublishedIds.Length]);

        // The 15 published text ids cover exactly the first sentence, full stop included.
        string prefix = tok.Decode(PublishedIds);
        Assert.Equal("Once upon a time, there was a little girl named Lily.", prefix);
        Assert.Equal(PublishedIds, tok.Encode(prefix));
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.True(tok.AddsBos);
        Assert.Equal(512, tok.VocabSize);
    }

    [Fact]
    public void Load_by_extension_infers_vocab_size()
    {
        string path = TokenizerTestFiles.RequireTok512();
        var tok = TokenizerLoader.Load(path);
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(PublishedIds, tok.Encode(Story)[..PublishedIds.Length]);
    }

    [Theory]
    [InlineData("Once upon a time, there was a little girl named Lily.")]
    [InlineData("Tom said: \"Let's go!\"\nThey ran to the big tree.")]
    [InlineData("  two leading spaces and trailing  ")]
    [InlineData("Unicode: café, naïve, 日本語, emoji 🙂.")]
    [InlineData("x")]
    public void Decode_inverts_encode(string text)
    {
        var tok = LoadOrSkip();
        int[] ids = tok.Encode(text);
        Assert.Equal(1, ids[0]);
        Assert.Equal(text, tok.Decode(ids));

        // Streaming piece by piece gives the same text.
        var sb = new System.Text.StringBuilder();
        for (int i = 1; i < ids.Length; i++)
        {
            sb.Append(tok.DecodeNext(ids.AsSpan(0, i), ids[i]));
        }

        Assert.Equal(text, sb.ToString());
    }

    [Fact]
    public void Byte_tokens_and_special_tokens()
    {
        var tok = LoadOrSkip();
        // A character outside the 512-token vocabulary falls back to byte tokens id = 3 + byte.
        int[] ids = tok.Encode("日", addSpecial: false);
        Assert.Contains(3 + 0xE6, ids);
        Assert.Equal("<0x0A>", tok.TokenText(3 + 0x0A));
        Assert.Equal("", tok.Decode([1, 2]));
        Assert.Empty(tok.Encode("", addSpecial: false));
        Assert.Equal([1], tok.Encode(""));
        Assert.Throws<InvalidInputException>(() => tok.Decode([512]));
    }
}
