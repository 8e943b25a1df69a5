namespace Headwise.Benchmarks;

/// <summary>
/// One item of what `headwise bench` prints for a benchmark, in order: a line of text, or a table — header texts (a
/// '&gt;' prefix right-aligns a column of numbers, the '&gt;' dropped) and rows of cells. The benchmarks only describe;
/// the CLI draws the tables (Spectre.Console).
/// </summary>
public sealed record BenchText(string? Line, IReadOnlyList<string>? Columns = null, IReadOnlyList<string[]>? Rows = null)
{
    public static implicit operator BenchText(string line) => new(line);

    public static BenchText Table(IReadOnlyList<string> columns, IEnumerable<string[]> rows) => new(null, columns, [.. rows]);
}
