//! The per-text matrix type, borrowed views of matrices from anywhere (numpy, JS buffers)
//! and the checks every function taking a matrix applies. A leaf: it depends on nothing but
//! the error type, so the encoder, scoring and pooling can all build on it.

use crate::error::{Error, Result};

/// One text's token embeddings: a row-major `[rows, dim]` f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Number of token rows.
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// `rows * dim` values, row after row.
    pub data: Vec<f32>,
}

impl Embeddings {
    /// Row `i` as a slice, like slice indexing: it panics when `i >= rows` (use
    /// [`MatrixRef::row`] through [`Embeddings::view`] for a checked look-up).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// A borrowed row-major `[rows, dim]` f32 matrix: token embeddings from any source
/// (an [`Embeddings`], a numpy or JS buffer) without copying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatrixRef<'a> {
    /// Number of rows.
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// `rows * dim` values, row after row (checked by the functions that take the matrix).
    pub data: &'a [f32],
}

impl<'a> MatrixRef<'a> {
    /// A view of `data` as `rows` rows of `dim` values; nothing is checked until it is used.
    pub fn new(rows: usize, dim: usize, data: &'a [f32]) -> Self {
        MatrixRef { rows, dim, data }
    }

    /// Row `i`, or `None` when `i` is out of range or `data` is too short.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        let start = i.checked_mul(self.dim)?;
        let end = start.checked_add(self.dim)?;
        if i >= self.rows {
            return None;
        }
        self.data.get(start..end)
    }
}

impl Embeddings {
    /// A borrowed view for the scoring functions.
    pub fn view(&self) -> MatrixRef<'_> {
        MatrixRef::from(self)
    }
}

impl<'a> From<&'a Embeddings> for MatrixRef<'a> {
    fn from(e: &'a Embeddings) -> Self {
        MatrixRef::new(e.rows, e.dim, &e.data)
    }
}

/// Anything that can be seen as a row-major f32 matrix: [`Embeddings`], [`MatrixRef`] and
/// references to them.
pub trait AsMatrix {
    /// The borrowed matrix view.
    fn as_matrix(&self) -> MatrixRef<'_>;
}

impl AsMatrix for Embeddings {
    fn as_matrix(&self) -> MatrixRef<'_> {
        MatrixRef::from(self)
    }
}

impl AsMatrix for MatrixRef<'_> {
    fn as_matrix(&self) -> MatrixRef<'_> {
        *self
    }
}

impl<T: AsMatrix + ?Sized> AsMatrix for &T {
    fn as_matrix(&self) -> MatrixRef<'_> {
        (**self).as_matrix()
    }
}

/// Checks one matrix on its own: non-zero width, at least one row, consistent length, finite.
pub(crate) fn check_matrix(m: MatrixRef<'_>, name: impl Fn() -> String) -> Result<()> {
    check_shape(m, &name)?;
    if m.rows == 0 {
        return Err(Error::argument(
            name(),
            "has 0 rows; expected at least one token row",
        ));
    }
    check_finite(m, name)
}

/// Width, length and overflow checks (zero rows allowed).
pub(crate) fn check_shape(m: MatrixRef<'_>, name: &impl Fn() -> String) -> Result<()> {
    if m.dim == 0 {
        return Err(Error::argument(name(), "has dim 0; expected at least 1"));
    }
    match m.rows.checked_mul(m.dim) {
        Some(len) if len == m.data.len() => Ok(()),
        Some(len) => Err(Error::argument(
            name(),
            format!(
                "holds {} values; expected rows * dim = {} * {} = {len}",
                m.data.len(),
                m.rows,
                m.dim
            ),
        )),
        None => Err(Error::argument(
            name(),
            format!("rows * dim = {} * {} overflows", m.rows, m.dim),
        )),
    }
}

/// Rejects NaN and infinite values, naming the first one's row and column.
pub(crate) fn check_finite(m: MatrixRef<'_>, name: impl Fn() -> String) -> Result<()> {
    if let Some(pos) = m.data.iter().position(|v| !v.is_finite()) {
        let value = m.data.get(pos).copied().unwrap_or(f32::NAN);
        return Err(Error::argument(
            name(),
            format!(
                "value at row {}, column {} is {value}; expected finite values",
                pos / m.dim,
                pos % m.dim
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_dim(
    m: MatrixRef<'_>,
    dim: usize,
    name: impl Fn() -> String,
    reference: &str,
) -> Result<()> {
    if m.dim != dim {
        return Err(Error::argument(
            name(),
            format!(
                "has dim {} but {reference} has dim {dim}; expected equal widths",
                m.dim
            ),
        ));
    }
    Ok(())
}
