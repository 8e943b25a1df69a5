using System.Globalization;

namespace Headwise.Analysis;

/// <summary>An attention head, written <c>L.H</c> (layer 9, head 6 is <c>9.6</c>), both counted from 0.</summary>
public readonly record struct HeadId(int Layer, int Head) : IComparable<HeadId>
{
    public override string ToString() => $"{Layer}.{Head}";

    public int CompareTo(HeadId other) => Layer != other.Layer ? Layer.CompareTo(other.Layer) : Head.CompareTo(other.Head);

    /// <summary>Parses "L.H"; throws <see cref="InvalidInputException"/> naming the text otherwise.</summary>
    public static HeadId Parse(string text)
    {
        var parts = text.Trim().Split('.');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int l)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int h))
        {
            throw new InvalidInputException($"'{text}' is not a head: write LAYER.HEAD, e.g. 9.6");
        }
        return new HeadId(l, h);
    }

    /// <summary>Parses a comma-separated list "1.4,9.6" and checks each head exists in a model of this shape.</summary>
    public static HeadId[] ParseList(string text, int layers, int heads)
    {
        var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).ToArray();
        foreach (var h in list)
        {
            if (h.Layer >= layers || h.Head >= heads)
            {
                throw new InvalidInputException($"head {h} does not exist: the model has layers 0..{layers - 1} and heads 0..{heads - 1}");
            }
        }
        return list;
    }
}
