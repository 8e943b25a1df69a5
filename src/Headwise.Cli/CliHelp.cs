using System.Text;
using Headwise.Cli.Commands;

namespace Headwise.Cli;

/// <summary>Writes a command's --help from its declarations: the synopsis, the teaching paragraph, the arguments, the
/// options (one entry per declared option, grouped by section, in declaration order) and the examples.</summary>
public static class CliHelp
{
    private const int MaxLabel = 22;

    public static string Render(ICommand command)
    {
        var sb = new StringBuilder();
        AppendBlock(sb, command.Usage);
        AppendBlock(sb, command.Description);
        if (command.Arguments.Count > 0)
        {
            sb.Append("Arguments:\n");
            int column = Column(command.Arguments.Select(a => a.Name));
            foreach (var a in command.Arguments)
            {
                AppendEntry(sb, a.Name, a.Description, column);
            }
            sb.Append('\n');
        }
        var labels = command.Options.Select(Label).Append("-h, --help");
        int width = Column(labels);
        foreach (var section in command.Options.Select(o => o.Section).Distinct())
        {
            sb.Append(section ?? "Options").Append(":\n");
            foreach (var o in command.Options.Where(o => o.Section == section))
            {
                AppendEntry(sb, Label(o), o.Description, width);
            }
            if (section is null)
            {
                AppendEntry(sb, "-h, --help", "this help", width);
            }
            sb.Append('\n');
        }
        AppendBlock(sb, command.Examples);
        return sb.ToString().TrimEnd('\n');
    }

    /// <summary>How the option appears in --help: <c>--name VALUE</c>, or <c>--name</c> for a flag.</summary>
    public static string Label(CliOption o) => o.Value is null ? "--" + o.Name : $"--{o.Name} {o.Value}";

    private static int Column(IEnumerable<string> labels) => 2 + Math.Min(MaxLabel, labels.Select(l => l.Length).DefaultIfEmpty(0).Max()) + 2;

    // The description's first line beside the label (after two spaces when the label is wider than the column), its
    // other lines under it at the column, as the declaration wrote them.
    private static void AppendEntry(StringBuilder sb, string label, string description, int column)
    {
        string head = "  " + label;
        var lines = description.Split('\n');
        sb.Append(head.Length + 2 <= column ? head.PadRight(column) : head + "  ").Append(lines[0]).Append('\n');
        foreach (string line in lines.Skip(1))
        {
            sb.Append(new string(' ', column)).Append(line).Append('\n');
        }
    }

    private static void AppendBlock(StringBuilder sb, string text)
    {
        if (text.Length > 0)
        {
            sb.Append(text.Replace("\r\n", "\n")).Append("\n\n");
        }
    }
}
