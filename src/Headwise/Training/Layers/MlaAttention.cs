using Headwise.Compute;
using K = Headwise.Compute.Kernels;

namespace Headwise.Training.Layers;

/// <summary>
/// Multi-head latent attention (DeepSeek-V3's <c>DeepseekV3Attention</c>, and the layout <c>convert mla</c> writes) for
/// training, every layer of a model in one object: it registers each layer's projections, keeps what the backward needs and
/// owns its scratch. Letters: QR = query rank (0: one query projection), R = latent rank, NOPE/ROPE = the non-rotary/rotary parts of a
/// query/key head, QK = NOPE + ROPE, HD = value head size.
///   q      = x·W_Qᵀ (+ b_q)                     or  q_b(RMSNorm(x·W_QAᵀ + b_qa)),  per head [q_nope | q_rot]   (N, NH, QK)
///   [c | k_rot] = x·W_DKVᵀ (+ b_dkv)            c: the latent (R), RMSNorm'd when the layout has kv_a_layernorm
///   [k_nope,h | v_h] = c·W_UKV,hᵀ               k_h = [k_nope,h | RoPE(k_rot)], one rotary key for every head
///   z      = softmax(scale·[q_nope | RoPE(q_rot)]·k_hᵀ + causal)·v_h                                      (N, NH, HD)
/// The output projection W_O stays the model's (as for every other attention). The attention itself is
/// <see cref="Attention"/> with NKV = NH and head size QK, whose 1/√QK the query's factor scale·√QK turns into the layout's scale.
/// </summary>
public sealed class MlaAttention
{
    // the engine's DeepseekV3RMSNorm default for q_a_layernorm and kv_a_layernorm
    public const float LatentNormEps = 1e-6f;

    private sealed class Layer
    {
        // parameter offsets (−1 = absent)
        public int Wq = -1, Bq = -1, WqA = -1, BqA = -1, QNorm = -1, WqB = -1, WkvA = -1, BkvA = -1, KvNorm = -1, WkvB = -1;
        // saved for the backward: q_a's output and its norm (N, QR), rstd (N); q after RoPE and the scale (N, NH, QK) + NOPE slack;
        // the latent before and after its norm (N, R), rstd (N); the roped rotary key (N, ROPE); the keys (N, NH, QK)
        public float[] QA = [], QN = [], QRstd = [], Q = [], LatentRaw = [], Latent = [], LatentRstd = [], KRot = [], Keys = [];
    }

    private readonly TrainableMla _mla;
    private readonly int C, NH, QR, R, NOPE, ROPE, QK, HD;
    private readonly float _queryFactor; // scale·√QK: Attention divides the scores by √QK
    private readonly RopeLayout _layout;
    private readonly float[] _cos, _sin, _negSin;
    private readonly Layer[] _layers;
    private int _n;
    // scratch for the current N
    private float[] _ckv = [], _kvb = [], _dQ = [], _dK = [], _dKvb = [], _dLatent = [], _dLatentRaw = [], _dCkv = [], _dKRot = [], _dQN = [], _dQA = [];
    private float[] _scratchT = [], _scratchP = [];

    /// <param name="register">Adds a parameter (name, shape, decayed) to the model's flat array and returns its offset.</param>
    public MlaAttention(TrainableMla mla, int dModel, int heads, int valueHeadSize, int layers, int maxPositions, double ropeTheta,
        Func<string, int[], bool, int> register)
    {
        _mla = mla;
        (C, NH, QR, R, NOPE, ROPE, QK, HD) = (dModel, heads, mla.QLoraRank, mla.KvLoraRank, mla.NopeDim, mla.RopeDim, mla.QueryKeySize, valueHeadSize);
        _queryFactor = mla.Scale * MathF.Sqrt(QK);
        _layout = mla.RopeInterleave ? RopeLayout.Interleaved : RopeLayout.RotateHalf;
        // the engine's tables: a converted model's rotary key holds the source's frequencies, in the pairs the conversion chose
        (_cos, _sin) = mla.RopeFrequencies is { } f
            ? K.RopeTables(maxPositions, f, mla.RopeSourceDims > 0 ? mla.RopeSourceDims : ROPE, ropeTheta)
            : K.RopeTables(maxPositions, ROPE, ropeTheta);
        _negSin = [.. _sin.Select(x => -x)];
        _layers = new Layer[layers];
        for (int l = 0; l < layers; l++)
        {
            var w = _layers[l] = new Layer();
            string p = $"blocks.{l}.attn.";
            if (QR == 0)
            {
                w.Wq = register(p + "w_q", [NH * QK, C], true);
                if (mla.QueryBias) w.Bq = register(p + "b_q", [NH * QK], false);
            }
            else
            {
                w.WqA = register(p + "w_q_a", [QR, C], true);
                if (mla.AttentionBias) w.BqA = register(p + "b_q_a", [QR], false);
                w.QNorm = register(p + "q_norm.weight", [QR], false);
                w.WqB = register(p + "w_q_b", [NH * QK, QR], true);
            }
            w.WkvA = register(p + "w_dkv", [R + ROPE, C], true);
            if (mla.AttentionBias) w.BkvA = register(p + "b_dkv", [R + ROPE], false);
            if (mla.LatentNorm) w.KvNorm = register(p + "kv_norm.weight", [R], false);
            w.WkvB = register(p + "w_ukv", [NH * (NOPE + HD), R], true);
        }
    }

    /// <summary>Allocates the saved activations and scratch for N = B·T rows.</summary>
    public void Ensure(int N)
    {
        if (N == _n) return;
        _n = N;
        foreach (var w in _layers)
        {
            w.QA = new float[N * QR]; w.QN = new float[N * QR]; w.QRstd = new float[N];
            w.Q = new float[N * NH * QK + NOPE];
            w.LatentRaw = new float[N * R]; w.Latent = _mla.LatentNorm ? new float[N * R] : w.LatentRaw; w.LatentRstd = new float[N];
            w.KRot = new float[N * ROPE]; w.Keys = new float[N * NH * QK];
        }
        _ckv = new float[N * (R + ROPE)]; _kvb = new float[N * NH * (NOPE + HD)];
        _dQ = new float[N * NH * QK + NOPE]; _dK = new float[N * NH * QK]; _dKvb = new float[N * NH * (NOPE + HD)];
        _dLatent = new float[N * R]; _dLatentRaw = new float[N * R]; _dCkv = new float[N * (R + ROPE)]; _dKRot = new float[N * ROPE];
        _dQN = new float[N * QR]; _dQA = new float[N * QR];
        long st = 0, sp = 0;
        foreach (var (cin, oc) in new[] { (C, NH * QK), (C, QR), (QR, NH * QK), (C, R + ROPE), (R, NH * (NOPE + HD)) })
        {
            var (t, p) = Linear.ScratchSize(N, cin, oc);
            st = Math.Max(st, t); sp = Math.Max(sp, p);
        }
        _scratchT = new float[st]; _scratchP = new float[sp];
    }

    private static Span<float> At(float[] a, int offset, int length) => offset < 0 ? default : a.AsSpan(offset, length);

    // x: (N, C) the normalised block input  v: (N, NH, HD) saved  att: (B, NH, T, T) saved  z: (N, NH, HD)  positions: (N)
    public void Forward(int l, float[] p, ReadOnlySpan<float> x, Span<float> v, Span<float> att, Span<float> z, int B, int T, ReadOnlySpan<int> positions)
    {
        int N = B * T;
        var w = _layers[l];
        // the query: one projection, or the rank-QR projection → RMSNorm → the up-projection (HF DeepseekV3Attention)
        if (QR == 0)
        {
            Linear.Forward(x, At(p, w.Wq, NH * QK * C), At(p, w.Bq, NH * QK), w.Q, N, C, NH * QK);
        }
        else
        {
            Linear.Forward(x, At(p, w.WqA, QR * C), At(p, w.BqA, QR), w.QA, N, C, QR);
            RmsNorm.Forward(w.QA, At(p, w.QNorm, QR), w.QN, w.QRstd, N, QR, LatentNormEps);
            Linear.Forward(w.QN, At(p, w.WqB, NH * QK * QR), default, w.Q, N, QR, NH * QK);
        }
        // k_pass, k_rot = torch.split(self.kv_a_proj_with_mqa(hidden_states), [kv_lora_rank, qk_rope_head_dim]); kv_a_layernorm(k_pass)
        Linear.Forward(x, At(p, w.WkvA, (R + ROPE) * C), At(p, w.BkvA, R + ROPE), _ckv, N, C, R + ROPE);
        for (int n = 0; n < N; n++)
        {
            _ckv.AsSpan(n * (R + ROPE), R).CopyTo(w.LatentRaw.AsSpan(n * R, R));
            _ckv.AsSpan(n * (R + ROPE) + R, ROPE).CopyTo(w.KRot.AsSpan(n * ROPE, ROPE));
        }
        if (_mla.LatentNorm) RmsNorm.Forward(w.LatentRaw, At(p, w.KvNorm, R), w.Latent, w.LatentRstd, N, R, LatentNormEps);
        // RoPE on each head's q_rot (a view shifted by NOPE makes it the "head"'s first ROPE floats; Q has NOPE of slack) and k_rot
        K.Rope(w.Q.AsSpan(NOPE, N * NH * QK), positions, N, NH, QK, ROPE, _cos, _sin, _layout);
        K.Rope(w.KRot, positions, N, 1, ROPE, ROPE, _cos, _sin, _layout);
        if (_queryFactor != 1f) ScaleInPlace(w.Q.AsSpan(0, N * NH * QK), _queryFactor);
        // k_pass, value_states = torch.split(self.kv_b_proj(latent).view(..., nope + v), [nope, v]);  k = [k_pass | k_rot]
        Linear.Forward(w.Latent, At(p, w.WkvB, NH * (NOPE + HD) * R), default, _kvb, N, R, NH * (NOPE + HD));
        for (int n = 0; n < N; n++)
        {
            var kRot = w.KRot.AsSpan(n * ROPE, ROPE);
            for (int h = 0; h < NH; h++)
            {
                var kv = _kvb.AsSpan((n * NH + h) * (NOPE + HD), NOPE + HD);
                var k = w.Keys.AsSpan((n * NH + h) * QK, QK);
                kv[..NOPE].CopyTo(k);
                kRot.CopyTo(k[NOPE..]);
                kv[NOPE..].CopyTo(v.Slice((n * NH + h) * HD, HD));
            }
        }
        Attention.Forward(w.Q, w.Keys, v, att, z, B, T, NH, NH, QK, HD);
    }

    // dz: (N, NH, HD)  dv: (N, NH, HD) scratch  dx: (N, C) overwritten  g: the model's gradients (+=)
    public void Backward(int l, float[] p, float[] g, ReadOnlySpan<float> dz, ReadOnlySpan<float> x, ReadOnlySpan<float> v, ReadOnlySpan<float> att,
        Span<float> dv, Span<float> dx, int B, int T, ReadOnlySpan<int> positions)
    {
        int N = B * T;
        var w = _layers[l];
        var sT = _scratchT.AsSpan();
        var sP = _scratchP.AsSpan();
        Attention.Backward(dz, w.Q, w.Keys, v, att, _dQ, _dK, dv, B, T, NH, NH, QK, HD);
        // undoes k_h = [k_nope,h | k_rot], v_h: d[k_nope,h | v_h] per head, and d k_rot = Σ_h dk_h[NOPE..]
        for (int n = 0; n < N; n++)
        {
            var dr = _dKRot.AsSpan(n * ROPE, ROPE);
            dr.Clear();
            for (int h = 0; h < NH; h++)
            {
                var dkv = _dKvb.AsSpan((n * NH + h) * (NOPE + HD), NOPE + HD);
                var dk = _dK.AsSpan((n * NH + h) * QK, QK);
                dk[..NOPE].CopyTo(dkv);
                dv.Slice((n * NH + h) * HD, HD).CopyTo(dkv[NOPE..]);
                K.Add(dr, dk[NOPE..], dr);
            }
        }
        // undoes RoPE on k_rot: the rotation by −θ; then into d[c | k_rot]'s rotary columns
        K.Rope(_dKRot.AsSpan(0, N * ROPE), positions, N, 1, ROPE, ROPE, _cos, _negSin, _layout);
        for (int n = 0; n < N; n++) _dKRot.AsSpan(n * ROPE, ROPE).CopyTo(_dCkv.AsSpan(n * (R + ROPE) + R, ROPE));
        // undoes kv_b_proj
        Linear.Backward(_dKvb, w.Latent, At(p, w.WkvB, NH * (NOPE + HD) * R), _dLatent, At(g, w.WkvB, NH * (NOPE + HD) * R), default, sT, sP, N, R, NH * (NOPE + HD));
        // undoes kv_a_layernorm
        var dRaw = _dLatent;
        if (_mla.LatentNorm)
        {
            Array.Clear(_dLatentRaw, 0, N * R);
            RmsNorm.Backward(_dLatent, w.LatentRaw, At(p, w.KvNorm, R), w.LatentRstd, _dLatentRaw, At(g, w.KvNorm, R), N, R);
            dRaw = _dLatentRaw;
        }
        for (int n = 0; n < N; n++) dRaw.AsSpan(n * R, R).CopyTo(_dCkv.AsSpan(n * (R + ROPE), R));
        // undoes kv_a_proj_with_mqa (dx overwritten)
        Linear.Backward(_dCkv, x, At(p, w.WkvA, (R + ROPE) * C), dx, At(g, w.WkvA, (R + ROPE) * C), At(g, w.BkvA, R + ROPE), sT, sP, N, C, R + ROPE);
        // undoes the query's scale and its RoPE
        if (_queryFactor != 1f) ScaleInPlace(_dQ.AsSpan(0, N * NH * QK), _queryFactor);
        K.Rope(_dQ.AsSpan(NOPE, N * NH * QK), positions, N, NH, QK, ROPE, _cos, _negSin, _layout);
        if (QR == 0)
        {
            Linear.Backward(_dQ, x, At(p, w.Wq, NH * QK * C), dx, At(g, w.Wq, NH * QK * C), At(g, w.Bq, NH * QK), sT, sP, N, C, NH * QK, accumulateDx: true);
            return;
        }
        // undoes q_b_proj, q_a_layernorm, q_a_proj
        Linear.Backward(_dQ, w.QN, At(p, w.WqB, NH * QK * QR), _dQN, At(g, w.WqB, NH * QK * QR), default, sT, sP, N, QR, NH * QK);
        Array.Clear(_dQA, 0, N * QR);
        RmsNorm.Backward(_dQN, w.QA, At(p, w.QNorm, QR), w.QRstd, _dQA, At(g, w.QNorm, QR), N, QR);
        Linear.Backward(_dQA, x, At(p, w.WqA, QR * C), dx, At(g, w.WqA, QR * C), At(g, w.BqA, QR), sT, sP, N, C, QR, accumulateDx: true);
    }

    private static void ScaleInPlace(Span<float> x, float factor)
    {
        for (int i = 0; i < x.Length; i++) x[i] *= factor;
    }
}
