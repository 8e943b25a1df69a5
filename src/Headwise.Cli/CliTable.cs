using Spectre.Console;

namespace Headwise.Cli;

/// <summary>A human-facing table through Spectre.Console: rounded borders and a bold header on a terminal; on anything
/// else (a pipe, a file, a test's StringWriter) no escape codes and no borders, just the columns aligned and separated by
/// spaces, wide enough that no cell wraps. Never used for --json output.</summary>
public sealed class CliTable
{
    private readonly Table _table = new();
    private readonly List<string[]> _rows = [];
    private readonly string[] _headers;

    /// <param name="columns">header texts; a name starting with '&gt;' is right-aligned (numbers), the '&gt;' dropped</param>
    public CliTable(params string[] columns)
    {
        _headers = [.. columns.Select(c => c.TrimStart('>'))];
        foreach (string c in columns)
        {
            bool right = c.StartsWith('>');
            var column = new TableColumn(Markup.Escape(right ? c[1..] : c));
            _table.AddColumn(right ? column.RightAligned() : column);
        }
    }

    public CliTable Row(params string[] cells)
    {
        _rows.Add(cells);
        _table.AddRow(cells.Select(c => Markup.Escape(c)).ToArray());
        return this;
    }

    public void Write(TextWriter writer)
    {
        bool terminal = ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (terminal)
        {
            _table.Border(TableBorder.Rounded);
        }
        else
        {
            // no terminal width to respect: as wide as the widest row, so that cells never wrap
            int width = Enumerable.Range(0, _headers.Length).Sum(i => _rows.Select(r => i < r.Length ? r[i].Length : 0).Append(_headers[i].Length).Max() + 3);
            console.Profile.Width = Math.Max(80, width + 4);
            _table.Border(TableBorder.None);
        }
        console.Write(_table);
    }
}
