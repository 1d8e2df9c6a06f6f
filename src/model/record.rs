//! Recording helpers that speak the model's terms: a `Linear` or a `Norm` applied to some rows
//! of an activation becomes one step, its weights bound under their checkpoint names. The
//! encoder graph and the heads are written with these. A linear layer whose weight is held
//! in row pieces (`model::split`) becomes one product per piece, each filling its own
//! output columns (a gated `Wi`'s pieces hold their features' input and gate rows; a split
//! Wqkv is followed by the RoPE pass over the whole output).

use crate::model::upload::{Linear, Norm};
use crate::ops::choice::Choices;
use crate::ops::matmul::{Epilogue, MatmulArgs, OutCols};
use crate::ops::{self, DType, Rows};
use crate::runtime::{DeviceBuffer, PlanBuilder, TensorId};
use crate::{Error, Result};

/// Records steps over `rows` (at most `cap_rows`) of activations in one storage precision,
/// with the kernel choices `choices`.
pub struct Recorder<'a> {
    pub b: &'a mut PlanBuilder,
    pub choices: &'a Choices,
    pub dtype: DType,
    pub rows: Rows,
    pub cap_rows: u64,
    pub eps: f32,
}

impl Recorder<'_> {
    /// A temporary of `cap_rows x width` elements.
    pub fn activation(&mut self, name: &str, width: u32) -> TensorId {
        let bytes = self.cap_rows * width as u64 * self.dtype.size();
        self.b.activation(name, bytes)
    }

    /// Binds a weight and its optional bias as `name` and `name.bias`.
    pub fn bind(
        &mut self,
        name: &str,
        weight: &DeviceBuffer,
        bias: &Option<DeviceBuffer>,
    ) -> (TensorId, Option<TensorId>) {
        let w = self.b.external(name, weight);
        let b = bias
            .as_ref()
            .map(|bias| self.b.external(&format!("{name}.bias"), bias));
        (w, b)
    }

    /// `LN(x)` over rows of `width` into a new activation `name.out`.
    pub fn norm(&mut self, name: &str, norm: &Norm, x: TensorId, width: u32) -> Result<TensorId> {
        let y = self.activation(&format!("{name}.out"), width);
        self.norm_into(name, norm, x, y, width)?;
        Ok(y)
    }

    /// `y = LN(x)` over rows of `width`.
    pub fn norm_into(
        &mut self,
        name: &str,
        norm: &Norm,
        x: TensorId,
        y: TensorId,
        width: u32,
    ) -> Result<()> {
        let (weight, bias) = self.bind(name, &norm.weight, &norm.bias);
        let args = ops::layernorm::LayerNormArgs {
            x,
            residual: None,
            sum_out: None,
            weight,
            bias,
            y,
            rows: self.rows,
            hidden: width,
            eps: self.eps,
            dtype: self.dtype,
        };
        ops::layernorm::record(self.b, name, &args)
    }

    /// `x W^T (+ b)` from `k` to `n` features, with `epilogue` fused, into `name.out`.
    pub fn linear(
        &mut self,
        name: &str,
        lin: &Linear,
        x: TensorId,
        kn: (u32, u32),
        epilogue: Epilogue,
    ) -> Result<TensorId> {
        let y = self.activation(&format!("{name}.out"), kn.1);
        self.linear_into(name, lin, x, y, kn, epilogue, None)?;
        Ok(y)
    }

    /// `x W^T (+ b) + residual` into `name.out`: a projection back onto the residual stream.
    pub fn linear_add(
        &mut self,
        name: &str,
        lin: &Linear,
        x: TensorId,
        kn: (u32, u32),
        residual: TensorId,
    ) -> Result<TensorId> {
        let y = self.activation(&format!("{name}.out"), kn.1);
        self.linear_into(name, lin, x, y, kn, Epilogue::Residual, Some(residual))?;
        Ok(y)
    }

    /// `x W^T (+ b)` into `name.out` with RoPE on its Q and K heads: the Wqkv projection
    /// (`matmul::record_rope`).
    pub fn linear_rope(
        &mut self,
        name: &str,
        lin: &Linear,
        x: TensorId,
        (k, n): (u32, u32),
        rope: &ops::matmul::RopeArgs,
    ) -> Result<TensorId> {
        let y = self.activation(&format!("{name}.out"), n);
        if lin.weight.is_split() {
            self.linear_into(name, lin, x, y, (k, n), Epilogue::None, None)?;
            let heads = (rope.n_heads, rope.head_dim);
            let label = format!("{name} rope");
            let (rows, dt) = (self.rows, self.dtype);
            ops::rope::record_freq(
                self.b,
                &label,
                y,
                rope.positions,
                rows,
                heads,
                rope.freq,
                dt,
            )?;
            return Ok(y);
        }
        let args = self.matmul_args(name, lin, 0, x, y, (k, n), Epilogue::None, None);
        ops::matmul::record_rope(self.b, self.choices, name, &args, rope)?;
        Ok(y)
    }

    /// `y = epilogue(x W^T (+ b))`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_into(
        &mut self,
        name: &str,
        lin: &Linear,
        x: TensorId,
        y: TensorId,
        kn: (u32, u32),
        epilogue: Epilogue,
        residual: Option<TensorId>,
    ) -> Result<()> {
        if !lin.weight.is_split() {
            let args = self.matmul_args(name, lin, 0, x, y, kn, epilogue, residual);
            return ops::matmul::record(self.b, self.choices, name, &args);
        }
        let gated = matches!(epilogue, Epilogue::GeGlu(_));
        if gated != (lin.weight.halves == 2) {
            return Err(Error::Unsupported(format!(
                "'{name}' is held in pieces of {} halves, which its {epilogue:?} product \
                 cannot read",
                lin.weight.halves
            )));
        }
        for (i, piece) in lin.weight.pieces.iter().enumerate() {
            let (first, rows) = (piece.first as u32, piece.rows as u32);
            let label = format!("{name}[{first}..{}]", first + rows);
            let args = self.matmul_args(&label, lin, i, x, y, (kn.0, rows), epilogue, residual);
            let cols = OutCols {
                ldy: kn.1,
                col0: first,
            };
            ops::matmul::record_cols(self.b, self.choices, &label, &args, cols)?;
        }
        Ok(())
    }

    /// The matmul of piece `piece` of `lin` (its weight and bias bound under `name`) over
    /// this recorder's rows and precision.
    #[allow(clippy::too_many_arguments)]
    fn matmul_args(
        &mut self,
        name: &str,
        lin: &Linear,
        piece: usize,
        x: TensorId,
        y: TensorId,
        (k, n): (u32, u32),
        epilogue: Epilogue,
        residual: Option<TensorId>,
    ) -> MatmulArgs {
        let w = self.b.external(name, &lin.weight.pieces[piece].buf);
        let bias = lin
            .bias
            .as_ref()
            .and_then(|b| b.pieces.get(piece))
            .map(|b| self.b.external(&format!("{name}.bias"), &b.buf));
        MatmulArgs {
            x,
            w,
            bias,
            residual,
            y,
            rows: self.rows,
            k,
            n,
            dtype: self.dtype,
            epilogue,
            variant: None,
        }
    }
}
