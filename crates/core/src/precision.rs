//! The arithmetic a model runs in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a model's linear layers store their weights and multiply: `float32` is exact (the
/// 1e-5 contract with PyLate); `bfloat16` rounds weights (at load) and activations (on the fly)
/// to bf16 and sums in float32 (AVX512-BF16 where the CPU has it): half the weight memory;
/// `int8` quantizes each weight per output channel when the model
/// is loaded and each activation row on the fly, multiplies in integers (AVX-512 VNNI where
/// the CPU has it) and scales back to float32: about 1/4 of the weight memory and faster, at
/// a measured cost in fidelity (see the README); `float16` stores weights in IEEE half precision
/// and multiplies in it (GPU devices, and the CPU's generic Candle path that mirrors them). On a
/// GPU, `bfloat16` and `float16` are Candle matmuls in that type. Attention, norms, embeddings
/// and the Dense head stay float32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 weights and arithmetic.
    #[default]
    Float32,
    /// bfloat16 weights and products with float32 sums.
    Bfloat16,
    /// int8 weights and products with int32 sums (CPU only).
    Int8,
    /// float16 weights and products (GPU devices; on the CPU, `LATEBIRD_CPU=generic` only).
    Float16,
}

impl Precision {
    /// Every precision, in the order of the docs.
    pub const ALL: [Precision; 4] = [
        Precision::Float32,
        Precision::Bfloat16,
        Precision::Int8,
        Precision::Float16,
    ];

    /// The name used in settings and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bfloat16 => "bfloat16",
            Precision::Int8 => "int8",
            Precision::Float16 => "float16",
        }
    }

    /// The precision called `name`, if any.
    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
