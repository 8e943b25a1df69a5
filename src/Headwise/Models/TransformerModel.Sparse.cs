using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Sparse;

namespace Headwise.Models;

// Sparse attention (the policy every layer asks) and the rolling KV cache of streaming generation (StreamingLLM).
public abstract partial class TransformerModel
{
    /// <summary>
    /// The sparse-attention policy every layer's attention follows (docs/sparse.md); null or <c>dense</c> = every causal pair.
    /// Parse one from a spec with <see cref="AttentionSpec.Parse"/>: <c>model.SparseAttention = AttentionSpec.Parse("window:64,sinks:4")</c>.
    /// Its <see cref="AttentionPolicy.Density"/> counts what the forwards since its last reset computed.
    /// </summary>
    public AttentionPolicy? SparseAttention { get; set; }

    private readonly List<Compute.AttentionSparsity> _sparsities = []; // per sequence of the step: the policy's decision

    private (int Sinks, int Window)? _rolling; // set by ResetRollingCache, cleared by ResetCache
    private float[][] _rolledKeys = [];        // per layer: (capacity, NKV, HD) the cached pre-RoPE keys rotated at their slots
    private int[] _slots = [];                  // 0 .. capacity − 1: the position of each cache slot
    private readonly int[] _rollingToken = new int[1]; // the one id of a rolling step (a step allocates nothing)

    /// <summary>The rolling cache's (sinks, window) when <see cref="ResetRollingCache"/> set one up; null for the ordinary cache.</summary>
    public (int Sinks, int Window)? RollingCache => _rolling;

    /// <summary>
    /// Empties the KV cache and makes it a rolling cache of one sequence: the first <paramref name="sinks"/> tokens stay, and
    /// after them the <paramref name="window"/> most recent (the token being computed included); <see cref="ForwardRolling"/>
    /// evicts the oldest non-sink token when it is full, so a sequence runs past the model's context in bounded memory.
    /// Positions are the cache slots: the token in slot j is at position j, so a new token is at position min(tokens seen,
    /// sinks + window − 1). Rotary keys are cached before RoPE and rotated at their slot on every step (StreamingLLM);
    /// learned absolute positions are added to the token at its slot when it enters and stay baked into its cached keys and
    /// values afterwards (a cached key cannot be moved).
    /// </summary>
    public void ResetRollingCache(int sinks, int window)
    {
        if (sinks < 0 || window < 1)
        {
            throw new InvalidInputException($"rolling cache: sinks must be 0 or more and the window at least 1 (got sinks {sinks}, window {window})");
        }
        if (Config.Bidirectional || Config.Vision is not null || CachedKeyFloats != Config.NKvHeads * Config.DHead)
        {
            throw new InvalidInputException($"a rolling KV cache needs a causal model that caches per-head keys and values ({Config.Family} does not)");
        }
        if (Config.LayerHeads is not null)
        {
            throw new InvalidInputException("a rolling KV cache needs the same kv heads in every layer; this model was pruned per layer (headwise_heads)");
        }
        if (sinks + window > Config.MaxPositions)
        {
            throw new InvalidInputException($"rolling cache of {sinks} sinks + {window} recent tokens is longer than the model's context of {Config.MaxPositions}");
        }
        ResetCache(1, sinks + window);
        _rolling = (sinks, window);
        int capacity = sinks + window, kvRow = Config.NKvHeads * Config.DHead;
        if (Config.Positions == PositionKind.Rotary && (_rolledKeys.Length != Config.NLayers || _rolledKeys[0].Length < capacity * kvRow))
        {
            _rolledKeys = new float[Config.NLayers][];
            for (int l = 0; l < Config.NLayers; l++)
            {
                _rolledKeys[l] = new float[capacity * kvRow];
            }
        }
        if (_slots.Length < capacity)
        {
            _slots = Enumerable.Range(0, capacity).ToArray();
        }
    }

    /// <summary>One token through the rolling cache (<see cref="ResetRollingCache"/>): evicts the oldest non-sink token when the
    /// cache is full, appends this one at the next slot and returns its logits (vocab), into <paramref name="logitsBuffer"/>
    /// when it holds exactly vocab floats (as <see cref="ForwardChunk(int[], byte[], int, HookSet?, bool, float[])"/>).</summary>
    public float[] ForwardRolling(int token, HookSet? hooks = null, float[]? logitsBuffer = null)
    {
        if (_rolling is not { } rolling)
        {
            throw new InvalidOperationException("call ResetRollingCache before ForwardRolling");
        }
        if (PastLength == _capacity)
        {
            Evict(rolling.Sinks);
        }
        _rollingToken[0] = token;
        return ForwardChunk(_rollingToken, null, 1, hooks, lastOnly: true, logitsBuffer);
    }

    // drops slot `slot` of every layer's cache: the slots after it move down one (B = 1)
    private void Evict(int slot)
    {
        int kvRow = Config.NKvHeads * Config.DHead, after = _capacity - slot - 1;
        for (int l = 0; l < Config.NLayers; l++)
        {
            _kCache[l].AsSpan((slot + 1) * kvRow, after * kvRow).CopyTo(_kCache[l].AsSpan(slot * kvRow));
            _vCache[l].AsSpan((slot + 1) * kvRow, after * kvRow).CopyTo(_vCache[l].AsSpan(slot * kvRow));
        }
        PastLength--;
        _validCount[0]--;
    }

    /// <summary>Rolling cache, rotary positions: appends the step's pre-RoPE keys to the cache, rotates every cached key at
    /// its slot into the layer's rolled keys (the ones attention reads) and leaves the step's rotated keys in
    /// <see cref="RunState.K"/> for hook_rot_k.</summary>
    private float[] RollKeys(int L)
    {
        int T = Step.T, past = Step.PastLen, S_ = past + T, kvRow = Config.NKvHeads * Config.DHead;
        S.K.AsSpan(0, T * kvRow).CopyTo(_kCache[L].AsSpan(past * kvRow));
        var rolled = _rolledKeys[L];
        _kCache[L].AsSpan(0, S_ * kvRow).CopyTo(rolled);
        RotateHeads(rolled.AsSpan(0, S_ * kvRow), _slots.AsSpan(0, S_), S_, Config.NKvHeads, Config.DHead);
        rolled.AsSpan(past * kvRow, T * kvRow).CopyTo(S.K);
        return rolled;
    }
}
