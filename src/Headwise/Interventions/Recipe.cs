using System.Globalization;
using System.Text;
using System.Text.Json;
using Headwise.Analysis;

namespace Headwise.Interventions;

// A recipe is a JSON file {"name": "...", "interventions": [ {...}, ... ]} whose items act on attention heads, in the order
// listed (docs/interventions.md defines each kind). This file parses, checks and writes recipes; whether an item fits a model
// (its heads exist, its singular components exist) is checked when the recipe is applied (RecipeApplication.cs).
// A folder of its own rather than Analysis/Interventions: a recipe is not an analysis but a way to run the model, which every
// command (eval, generate, the analyses, export) takes; Analysis/Interventions holds the measurements (ablation scans, patching).

/// <summary>One item of a recipe. <see cref="Kind"/> is its JSON "kind".</summary>
public abstract record Intervention
{
    public abstract string Kind { get; }
}

/// <summary>hook_z of each head × <paramref name="Factor"/> at every position.</summary>
public sealed record ScaleHeads(IReadOnlyList<HeadId> Heads, double Factor) : Intervention
{
    public override string Kind => "scale";
}

/// <summary>hook_z of each head replaced by 0 (<see cref="Mean"/> false) or by its mean over the run's positions.</summary>
public sealed record AblateHeads(IReadOnlyList<HeadId> Heads, bool Mean) : Intervention
{
    public override string Kind => "ablate";
}

/// <summary>hook_pattern row q of each head ← (1 − s)·A[q] + s·e_q.</summary>
public sealed record SoftenHeads(IReadOnlyList<HeadId> Heads, double Strength) : Intervention
{
    public override string Kind => "soften";
}

/// <summary>A share <paramref name="Fraction"/> of the attention on the sink positions moved to the other visible keys.</summary>
public sealed record RedistributeSink(IReadOnlyList<HeadId> Heads, double Fraction, IReadOnlyList<int> Sinks) : Intervention
{
    public override string Kind => "redistribute_sink";
}

/// <summary>Which activation of a head <see cref="InjectActivations"/> takes from the source run.</summary>
public enum InjectComponent { Q, K, V }

/// <summary>The input a source run reads: explicit ids, or a text for the model's tokenizer (exactly one is set).</summary>
public sealed record InjectSource(IReadOnlyList<int>? Tokens, string? Text);

/// <summary>Each head's q, k or v at every position taken from a run on <paramref name="Source"/>.</summary>
public sealed record InjectActivations(IReadOnlyList<HeadId> Heads, InjectComponent Component, InjectSource Source) : Intervention
{
    public override string Kind => "inject";
}

/// <summary>Which bilinear map of a head a weight edit changes.</summary>
public enum HeadCircuit { Ov, Qk }

/// <summary>
/// Singular components (0 = largest) of the head's raw W_OV = W_V·W_O or W_QK = W_Q·W_Kᵀ removed (<paramref name="Remove"/>)
/// or scaled (<paramref name="Scale"/>: component → factor); written back through W_O[h] or W_Q[h] only.
/// </summary>
public sealed record EditWeights(HeadCircuit Circuit, HeadId Head, IReadOnlyList<int> Remove, IReadOnlyDictionary<int, double> Scale) : Intervention
{
    public override string Kind => Circuit == HeadCircuit.Ov ? "edit_ov" : "edit_qk";

    /// <summary>The factor component <paramref name="i"/> is multiplied by: 0 when removed, its scale, else 1.</summary>
    public double Gain(int i) => Remove.Contains(i) ? 0 : Scale.TryGetValue(i, out double g) ? g : 1;
}

/// <summary>
/// A named list of interventions, applied in order. <see cref="Load"/>/<see cref="Parse"/> check everything a recipe can get
/// wrong on its own and throw <see cref="InvalidInputException"/> naming the item, its kind and the field, e.g.
/// "recipe.json: interventions[2] (soften): strength 1.5 is outside [0, 1]"; <see cref="Save"/> writes the canonical form
/// (load → save → load → save gives the same bytes).
/// </summary>
public sealed record Recipe(string Name, IReadOnlyList<Intervention> Interventions)
{
    /// <summary>Where the recipe came from (the file, or "recipe"), for messages.</summary>
    public string Source { get; init; } = "recipe";

    public static readonly string[] Kinds = ["scale", "ablate", "soften", "redistribute_sink", "inject", "edit_ov", "edit_qk"];

    /// <summary>Reads and checks a recipe file.</summary>
    public static Recipe Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidInputException($"{path}: cannot read the recipe ({e.Message})", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses and checks a recipe; <paramref name="source"/> names it in messages.</summary>
    public static Recipe Parse(string json, string source = "recipe")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidInputException($"{source}: not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidInputException($"{source}: a recipe is an object {{\"name\": ..., \"interventions\": [...]}}");
            }
            foreach (var p in root.EnumerateObject())
            {
                if (p.Name is not ("name" or "interventions"))
                {
                    throw new InvalidInputException($"{source}: unknown field '{p.Name}' (a recipe has \"name\" and \"interventions\")");
                }
            }
            if (!root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
            {
                throw new InvalidInputException($"{source}: \"name\" is missing or not a string");
            }
            if (!root.TryGetProperty("interventions", out var list) || list.ValueKind != JsonValueKind.Array)
            {
                throw new InvalidInputException($"{source}: \"interventions\" is missing or not a list");
            }
            var items = new List<Intervention>();
            int i = 0;
            foreach (var item in list.EnumerateArray())
            {
                items.Add(new ItemReader(source, i++, item).Read());
            }
            return new Recipe(name.GetString()!, items) { Source = source };
        }
    }

    /// <summary>Writes the recipe in its canonical form.</summary>
    public void Save(string path) => File.WriteAllText(path, ToJson());

    /// <summary>The canonical JSON: indented, fields in schema order, numbers as round-trip doubles.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("name", Name);
            w.WriteStartArray("interventions");
            foreach (var item in Interventions)
            {
                WriteItem(w, item);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static void WriteItem(Utf8JsonWriter w, Intervention item)
    {
        w.WriteStartObject();
        w.WriteString("kind", item.Kind);
        void Heads(IReadOnlyList<HeadId> heads)
        {
            w.WriteStartArray("heads");
            foreach (var h in heads)
            {
                w.WriteStringValue(h.ToString());
            }
            w.WriteEndArray();
        }
        switch (item)
        {
            case ScaleHeads s:
                Heads(s.Heads);
                w.WriteNumber("factor", s.Factor);
                break;
            case AblateHeads a:
                Heads(a.Heads);
                w.WriteString("method", a.Mean ? "mean" : "zero");
                break;
            case SoftenHeads s:
                Heads(s.Heads);
                w.WriteNumber("strength", s.Strength);
                break;
            case RedistributeSink r:
                Heads(r.Heads);
                w.WriteNumber("fraction", r.Fraction);
                w.WriteStartArray("sinks");
                foreach (int k in r.Sinks)
                {
                    w.WriteNumberValue(k);
                }
                w.WriteEndArray();
                break;
            case InjectActivations inj:
                Heads(inj.Heads);
                w.WriteString("component", inj.Component.ToString().ToLowerInvariant());
                w.WriteStartObject("source");
                if (inj.Source.Tokens is { } tokens)
                {
                    w.WriteStartArray("tokens");
                    foreach (int t in tokens)
                    {
                        w.WriteNumberValue(t);
                    }
                    w.WriteEndArray();
                }
                else
                {
                    w.WriteString("text", inj.Source.Text);
                }
                w.WriteEndObject();
                break;
            case EditWeights e:
                w.WriteString("head", e.Head.ToString());
                if (e.Remove.Count > 0 || e.Scale.Count == 0)
                {
                    w.WriteStartArray("remove");
                    foreach (int c in e.Remove)
                    {
                        w.WriteNumberValue(c);
                    }
                    w.WriteEndArray();
                }
                if (e.Scale.Count > 0)
                {
                    w.WriteStartObject("scale");
                    foreach (var (c, g) in e.Scale.OrderBy(p => p.Key))
                    {
                        w.WriteNumber(c.ToString(CultureInfo.InvariantCulture), g);
                    }
                    w.WriteEndObject();
                }
                break;
        }
        w.WriteEndObject();
    }

    /// <summary>The prefix every message about item <paramref name="index"/> starts with.</summary>
    public string Where(int index) => $"{Source}: interventions[{index}] ({Interventions[index].Kind})";

    /// <summary>Reads one item, naming it in every error.</summary>
    private readonly struct ItemReader(string source, int index, JsonElement e)
    {
        private string Where(string kind) => $"{source}: interventions[{index}] ({kind})";

        public Intervention Read()
        {
            if (e.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidInputException($"{source}: interventions[{index}] is not an object");
            }
            if (!e.TryGetProperty("kind", out var k) || k.ValueKind != JsonValueKind.String)
            {
                throw new InvalidInputException($"{source}: interventions[{index}]: \"kind\" is missing (one of {string.Join(", ", Kinds)})");
            }
            string kind = k.GetString()!;
            string[] fields = kind switch
            {
                "scale" => ["heads", "factor"],
                "ablate" => ["heads", "method"],
                "soften" => ["heads", "strength"],
                "redistribute_sink" => ["heads", "fraction", "sinks"],
                "inject" => ["heads", "component", "source"],
                "edit_ov" or "edit_qk" => ["head", "remove", "scale"],
                _ => throw new InvalidInputException($"{source}: interventions[{index}]: unknown kind '{kind}' (one of {string.Join(", ", Kinds)})"),
            };
            foreach (var p in e.EnumerateObject())
            {
                if (p.Name != "kind" && !fields.Contains(p.Name))
                {
                    throw new InvalidInputException($"{Where(kind)}: unknown field '{p.Name}' (this kind has {string.Join(", ", fields)})");
                }
            }
            return kind switch
            {
                "scale" => new ScaleHeads(Heads(kind), Number(kind, "factor", double.NegativeInfinity, double.PositiveInfinity)),
                "ablate" => new AblateHeads(Heads(kind), Choice(kind, "method", ["zero", "mean"]) == "mean"),
                "soften" => new SoftenHeads(Heads(kind), Number(kind, "strength", 0, 1)),
                "redistribute_sink" => new RedistributeSink(Heads(kind), Number(kind, "fraction", 0, 1), Sinks(kind)),
                "inject" => new InjectActivations(Heads(kind), Enum.Parse<InjectComponent>(Choice(kind, "component", ["q", "k", "v"]), ignoreCase: true), Source(kind)),
                _ => Edit(kind),
            };
        }

        private JsonElement Field(string kind, string field) =>
            e.TryGetProperty(field, out var v) ? v : throw new InvalidInputException($"{Where(kind)}: {field} is missing");

        private HeadId Head(string kind, string field, JsonElement v)
        {
            if (v.ValueKind != JsonValueKind.String)
            {
                throw new InvalidInputException($"{Where(kind)}: {field} {v.GetRawText()} is not a head \"LAYER.HEAD\", e.g. \"3.6\"");
            }
            try
            {
                return HeadId.Parse(v.GetString()!);
            }
            catch (InvalidInputException)
            {
                throw new InvalidInputException($"{Where(kind)}: {field} '{v.GetString()}' is not a head \"LAYER.HEAD\", e.g. \"3.6\"");
            }
        }

        private HeadId[] Heads(string kind)
        {
            var v = Field(kind, "heads");
            if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
            {
                throw new InvalidInputException($"{Where(kind)}: heads must be a non-empty list of \"LAYER.HEAD\" (got {v.GetRawText()})");
            }
            var self = this;
            return v.EnumerateArray().Select(h => self.Head(kind, "heads", h)).ToArray();
        }

        private double Number(string kind, string field, double min, double max)
        {
            var v = Field(kind, field);
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x))
            {
                throw new InvalidInputException($"{Where(kind)}: {field} {v.GetRawText()} is not a finite number");
            }
            if (x < min || x > max)
            {
                throw new InvalidInputException($"{Where(kind)}: {field} {v.GetRawText()} is outside [{min}, {max}]");
            }
            return x;
        }

        private int Index(string kind, string field, JsonElement v)
        {
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i) || i < 0)
            {
                throw new InvalidInputException($"{Where(kind)}: {field} {v.GetRawText()} is not a non-negative integer");
            }
            return i;
        }

        private string Choice(string kind, string field, string[] allowed)
        {
            var v = Field(kind, field);
            string? s = v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            return s is not null && allowed.Contains(s) ? s
                : throw new InvalidInputException($"{Where(kind)}: {field} {v.GetRawText()} is not one of {string.Join(" | ", allowed)}");
        }

        private int[] Sinks(string kind)
        {
            var v = Field(kind, "sinks");
            if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
            {
                throw new InvalidInputException($"{Where(kind)}: sinks must be a non-empty list of positions (got {v.GetRawText()})");
            }
            var self = this;
            var sinks = v.EnumerateArray().Select(x => self.Index(kind, "sinks", x)).ToArray();
            return sinks.Distinct().Count() == sinks.Length ? sinks
                : throw new InvalidInputException($"{Where(kind)}: sinks {v.GetRawText()} lists a position twice");
        }

        private InjectSource Source(string kind)
        {
            var v = Field(kind, "source");
            bool hasTokens = v.ValueKind == JsonValueKind.Object && v.TryGetProperty("tokens", out _);
            bool hasText = v.ValueKind == JsonValueKind.Object && v.TryGetProperty("text", out _);
            if (hasTokens == hasText || v.EnumerateObject().Count() != 1)
            {
                throw new InvalidInputException($"{Where(kind)}: source must be {{\"tokens\": [...]}} or {{\"text\": \"...\"}} (got {v.GetRawText()})");
            }
            if (hasText)
            {
                var t = v.GetProperty("text");
                return t.ValueKind == JsonValueKind.String && t.GetString()!.Length > 0 ? new InjectSource(null, t.GetString())
                    : throw new InvalidInputException($"{Where(kind)}: source.text must be a non-empty string");
            }
            var list = v.GetProperty("tokens");
            if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            {
                throw new InvalidInputException($"{Where(kind)}: source.tokens must be a non-empty list of token ids");
            }
            var self = this;
            return new InjectSource(list.EnumerateArray().Select(x => self.Index(kind, "source.tokens", x)).ToArray(), null);
        }

        private EditWeights Edit(string kind)
        {
            var head = Head(kind, "head", Field(kind, "head"));
            bool hasRemove = e.TryGetProperty("remove", out var remove), hasScale = e.TryGetProperty("scale", out var scale);
            if (!hasRemove && !hasScale)
            {
                throw new InvalidInputException($"{Where(kind)}: give remove [components] or scale {{\"component\": factor}}");
            }
            var self = this;
            int[] removed = [];
            if (hasRemove)
            {
                if (remove.ValueKind != JsonValueKind.Array)
                {
                    throw new InvalidInputException($"{Where(kind)}: remove must be a list of component indices (0 = largest), got {remove.GetRawText()}");
                }
                removed = remove.EnumerateArray().Select(x => self.Index(kind, "remove", x)).ToArray();
                if (removed.Distinct().Count() != removed.Length)
                {
                    throw new InvalidInputException($"{Where(kind)}: remove {remove.GetRawText()} lists a component twice");
                }
            }
            var scaled = new SortedDictionary<int, double>();
            if (hasScale)
            {
                if (scale.ValueKind != JsonValueKind.Object)
                {
                    throw new InvalidInputException($"{Where(kind)}: scale must map components to factors, e.g. {{\"0\": 1.5}} (got {scale.GetRawText()})");
                }
                foreach (var p in scale.EnumerateObject())
                {
                    if (!int.TryParse(p.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int c))
                    {
                        throw new InvalidInputException($"{Where(kind)}: scale component '{p.Name}' is not a non-negative integer");
                    }
                    if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out double g) || !double.IsFinite(g))
                    {
                        throw new InvalidInputException($"{Where(kind)}: scale factor {p.Value.GetRawText()} of component {c} is not a finite number");
                    }
                    if (removed.Contains(c) || !scaled.TryAdd(c, g))
                    {
                        throw new InvalidInputException($"{Where(kind)}: component {c} appears twice (in remove and scale, or twice in scale)");
                    }
                }
            }
            return new EditWeights(kind == "edit_ov" ? HeadCircuit.Ov : HeadCircuit.Qk, head, removed, scaled);
        }
    }
}
