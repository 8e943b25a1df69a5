namespace Headwise.Hooks;

/// <summary>Every hook point of a block or of the model, named as in TransformerLens.</summary>
public enum HookKind
{
    // model-level
    Embed,              // hook_embed                  [batch, pos, d_model]
    PosEmbed,           // hook_pos_embed              [batch, pos, d_model]  (learned positions only)
    LnFinalScale,       // ln_final.hook_scale         [batch, pos, 1]
    LnFinalNormalized,  // ln_final.hook_normalized    [batch, pos, d_model]
    // per block
    ResidPre,           // blocks.L.hook_resid_pre           [batch, pos, d_model]
    Ln1Scale,           // blocks.L.ln1.hook_scale           [batch, pos, 1]
    Ln1Normalized,      // blocks.L.ln1.hook_normalized      [batch, pos, d_model]
    QLatent,            // blocks.L.attn.hook_q_latent       [batch, pos, q_lora_rank]  (MLA with q_lora_rank: after q_a_layernorm)
    KvLatent,           // blocks.L.attn.hook_kv_latent      [batch, pos, kv_lora_rank] (MLA: the normalised latent the cache holds)
    Q,                  // blocks.L.attn.hook_q              [batch, pos, head, d_head]
    K,                  // blocks.L.attn.hook_k              [batch, pos, kv_head, d_head]
    V,                  // blocks.L.attn.hook_v              [batch, pos, kv_head, d_head]
    RotQ,               // blocks.L.attn.hook_rot_q          [batch, pos, head, d_head]  (after RoPE)
    RotK,               // blocks.L.attn.hook_rot_k          [batch, pos, kv_head, d_head]
    AttnScores,         // blocks.L.attn.hook_attn_scores    [batch, head, qpos, kpos]  (−∞ where masked)
    Pattern,            // blocks.L.attn.hook_pattern        [batch, head, qpos, kpos]
    Z,                  // blocks.L.attn.hook_z              [batch, pos, head, d_head]
    Result,             // blocks.L.attn.hook_result         [batch, pos, head, d_model]  (computed only when hooked)
    AttnOut,            // blocks.L.hook_attn_out            [batch, pos, d_model]
    ResidMid,           // blocks.L.hook_resid_mid           [batch, pos, d_model]  (sequential residual only)
    Ln2Scale,           // blocks.L.ln2.hook_scale           [batch, pos, 1]
    Ln2Normalized,      // blocks.L.ln2.hook_normalized      [batch, pos, d_model]
    MlpPre,             // blocks.L.mlp.hook_pre             [batch, pos, d_mlp]  (gate pre-activation for SwiGLU)
    MlpPreLinear,       // blocks.L.mlp.hook_pre_linear      [batch, pos, d_mlp]  (SwiGLU up projection)
    MlpPost,            // blocks.L.mlp.hook_post            [batch, pos, d_mlp]
    MlpOut,             // blocks.L.hook_mlp_out             [batch, pos, d_model]
    ResidPost,          // blocks.L.hook_resid_post          [batch, pos, d_model]
}

/// <summary>A hook point: a layer (or −1 for model-level points) and a kind.</summary>
public readonly record struct HookPoint(int Layer, HookKind Kind)
{
    public const int ModelLevel = -1;

    public bool IsModelLevel => Kind <= HookKind.LnFinalNormalized;

    public string Name => Kind switch
    {
        HookKind.Embed => "hook_embed",
        HookKind.PosEmbed => "hook_pos_embed",
        HookKind.LnFinalScale => "ln_final.hook_scale",
        HookKind.LnFinalNormalized => "ln_final.hook_normalized",
        _ => $"blocks.{Layer}.{BlockSuffix(Kind)}",
    };

    public override string ToString() => Name;

    private static readonly (HookKind Kind, string Suffix)[] BlockSuffixes =
    [
        (HookKind.ResidPre, "hook_resid_pre"), (HookKind.Ln1Scale, "ln1.hook_scale"), (HookKind.Ln1Normalized, "ln1.hook_normalized"),
        (HookKind.QLatent, "attn.hook_q_latent"), (HookKind.KvLatent, "attn.hook_kv_latent"),
        (HookKind.Q, "attn.hook_q"), (HookKind.K, "attn.hook_k"), (HookKind.V, "attn.hook_v"),
        (HookKind.RotQ, "attn.hook_rot_q"), (HookKind.RotK, "attn.hook_rot_k"),
        (HookKind.AttnScores, "attn.hook_attn_scores"), (HookKind.Pattern, "attn.hook_pattern"), (HookKind.Z, "attn.hook_z"),
        (HookKind.Result, "attn.hook_result"), (HookKind.AttnOut, "hook_attn_out"), (HookKind.ResidMid, "hook_resid_mid"),
        (HookKind.Ln2Scale, "ln2.hook_scale"), (HookKind.Ln2Normalized, "ln2.hook_normalized"),
        (HookKind.MlpPre, "mlp.hook_pre"), (HookKind.MlpPreLinear, "mlp.hook_pre_linear"), (HookKind.MlpPost, "mlp.hook_post"),
        (HookKind.MlpOut, "hook_mlp_out"), (HookKind.ResidPost, "hook_resid_post"),
    ];

    private static string BlockSuffix(HookKind kind) => BlockSuffixes.First(s => s.Kind == kind).Suffix;

    /// <summary>Parses a TransformerLens hook name; null when it is not one.</summary>
    public static HookPoint? TryParse(string name)
    {
        switch (name)
        {
            case "hook_embed": return new HookPoint(ModelLevel, HookKind.Embed);
            case "hook_pos_embed": return new HookPoint(ModelLevel, HookKind.PosEmbed);
            case "ln_final.hook_scale": return new HookPoint(ModelLevel, HookKind.LnFinalScale);
            case "ln_final.hook_normalized": return new HookPoint(ModelLevel, HookKind.LnFinalNormalized);
        }
        if (!name.StartsWith("blocks.", StringComparison.Ordinal))
        {
            return null;
        }
        int dot = name.IndexOf('.', 7);
        if (dot < 0 || !int.TryParse(name.AsSpan(7, dot - 7), out int layer) || layer < 0)
        {
            return null;
        }
        string suffix = name[(dot + 1)..];
        foreach (var (kind, s) in BlockSuffixes)
        {
            if (s == suffix)
            {
                return new HookPoint(layer, kind);
            }
        }
        return null;
    }
}
