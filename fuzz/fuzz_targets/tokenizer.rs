//! Tokenizer settings and texts.
//!
//! Input: byte 0 = model (bit 0) | mode (bits 1-2).
//! - modes 0, 1, 2: `tokenizer_config.json`, `special_tokens_map.json` or `tokenizer.json`
//!   replaced by the rest of the input; when the model loads, fixed texts are encoded;
//! - mode 3: 8 option bytes, then NUL-separated strings: the `Options` overrides (prefixes,
//!   lengths, expansion, skiplist, batch size) come from them, the remaining strings are
//!   texts, encoded as queries and documents (and pooled) with the otherwise valid model.
//!
//! Option bytes: `[flags, query_length, document_length, pool_factor, skiplist words,
//! batch_size, booleans, unused]`. Flags: bit 0 query_prefix (next string), bit 1
//! document_prefix (next string), bit 2 query_length, bit 3 document_length, bit 4
//! do_query_expansion (booleans bit 0), bit 5 attend_to_expansion_tokens (booleans bit 1),
//! bit 6 skiplist_words (the next `skiplist words` strings), bit 7 lengths times 4 (beyond the
//! 512 positions of the models).
#![no_main]

use latebird::{ColBERT, ErrorKind, InputKind, Options};
use latebird_fuzz::{check_embeddings, check_load_error, exercise, files, model, with_file, Which};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 3] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
];

fn texts_and_options(which: Which, data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let (opts, rest) = data.split_at(8);
    let text = String::from_utf8_lossy(rest);
    let mut strings = text.split('\0').map(str::to_string);
    let flags = opts[0];
    let scale = if flags & 0x80 != 0 { 4 } else { 1 };
    let batch = usize::from(opts[5] % 5);
    let mut options = Options {
        batch_size: batch,
        ..Options::default()
    };
    if flags & 0x01 != 0 {
        options.query_prefix = Some(strings.next().unwrap_or_default());
    }
    if flags & 0x02 != 0 {
        options.document_prefix = Some(strings.next().unwrap_or_default());
    }
    if flags & 0x04 != 0 {
        options.query_length = Some(usize::from(opts[1]) * scale);
    }
    if flags & 0x08 != 0 {
        options.document_length = Some(usize::from(opts[2]) * scale);
    }
    if flags & 0x10 != 0 {
        options.do_query_expansion = Some(opts[6] & 1 != 0);
    }
    if flags & 0x20 != 0 {
        options.attend_to_expansion_tokens = Some(opts[6] & 2 != 0);
    }
    if flags & 0x40 != 0 {
        options.skiplist_words = Some(strings.by_ref().take(usize::from(opts[4] % 8)).collect());
    }
    let custom = flags != 0 || batch == 0;
    let texts: Vec<String> = strings.take(8).collect();
    let pool_factor = usize::from(opts[3] % 6);

    // The default model is loaded once; custom options need a load per execution.
    let loaded;
    let m = if custom {
        match ColBERT::from_files(files(which).clone(), options) {
            Ok(m) => {
                loaded = m;
                &loaded
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Load | ErrorKind::Input),
                    "options gave an internal error: {e:?}"
                );
                return;
            }
        }
    } else {
        model(which)
    };
    for kind in [InputKind::Query, InputKind::Document] {
        for t in &texts {
            match m.tokenize(t, kind) {
                Ok(tok) => {
                    assert_eq!(tok.ids.len(), tok.attention.len());
                    assert_eq!(tok.ids.len(), tok.keep.len());
                }
                Err(e) => assert!(e.kind() != ErrorKind::Internal, "tokenize: {e:?}"),
            }
        }
        // One forward pass per kind keeps executions fast: documents go through
        // encode_pooled (encode_with, then pooling), queries through encode_with.
        let out = if kind == InputKind::Document {
            m.encode_pooled(&texts, kind, batch.max(1), pool_factor, &mut |_| true)
        } else {
            m.encode_with(&texts, kind, batch.max(1), &mut |_| true)
        };
        match out {
            Ok(out) => check_embeddings(m, &out, texts.len()),
            Err(e) => assert!(e.kind() != ErrorKind::Internal, "encode {kind:?}: {e:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let which = Which::from_byte(selector);
    let mode = usize::from(selector >> 1) % 4;
    if mode == 3 {
        texts_and_options(which, rest);
        return;
    }
    match ColBERT::from_files(with_file(which, FILES[mode], rest), Options::default()) {
        Ok(model) => exercise(&model),
        Err(e) => check_load_error(&e),
    }
});
