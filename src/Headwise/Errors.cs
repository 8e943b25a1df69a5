namespace Headwise;

/// <summary>Base of every error Headwise reports on purpose. The CLI prints <see cref="Exception.Message"/>
/// as one line and exits 2; anything else is an internal error (exit 1).</summary>
public class HeadwiseException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A model file (checkpoint, config, tokenizer) is missing, truncated, inconsistent or unsupported.
/// The message names the file and, where it applies, the tensor.</summary>
public sealed class ModelFormatException(string message, Exception? inner = null) : HeadwiseException(message, inner);

/// <summary>An argument or input (token ids, text, option value) is outside what the model or command accepts.</summary>
public sealed class InvalidInputException(string message, Exception? inner = null) : HeadwiseException(message, inner);
