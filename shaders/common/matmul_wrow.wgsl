// Which W row feeds a tile column, for the tiled matmuls (matmul.wgsl, matmul_coop.wgsl). The
// including shader defines OUT_N, the output columns of one tile: TN, or TN / 2 for GeGLU,
// whose tile of TN W rows is the TN / 2 input rows n0.. followed by their TN / 2 gate rows
// I + n0.. (p.n is I).

const NONE: u32 = 0xffffffffu;

// The W row behind tile column c of the tile whose first output column is n0, or NONE past
// the output's last column.
fn w_row(n0: u32, c: u32) -> u32 {
#if GEGLU
    let col = n0 + c % OUT_N;
    if col >= p.n {
        return NONE;
    }
    return select(col, p.n + col, c >= OUT_N);
#else
    let col = n0 + c;
    return select(NONE, col, col < p.n);
#endif
}
