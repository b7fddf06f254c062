//! The config family: one of a seed model's JSON configs replaced by the input, the rest of
//! the model unchanged, loaded with `ColBERT::from_files` (and used when it loads).
//!
//! Input: byte 0 = model (bit 0) | file index (bits 1..) into `FILES`; the rest is the file.
#![no_main]

use latebird::{ColBERT, Options};
use latebird_fuzz::{check_load_error, exercise, with_file, Which};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 5] = [
    "modules.json",
    "config_sentence_transformers.json",
    "config.json",
    "1_Dense/config.json",
    "sentence_bert_config.json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let which = Which::from_byte(selector);
    let name = FILES[usize::from(selector >> 1) % FILES.len()];
    match ColBERT::from_files(with_file(which, name, rest), Options::default()) {
        Ok(model) => exercise(&model),
        Err(e) => check_load_error(&e),
    }
});
