using Headwise.Compute;

namespace Headwise.Loading;

/// <summary>
/// Reads a llama2.c checkpoint (legacy format, version 0): a header of 7 little-endian int32
/// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) followed by float32 arrays in a fixed order.
/// The arrays are served from the file mapping under Hugging Face Llama tensor names, so one Llama forward runs both.
/// </summary>
public static unsafe class Llama2cCheckpoint
{
    // the header's names (llama2.c's Config struct); d_head = dim / n_heads
    private static readonly ConfigFieldNames HeaderFields = new("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "dim / n_heads",
        "hidden_dim", "seq_len", "norm_eps", "dim / n_heads", "sliding_window", DHeadFromWidth: true);

    public static (ModelConfig Config, WeightSet Weights) Load(string path)
    {
        var file = new MappedFile(path);
        try
        {
            return Read(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static (ModelConfig, WeightSet) Read(MappedFile file)
    {
        string path = file.Path;
        if (file.Length < 28)
        {
            throw new ModelFormatException($"{path}: truncated llama2.c checkpoint ({file.Length} bytes; the header alone is 28)");
        }
        var h = new ReadOnlySpan<int>(file.Base, 7);
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabSigned = h[5], seqLen = h[6];
        if (dim > 1 << 16 || hidden > 1 << 18 || layers > 1024 || heads > dim || Math.Abs((long)vocabSigned) > 1 << 22 || seqLen > 1 << 20)
        {
            throw new ModelFormatException($"{path}: llama2.c header [dim {dim}, hidden {hidden}, layers {layers}, heads {heads}, kv heads {kvHeads}, vocab {vocabSigned}, seq_len {seqLen}] is not a valid model (wrong file or version?)");
        }
        bool shared = vocabSigned > 0; // positive vocab_size: the classifier shares the token embedding
        int vocab = Math.Abs(vocabSigned);
        int headSize = heads > 0 ? dim / heads : 0;
        var config = new ModelConfig
        {
            ModelType = "llama2c",
            Family = ArchitectureFamily.Llama,
            VocabSize = vocab,
            DModel = dim,
            NLayers = layers,
            NHeads = heads,
            NKvHeads = kvHeads,
            DHead = headSize,
            DMlp = hidden,
            MaxPositions = seqLen,
            NormEps = 1e-5f,
            Norm = NormKind.RmsNorm,
            Activation = ActivationFunction.Silu,
            GatedMlp = true,
            Positions = PositionKind.Rotary,
            TiedEmbeddings = shared,
            RopeTheta = 10000,
            RotaryDims = headSize,
            RopeLayout = RopeLayout.Interleaved, // llama2.c rotates adjacent pairs (2i, 2i+1)
            BosTokenId = 1,
            EosTokenId = 2,
        };
        config.Validate($"{path}: llama2.c header", HeaderFields);
        int kvDim = dim * kvHeads / heads;
        long L = layers;

        // The arrays in file order, with their HF names (per layer) and shapes — nn.Linear layout (out, in) throughout.
        var arrays = new List<(string Name, int[] Shape, bool PerLayer)>
        {
            ("model.embed_tokens.weight", [vocab, dim], false),
            ("input_layernorm.weight", [dim], true),
            ("self_attn.q_proj.weight", [dim, dim], true),
            ("self_attn.k_proj.weight", [kvDim, dim], true),
            ("self_attn.v_proj.weight", [kvDim, dim], true),
            ("self_attn.o_proj.weight", [dim, dim], true),
            ("post_attention_layernorm.weight", [dim], true),
            ("mlp.gate_proj.weight", [hidden, dim], true), // w1
            ("mlp.down_proj.weight", [dim, hidden], true), // w2
            ("mlp.up_proj.weight", [hidden, dim], true),   // w3
            ("model.norm.weight", [dim], false),
        };
        long offset = 28;
        long Floats(int[] s) => s.Aggregate(1L, (a, b) => a * b);
        long expected = 28 + arrays.Sum(a => Floats(a.Shape) * (a.PerLayer ? L : 1) * 4)
            + 2L * seqLen * (headSize / 2) * 4 // legacy freq_cis_real / freq_cis_imag tables, skipped
            + (shared ? 0 : (long)vocab * dim * 4);
        if (file.Length != expected)
        {
            throw new ModelFormatException($"{path}: a llama2.c checkpoint with this header must be {expected} bytes, but the file has {file.Length} (truncated, or not a version-0 llama2.c file)");
        }

        var weights = new WeightSet(path);
        weights.AddOwner(file);
        foreach (var (name, shape, perLayer) in arrays)
        {
            long n = Floats(shape);
            for (int l = 0; l < (perLayer ? layers : 1); l++)
            {
                string full = perLayer ? $"model.layers.{l}.{name}" : name;
                weights.Add(new Weight(full, shape, (float*)(file.Base + offset), null));
                offset += n * 4;
            }
        }
        offset += 2L * seqLen * (headSize / 2) * 4;
        if (!shared)
        {
            weights.Add(new Weight("lm_head.weight", [vocab, dim], (float*)(file.Base + offset), null));
        }

        return (config, weights);
    }
}
