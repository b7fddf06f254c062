//! The weights reading path: a seed model whose `model.safetensors` or
//! `1_Dense/model.safetensors` is replaced by the input, loaded with `ColBERT::from_files`.
//!
//! Input: byte 0 = model (bit 0) | file (bit 1: 0 backbone, 1 Dense) | header-only (bit 2);
//! the rest is the file. In header-only mode the rest is just the JSON header: the target
//! prefixes its length and appends the real file's data section, so that mutations of the
//! header (shapes, dtypes, offsets, names) stay small inputs.
#![no_main]

use latebird::{ColBERT, Options};
use latebird_fuzz::{check_load_error, exercise, files, with_file, Which};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let which = Which::from_byte(selector);
    let name = if selector & 2 == 0 {
        "model.safetensors"
    } else {
        "1_Dense/model.safetensors"
    };
    let bytes = if selector & 4 != 0 {
        let real = &files(which)[name];
        let header_len = u64::from_le_bytes(real[..8].try_into().expect("8 bytes")) as usize;
        let mut out = Vec::with_capacity(8 + rest.len() + real.len());
        out.extend_from_slice(&(rest.len() as u64).to_le_bytes());
        out.extend_from_slice(rest);
        out.extend_from_slice(&real[8 + header_len..]);
        out
    } else {
        rest.to_vec()
    };
    match ColBERT::from_files(with_file(which, name, &bytes), Options::default()) {
        Ok(model) => exercise(&model),
        Err(e) => check_load_error(&e),
    }
});
