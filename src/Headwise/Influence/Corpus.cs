using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Parquet;
using Parquet.Schema;

namespace Headwise.Influence;

/// <summary>One document of a corpus: its position <see cref="Index"/> in the whole corpus (which decides its shard), its id and text.</summary>
public sealed record CorpusDocument(long Index, string Id, string Text);

/// <summary>
/// A corpus of documents: JSON lines (<c>{"id": ..., "text": ...}</c> per line, <c>.jsonl</c>/<c>.json</c>, optionally <c>.gz</c>)
/// or Parquet files (a string text column, a string or integer id column); a directory means every such file in it, in
/// ordinal order of their names. Document i of the whole corpus belongs to shard i mod N, so any shard is recomputed alone,
/// and ids must be unique across the corpus (an output row names its document by id).
/// </summary>
public sealed class Corpus(string path, string textField = "text", string idField = "id")
{
    public string Path { get; } = path;
    public string TextField { get; } = textField;
    public string IdField { get; } = idField;

    /// <summary>How many documents the corpus holds, as counted by the last <see cref="ReadShard"/>.</summary>
    public long CountedDocuments { get; private set; }

    /// <summary>The files of the corpus, in the order their documents are numbered.</summary>
    public IReadOnlyList<string> Files()
    {
        if (File.Exists(Path))
        {
            return [Path];
        }
        if (!Directory.Exists(Path))
        {
            throw new InvalidInputException($"{Path}: no such corpus file or directory");
        }
        var files = Directory.GetFiles(Path).Where(IsCorpusFile).Order(StringComparer.Ordinal).ToArray();
        return files.Length > 0 ? files
            : throw new InvalidInputException($"{Path}: the directory holds no corpus file (*.jsonl, *.json, *.jsonl.gz, *.json.gz, *.parquet)");
    }

    private static bool IsCorpusFile(string f) =>
        f.EndsWith(".jsonl", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".jsonl.gz", StringComparison.Ordinal)
        || f.EndsWith(".json.gz", StringComparison.Ordinal) || f.EndsWith(".parquet", StringComparison.Ordinal);

    /// <summary>The documents of shard <paramref name="shard"/> of <paramref name="shards"/> (index mod shards = shard), in
    /// corpus order. The whole corpus is read (not kept) to check that it is not empty and that its ids are unique — refused
    /// with the duplicated ids named — so every shard sees the same corpus errors.</summary>
    public List<CorpusDocument> ReadShard(int shard, int shards)
    {
        if (shards < 1 || shard < 0 || shard >= shards)
        {
            throw new InvalidInputException($"shard {shard}/{shards}: the shard index must be in [0, {shards}) and the count at least 1");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var duplicates = new List<string>();
        var mine = new List<CorpusDocument>();
        long n = 0;
        foreach (var doc in ReadAll())
        {
            if (!seen.Add(doc.Id) && duplicates.Count < 10)
            {
                duplicates.Add(doc.Id);
            }
            if (doc.Index % shards == shard)
            {
                mine.Add(doc);
            }
            n++;
        }
        if (duplicates.Count > 0)
        {
            throw new InvalidInputException($"{Path}: duplicate document ids (an id names one document): {string.Join(", ", duplicates.Select(d => $"'{d}'"))}");
        }
        if (n == 0)
        {
            throw new InvalidInputException($"{Path}: the corpus is empty (no documents)");
        }
        CountedDocuments = n;
        return mine;
    }

    /// <summary>Every document, in corpus order (ids not yet checked for uniqueness).</summary>
    public IEnumerable<CorpusDocument> ReadAll()
    {
        long index = 0;
        foreach (var file in Files())
        {
            var docs = file.EndsWith(".parquet", StringComparison.Ordinal) ? ReadParquet(file) : ReadJsonLines(file);
            foreach (var (id, text) in docs)
            {
                yield return new CorpusDocument(index++, id, text);
            }
        }
    }

    private IEnumerable<(string Id, string Text)> ReadJsonLines(string file)
    {
        using var stream = File.OpenRead(file);
        using var input = file.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(stream, CompressionMode.Decompress) : (Stream)stream;
        using var reader = new StreamReader(input, Encoding.UTF8);
        int lineNo = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            string where = $"{file}:{lineNo}";
            JsonDocument json;
            try
            {
                json = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidInputException($"{where}: not a JSON object ({e.Message})", e);
            }
            using (json)
            {
                var root = json.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    throw new InvalidInputException($"{where}: a document is a JSON object {{\"{IdField}\": ..., \"{TextField}\": ...}}");
                }
                string id = root.TryGetProperty(IdField, out var idValue) && idValue.ValueKind is JsonValueKind.String or JsonValueKind.Number
                    ? (idValue.ValueKind == JsonValueKind.String ? idValue.GetString()! : idValue.GetRawText())
                    : throw new InvalidInputException($"{where}: the document has no \"{IdField}\" field (a string or a number; see --id-field)");
                string text = root.TryGetProperty(TextField, out var textValue) && textValue.ValueKind == JsonValueKind.String
                    ? textValue.GetString()!
                    : throw new InvalidInputException($"{where}: document '{id}' has no \"{TextField}\" field (a string; see --text-field)");
                yield return (id, text);
            }
        }
    }

    private IEnumerable<(string Id, string Text)> ReadParquet(string file)
    {
        foreach (var (ids, texts) in ReadParquetGroups(file))
        {
            for (int i = 0; i < ids.Length; i++)
            {
                yield return (ids[i] ?? throw new InvalidInputException($"{file}: row {i} has a null \"{IdField}\""),
                    texts[i] ?? throw new InvalidInputException($"{file}: document '{ids[i]}' has no \"{TextField}\" (null)"));
            }
        }
    }

    // one (ids, texts) pair per row group; Parquet.Net's reader is asynchronous, the corpus is read in order
    private List<(string?[] Ids, string?[] Texts)> ReadParquetGroups(string file)
    {
        return ReadAsync().GetAwaiter().GetResult();

        async Task<List<(string?[], string?[])>> ReadAsync()
        {
            var groups = new List<(string?[], string?[])>();
            await using var reader = await OpenParquet(file);
            var idField = Field(reader.Schema, IdField, file, "--id-field");
            var textField = Field(reader.Schema, TextField, file, "--text-field");
            if (!IsText(textField))
            {
                throw new InvalidInputException($"{file}: column \"{TextField}\" holds {textField.ClrType.Name}, not strings");
            }
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                using var rg = reader.OpenRowGroupReader(g);
                int rows = checked((int)rg.RowCount);
                var texts = new string?[rows];
                await rg.ReadAsync(textField, texts.AsMemory());
                groups.Add((await ReadIds(rg, idField, rows, file), texts));
            }
            return groups;
        }
    }

    private async Task<string?[]> ReadIds(ParquetRowGroupReader rg, DataField field, int rows, string file)
    {
        var ids = new string?[rows];
        if (IsText(field))
        {
            await rg.ReadAsync(field, ids.AsMemory());
        }
        else if (field.ClrType == typeof(long) || field.ClrType == typeof(int))
        {
            var values = new long?[rows];
            if (field.ClrType == typeof(long))
            {
                await rg.ReadAsync(field, values.AsMemory());
            }
            else
            {
                var ints = new int?[rows];
                await rg.ReadAsync(field, ints.AsMemory());
                for (int i = 0; i < rows; i++) { values[i] = ints[i]; }
            }
            for (int i = 0; i < rows; i++)
            {
                ids[i] = values[i]?.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        else
        {
            throw new InvalidInputException($"{file}: column \"{IdField}\" holds {field.ClrType.Name}; ids are strings or integers");
        }
        return ids;
    }

    // Parquet.Net reports a UTF-8 string column as string or as ReadOnlyMemory<char>; both read into string[]
    private static bool IsText(DataField f) => f.ClrType == typeof(string) || f.ClrType == typeof(ReadOnlyMemory<char>);

    internal static async Task<ParquetReader> OpenParquet(string file)
    {
        try
        {
            return await ParquetReader.CreateAsync(file);
        }
        catch (Exception e) when (e is not HeadwiseException and not OperationCanceledException)
        {
            throw new InvalidInputException($"{file}: not a readable Parquet file ({e.Message})", e);
        }
    }

    private static DataField Field(ParquetSchema schema, string name, string file, string option) =>
        schema.GetDataFields().FirstOrDefault(f => f.Name == name)
        ?? throw new InvalidInputException($"{file}: no column \"{name}\" (columns: {string.Join(", ", schema.GetDataFields().Select(f => f.Name))}; see {option})");
}
