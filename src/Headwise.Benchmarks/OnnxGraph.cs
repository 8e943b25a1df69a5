using System.Runtime.InteropServices;
using Google.Protobuf;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>
/// The GPT-2 forward as an ONNX model (opset 20), built from a loaded model's canonical weights, so that ONNX Runtime runs
/// exactly our weights and math. Written straight to the protobuf wire format with Google.Protobuf's
/// <see cref="CodedOutputStream"/>: the few ONNX messages it needs (ModelProto, GraphProto, NodeProto, AttributeProto,
/// TensorProto, ValueInfoProto, TypeProto) with their field numbers from the ONNX specification (onnx.proto3).
/// </summary>
// Inputs: input_ids int64 (T), position_ids int64 (T), causal_mask bool (T, T) (true where a query may attend a key).
// Output: logits float (T, V). Standard ops only: Gather, LayerNormalization, MatMul, Add, Split, Reshape, Transpose, Mul,
// Where, Softmax, Gelu (approximate = "tanh"), Gemm (transB, for the unembedding against W_U (V, C)).
// Initializers carry TransformerLens-style names (W_E, W_pos, blocks.L.attn.W_qkv, …, W_U).
public static class OnnxGraph
{
    // ONNX enum values (onnx.proto3): TensorProto.DataType and AttributeProto.AttributeType
    private const int Float = 1, Int64 = 7, Bool = 9;
    private const int AttrFloat = 1, AttrInt = 2, AttrString = 3, AttrInts = 7;
    private const long IrVersion = 9, Opset = 20; // Gelu entered the standard opset at 20 (IR 9)

    /// <summary>The serialized ModelProto of <paramref name="model"/>'s forward: a GPT-2-shaped model (LayerNorm, learned
    /// positions, one key/value head per query head, an ungated tanh-GELU MLP, a sequential residual), read through its
    /// canonical weights (no checkpoint names), so any family with that shape works.</summary>
    public static byte[] Gpt2(TransformerModel model)
    {
        var c = model.Config;
        if (c.Norm != NormKind.LayerNorm || c.Positions != PositionKind.Learned || c.NKvHeads != c.NHeads || c.GatedMlp
            || c.ParallelResidual || c.Activation != ActivationFunction.GeluTanh || c.NHeads * c.DHead != c.DModel)
        {
            throw new InvalidInputException($"the ONNX graph is written for GPT-2-shaped models (LayerNorm, learned positions, one kv head per head, " +
                $"an ungated tanh-GELU MLP, a sequential residual); got {c.ModelType} ({c.ActivationName})");
        }
        int C = c.DModel, NH = c.NHeads, HD = c.DHead, F = c.DMlp, V = c.VocabSize;
        var g = new GraphBuilder();
        long weightBytes = c.ParameterCount * sizeof(float);
        // the GraphProto's initializers first, straight into the graph's bytes (protobuf fields may come in any order)
        var graph = new MemoryStream((int)Math.Min(Array.MaxLength, weightBytes + (1 << 20)));

        void Init(string name, ReadOnlySpan<float> data, params long[] dims) => WriteField(graph, 5, Tensor(name, data, dims));
        void InitNorm(string name, NormWeights n)
        {
            Init(name + ".w", n.Weight, C);
            Init(name + ".b", n.Bias ?? new float[C], C);
        }

        WriteField(graph, 5, Int64Tensor("heads_shape", [-1, NH, HD]));
        WriteField(graph, 5, Int64Tensor("rows_shape", [-1, C]));
        WriteField(graph, 5, Int64Tensor("qkv_split", [C, C, C]));
        WriteField(graph, 5, TensorOf("attn_scale", Float, [], BitConverter.GetBytes(1f / MathF.Sqrt(HD))));
        WriteField(graph, 5, TensorOf("neg_inf", Float, [], BitConverter.GetBytes(float.NegativeInfinity)));

        // embeddings: x = W_E[input_ids] + W_pos[position_ids]    (T, C)
        Init("W_E", model.TokenEmbedding.Span, V, C);
        Init("W_pos", model.PositionEmbedding!.Span, c.MaxPositions, C);
        g.Node("Gather", ["W_E", "input_ids"], ["tok_emb"]);
        g.Node("Gather", ["W_pos", "position_ids"], ["pos_emb"]);
        g.Node("Add", ["tok_emb", "pos_emb"], ["x0"]);
        string x = "x0";
        var qkv = new float[C * 3 * C];
        var qkvBias = new float[3 * C];
        for (int l = 0; l < c.NLayers; l++)
        {
            string o = $"blocks.{l}.";
            var a = model.GetAttentionWeights(l);
            var m = model.GetMlpWeights(l);
            // W_Q, W_K, W_V (NH, C, HD) side by side as one (C, 3C) matrix, head h of each third at columns h·HD..h·HD+HD
            int third = 0;
            foreach (var (wt, bt) in new[] { (a.WQ, a.BQ), (a.WK, a.BK), (a.WV, a.BV) })
            {
                for (int h = 0; h < NH; h++)
                {
                    for (int ci = 0; ci < C; ci++)
                    {
                        wt.AsSpan((h * C + ci) * HD, HD).CopyTo(qkv.AsSpan(ci * 3 * C + third + h * HD, HD));
                    }
                }
                (bt ?? new float[C]).AsSpan(0, C).CopyTo(qkvBias.AsSpan(third, C));
                third += C;
            }
            InitNorm(o + "ln1", model.AttentionNorm(l));
            Init(o + "attn.W_qkv", qkv, C, 3 * C);
            Init(o + "attn.b_qkv", qkvBias, 3 * C);
            Init(o + "attn.W_O", a.WO, C, C); // (NH, HD, C) is (NH·HD, C)
            Init(o + "attn.b_O", a.BO ?? new float[C], C);
            InitNorm(o + "ln2", model.MlpNorm(l));
            Init(o + "mlp.W_in", m.WIn, C, F);
            Init(o + "mlp.b_in", m.BIn ?? new float[F], F);
            Init(o + "mlp.W_out", m.WOut, F, C);
            Init(o + "mlp.b_out", m.BOut ?? new float[C], C);

            g.LayerNorm(x, o + "ln1", o + "ln1_out", c.NormEps);
            g.Linear(o + "ln1_out", o + "attn.W_qkv", o + "attn.b_qkv", o + "qkv");               // (T, 3C)
            g.Node("Split", [o + "qkv", "qkv_split"], [o + "q", o + "k", o + "v"], Int("axis", 1)); // (T, C) each
            g.Node("Reshape", [o + "q", "heads_shape"], [o + "q3"]);                              // (T, NH, HD)
            g.Node("Reshape", [o + "k", "heads_shape"], [o + "k3"]);
            g.Node("Reshape", [o + "v", "heads_shape"], [o + "v3"]);
            g.Node("Transpose", [o + "q3"], [o + "qh"], Ints("perm", 1, 0, 2));                   // (NH, T, HD)
            g.Node("Transpose", [o + "k3"], [o + "kt"], Ints("perm", 1, 2, 0));                   // (NH, HD, T)
            g.Node("Transpose", [o + "v3"], [o + "vh"], Ints("perm", 1, 0, 2));                   // (NH, T, HD)
            g.Node("MatMul", [o + "qh", o + "kt"], [o + "qk"]);                                   // (NH, T, T)
            g.Node("Mul", [o + "qk", "attn_scale"], [o + "scores"]);
            g.Node("Where", ["causal_mask", o + "scores", "neg_inf"], [o + "masked"]);
            g.Node("Softmax", [o + "masked"], [o + "pattern"], Int("axis", -1));
            g.Node("MatMul", [o + "pattern", o + "vh"], [o + "zh"]);                              // (NH, T, HD)
            g.Node("Transpose", [o + "zh"], [o + "zt"], Ints("perm", 1, 0, 2));                   // (T, NH, HD)
            g.Node("Reshape", [o + "zt", "rows_shape"], [o + "z"]);                               // (T, C)
            g.Linear(o + "z", o + "attn.W_O", o + "attn.b_O", o + "attn_out");
            g.Node("Add", [x, o + "attn_out"], [o + "resid_mid"]);
            g.LayerNorm(o + "resid_mid", o + "ln2", o + "ln2_out", c.NormEps);
            g.Linear(o + "ln2_out", o + "mlp.W_in", o + "mlp.b_in", o + "mlp_pre");              // (T, F)
            g.Node("Gelu", [o + "mlp_pre"], [o + "mlp_post"], Str("approximate", "tanh"));
            g.Linear(o + "mlp_post", o + "mlp.W_out", o + "mlp.b_out", o + "mlp_out");
            g.Node("Add", [o + "resid_mid", o + "mlp_out"], [o + "resid_post"]);
            x = o + "resid_post";
        }
        InitNorm("ln_final", model.FinalNormWeights);
        g.LayerNorm(x, "ln_final", "final", c.NormEps);
        // logits = ln_final(x) · W_Uᵀ, W_U (V, C): the token embedding itself when tied
        var (wU, bU) = model.Unembedding;
        string unembedding = "W_E";
        if (!ReferenceEquals(wU, model.TokenEmbedding))
        {
            Init("W_U", wU.Span, V, C);
            unembedding = "W_U";
        }
        if (bU is not null)
        {
            Init("b_U", bU.Span, V);
            g.Node("Gemm", ["final", unembedding, "b_U"], ["logits"], Int("transB", 1));
        }
        else
        {
            g.Node("Gemm", ["final", unembedding], ["logits"], Int("transB", 1));
        }

        foreach (var node in g.Nodes)
        {
            WriteField(graph, 1, node);
        }
        WriteString(graph, 2, "headwise_gpt2");
        WriteField(graph, 11, ValueInfo("input_ids", Int64, "T"));
        WriteField(graph, 11, ValueInfo("position_ids", Int64, "T"));
        WriteField(graph, 11, ValueInfo("causal_mask", Bool, "T", "T"));
        WriteField(graph, 12, ValueInfo("logits", Float, "T", V.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        var modelProto = new MemoryStream();
        var opset = Message(s => s.WriteTag(2, WireFormat.WireType.Varint), s => s.WriteInt64(Opset)); // domain "" (the standard ops)
        Write(modelProto, s =>
        {
            s.WriteTag(1, WireFormat.WireType.Varint);
            s.WriteInt64(IrVersion);
            s.WriteTag(2, WireFormat.WireType.LengthDelimited);
            s.WriteString("headwise");
        });
        WriteField(modelProto, 8, opset);
        Write(modelProto, s =>
        {
            s.WriteTag(7, WireFormat.WireType.LengthDelimited);
            s.WriteLength(checked((int)graph.Length));
        });
        // one copy of the graph's bytes behind the model's header (the weights are most of it)
        var bytes = GC.AllocateUninitializedArray<byte>(checked((int)(modelProto.Length + graph.Length)));
        modelProto.GetBuffer().AsSpan(0, (int)modelProto.Length).CopyTo(bytes);
        graph.GetBuffer().AsSpan(0, (int)graph.Length).CopyTo(bytes.AsSpan((int)modelProto.Length));
        return bytes;
    }

    // ------------------------------------------------------------------------------------------- graph and messages

    private sealed class GraphBuilder
    {
        public List<MemoryStream> Nodes { get; } = [];

        public void Node(string op, string[] inputs, string[] outputs, params MemoryStream[] attributes)
        {
            var node = new MemoryStream();
            foreach (var i in inputs) WriteString(node, 1, i);
            foreach (var o in outputs) WriteString(node, 2, o);
            WriteString(node, 3, $"{op}_{Nodes.Count}");
            WriteString(node, 4, op);
            foreach (var a in attributes) WriteField(node, 5, a);
            Nodes.Add(node);
        }

        // out = x · W + b, W (in, out) as TransformerLens stores it
        public void Linear(string x, string weight, string bias, string output)
        {
            Node("MatMul", [x, weight], [output + "_mm"]);
            Node("Add", [output + "_mm", bias], [output]);
        }

        public void LayerNorm(string x, string prefix, string output, double eps) =>
            Node("LayerNormalization", [x, prefix + ".w", prefix + ".b"], [output], Int("axis", -1), FloatAttr("epsilon", (float)eps));
    }

    private static MemoryStream Int(string name, long value) => Attribute(name, AttrInt, s =>
    {
        s.WriteTag(3, WireFormat.WireType.Varint);
        s.WriteInt64(value);
    });

    private static MemoryStream FloatAttr(string name, float value) => Attribute(name, AttrFloat, s =>
    {
        s.WriteTag(2, WireFormat.WireType.Fixed32);
        s.WriteFloat(value);
    });

    private static MemoryStream Str(string name, string value) => Attribute(name, AttrString, s =>
    {
        s.WriteTag(4, WireFormat.WireType.LengthDelimited);
        s.WriteString(value);
    });

    private static MemoryStream Ints(string name, params long[] values) => Attribute(name, AttrInts, s =>
    {
        foreach (long v in values)
        {
            s.WriteTag(8, WireFormat.WireType.Varint);
            s.WriteInt64(v);
        }
    });

    // AttributeProto: name = 1, type = 20, then the value field the caller writes
    private static MemoryStream Attribute(string name, int type, Action<CodedOutputStream> value) => Message(s =>
    {
        s.WriteTag(1, WireFormat.WireType.LengthDelimited);
        s.WriteString(name);
        s.WriteTag(20, WireFormat.WireType.Varint);
        s.WriteInt32(type);
    }, value);

    // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian, as this machine stores floats)
    private static MemoryStream Tensor(string name, ReadOnlySpan<float> data, long[] dims) =>
        TensorOf(name, Float, dims, MemoryMarshal.AsBytes(data).ToArray());

    private static MemoryStream Int64Tensor(string name, long[] values) =>
        TensorOf(name, Int64, [values.Length], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static MemoryStream TensorOf(string name, int dataType, long[] dims, byte[] raw)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian");
        }
        return Message(s =>
        {
            foreach (long d in dims)
            {
                s.WriteTag(1, WireFormat.WireType.Varint);
                s.WriteInt64(d);
            }
            s.WriteTag(2, WireFormat.WireType.Varint);
            s.WriteInt32(dataType);
            s.WriteTag(8, WireFormat.WireType.LengthDelimited);
            s.WriteString(name);
            s.WriteTag(9, WireFormat.WireType.LengthDelimited);
            s.WriteBytes(UnsafeByteOperations.UnsafeWrap(raw));
        });
    }

    // ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1, shape = 2: { dim = 1: { dim_value = 1 | dim_param = 2 } } } } }
    private static MemoryStream ValueInfo(string name, int elemType, params string[] dims)
    {
        var shape = new MemoryStream();
        foreach (var d in dims)
        {
            var dim = long.TryParse(d, out long v)
                ? Message(s => { s.WriteTag(1, WireFormat.WireType.Varint); s.WriteInt64(v); })
                : Message(s => { s.WriteTag(2, WireFormat.WireType.LengthDelimited); s.WriteString(d); });
            WriteField(shape, 1, dim);
        }
        var tensorType = Message(s => { s.WriteTag(1, WireFormat.WireType.Varint); s.WriteInt32(elemType); });
        WriteField(tensorType, 2, shape);
        var type = new MemoryStream();
        WriteField(type, 1, tensorType);
        var info = new MemoryStream();
        WriteString(info, 1, name);
        WriteField(info, 2, type);
        return info;
    }

    private static MemoryStream Message(params Action<CodedOutputStream>[] parts)
    {
        var m = new MemoryStream();
        foreach (var part in parts)
        {
            Write(m, part);
        }
        return m;
    }

    private static void Write(Stream into, Action<CodedOutputStream> write)
    {
        using var s = new CodedOutputStream(into, leaveOpen: true);
        write(s);
    }

    private static void WriteString(Stream into, int field, string value) => Write(into, s =>
    {
        s.WriteTag(field, WireFormat.WireType.LengthDelimited);
        s.WriteString(value);
    });

    // an embedded message: its field tag, its length, its bytes
    private static void WriteField(Stream into, int field, MemoryStream message)
    {
        Write(into, s =>
        {
            s.WriteTag(field, WireFormat.WireType.LengthDelimited);
            s.WriteLength(checked((int)message.Length));
        });
        message.WriteTo(into);
    }
}
