using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Analysis.Interventions;
using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Interventions;

// k/v injection into one query head of a grouped-query model: that head recomputed at hook_z (see GroupedKvInject).
public sealed partial class RecipeApplication
{
    /// <summary>
    /// inject k or v into query heads of a grouped-query model, where the kv head is shared with other query heads: each head's
    /// z is recomputed at hook_z as softmax(q_h·k′ᵀ/√HD + mask)·v′ by the engine's fused attention kernel (its mask: causal,
    /// sliding window, padded keys), with k′ (or v′) the
    /// source's kv head j = h / group at the same positions and the other one the current run's, so the heads sharing j keep
    /// theirs. The current run's q_h (after RoPE) and k/v of j are captured by observing hooks; keys and values of positions
    /// processed earlier (the KV cache, during generation) are kept here, restarting with each run (the cache empty).
    /// </summary>
    private sealed class GroupedKvInject
    {
        private readonly TransformerModel _model;
        private readonly int _layer, _HD;
        private readonly int[] _heads, _kvHeads;
        private readonly bool _injectK, _generation;
        private readonly Tensor _source; // [1, T_src, NKV, HD]: rotated k (rotary models) or k, or v
        private readonly string _where;
        private float[] _q = [];          // (B, T, n, HD): this step's queries of the listed heads
        private float[] _kept = [];       // (B, capacity, n, HD): the current run's k (inject v) or v (inject k), past included
        private int _capacity;
        private float[] _kPack = [], _vPack = [], _qPack = [], _zPack = []; // one sequence and head, (S or T, HD)

        public GroupedKvInject(TransformerModel model, int layer, int[] heads, InjectComponent component, Tensor source, bool generation, string where)
        {
            _model = model;
            _layer = layer;
            _heads = heads;
            _kvHeads = [.. heads.Select(h => h / model.Config.KvGroupSize)];
            _HD = model.Config.DHead;
            _injectK = component == InjectComponent.K;
            _source = source;
            _generation = generation;
            _where = where;
        }

        public void AddCaptures(HookSet hooks)
        {
            bool rotary = _model.Config.Positions == PositionKind.Rotary;
            hooks.Add(new HookPoint(_layer, rotary ? HookKind.RotQ : HookKind.Q), CaptureQ, observeOnly: true);
            hooks.Add(new HookPoint(_layer, _injectK ? HookKind.V : rotary ? HookKind.RotK : HookKind.K), CaptureKept, observeOnly: true);
        }

        // q: [B, T, NH, HD] → _q (B, T, n, HD)
        private void CaptureQ(ActivationView a)
        {
            int B = a.Shape[0], T = a.Shape[1], NH = a.Shape[2], n = _heads.Length;
            if (_q.Length < B * T * n * _HD)
            {
                _q = new float[B * T * n * _HD];
            }
            var q = a.Data.Span;
            for (int r = 0; r < B * T; r++)
            {
                for (int i = 0; i < n; i++)
                {
                    q.Slice((r * NH + _heads[i]) * _HD, _HD).CopyTo(_q.AsSpan((r * n + i) * _HD, _HD));
                }
            }
        }

        // k or v: [B, T, NKV, HD] (or [B, T, NH, HD] when the hook set expands kv heads) → _kept at positions past .. past + T − 1
        private void CaptureKept(ActivationView a)
        {
            int B = a.Shape[0], T = a.Shape[1], heads = a.Shape[2], n = _heads.Length, past = _model.PastLength;
            bool expanded = heads != _model.Config.NKvHeads;
            if (past == 0)
            {
                // a new run: the buffer is reused when large enough
                if (_kept.Length < B * T * n * _HD)
                {
                    _kept = new float[B * T * n * _HD];
                }
                _capacity = _kept.Length / (B * n * _HD);
            }
            else if (past + T > _capacity)
            {
                // a longer run: keep the positions so far (capacity doubles, so generation grows it rarely)
                int capacity = Math.Max(past + T, 2 * _capacity);
                var kept = new float[B * capacity * n * _HD];
                for (int b = 0; b < B; b++)
                {
                    _kept.AsSpan(b * _capacity * n * _HD, past * n * _HD).CopyTo(kept.AsSpan(b * capacity * n * _HD));
                }
                (_kept, _capacity) = (kept, capacity);
            }
            var x = a.Data.Span;
            for (int b = 0; b < B; b++)
            {
                for (int t = 0; t < T; t++)
                {
                    for (int i = 0; i < n; i++)
                    {
                        int head = expanded ? _heads[i] : _kvHeads[i];
                        x.Slice(((b * T + t) * heads + head) * _HD, _HD).CopyTo(_kept.AsSpan(((b * _capacity + past + t) * n + i) * _HD, _HD));
                    }
                }
            }
        }

        // z: [B, T, NH, HD]; head h's rows replaced by its attention over the S = past + T keys with k′ or v′ from the source
        public void Recompute(ActivationView a)
        {
            int B = a.Shape[0], T = a.Shape[1], NH = a.Shape[2], HD = _HD, n = _heads.Length, past = _model.PastLength, S = past + T;
            int NKV = _source.Shape[2];
            RequireSourceCovers(past, T, _source.Shape[1], _generation, _where);
            for (int b = 0; b < B && _injectK; b++)
            {
                if (_model.KeyMask(b)[..S].Contains((byte)0))
                {
                    // padding shifts the position ids, where the source's rotated keys would need rotating anew
                    throw new InvalidInputException($"{_where}: injecting k into a query head of a grouped-query model needs unpadded inputs (sequence {b} has padding); run the sequences one at a time");
                }
            }
            if (_kPack.Length < S * HD)
            {
                _kPack = new float[S * HD];
                _vPack = new float[S * HD];
            }
            if (_qPack.Length < T * HD)
            {
                _qPack = new float[T * HD];
                _zPack = new float[T * HD];
            }
            var z = a.Data.Span;
            var src = _source.Data.AsSpan();
            for (int b = 0; b < B; b++)
            {
                for (int i = 0; i < n; i++)
                {
                    int h = _heads[i], j = _kvHeads[i];
                    // pack this sequence's q_h (T, 1, HD), k′ and v′ (S, 1, HD)
                    for (int t = 0; t < T; t++)
                    {
                        _q.AsSpan(((b * T + t) * n + i) * HD, HD).CopyTo(_qPack.AsSpan(t * HD, HD));
                    }
                    var (fromSource, fromRun) = _injectK ? (_kPack, _vPack) : (_vPack, _kPack);
                    for (int s = 0; s < S; s++)
                    {
                        src.Slice((s * NKV + j) * HD, HD).CopyTo(fromSource.AsSpan(s * HD, HD));
                        _kept.AsSpan(((b * _capacity + s) * n + i) * HD, HD).CopyTo(fromRun.AsSpan(s * HD, HD));
                    }
                    TransformerModel.UnobservedAttention(_qPack.AsSpan(0, T * HD), _kPack.AsSpan(0, S * HD), _vPack.AsSpan(0, S * HD), _zPack.AsSpan(0, T * HD),
                        T, S, 1, 1, HD, past, 1f / MathF.Sqrt(HD), _model.KeyMask(b)[..S], _model.Config.SlidingWindow, AttentionSparsity.Dense);
                    for (int t = 0; t < T; t++)
                    {
                        _zPack.AsSpan(t * HD, HD).CopyTo(z.Slice(((b * T + t) * NH + h) * HD, HD));
                    }
                }
            }
        }
    }

    // q: [B, T, NH, HD] or k/v: [B, T, NKV, HD]; the source: [1, T_src, same, HD]. Rows of this call sit at positions past..past+T−1.
    private void Inject(ActivationView a, int[] heads, Tensor src, bool generation, string where)
    {
        int B = a.Shape[0], T = a.Shape[1], NH = a.Shape[2], HD = a.Shape[3], past = Model.PastLength, srcLen = src.Shape[1];
        RequireSourceCovers(past, T, srcLen, generation, where);
        var dst = a.Data.Span;
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < T; t++)
            {
                foreach (int h in heads)
                {
                    src.Data.AsSpan(((past + t) * NH + h) * HD, HD).CopyTo(dst.Slice(((b * T + t) * NH + h) * HD, HD));
                }
            }
        }
    }
}
