namespace Headwise.Tokenizers;

// Placeholder until the tokenizer branch lands (it replaces this file).
public static class TokenizerLoader
{
    public static TextTokenizer Load(string path) => throw new ModelFormatException($"{path}: tokenizers are not available in this build");

    public static TextTokenizer LoadLlama2c(string tokenizerBin, int vocabSize) => throw new ModelFormatException($"{tokenizerBin}: tokenizers are not available in this build");
}
