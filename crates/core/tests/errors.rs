//! Bad inputs: each broken model folder, bad argument or odd text gives the right error
//! kind with a message naming the file or argument and what was expected, never a panic.
//! Weird but valid texts must encode.

#[macro_use]
mod common;

use common::{model_dir, Fixture};
use latebird::{ColBERT, Error, InputKind, Options};
use serde_json::{json, Value};

const SMALL: &str = "modernbert-v4";
const BERT: &str = "minilm-colbert";

/// Loads the fixture from a folder and from its files' bytes; both must fail alike.
macro_rules! assert_load_error {
    ($fixture:expr, $options:expr, $pattern:pat, [$($needle:expr),* $(,)?]) => {{
        let fixture: &Fixture = &$fixture;
        let options: Options = $options;
        assert_error!(fixture.load_folder(options.clone()), $pattern, [$($needle),*]);
        assert_error!(fixture.load_files(options), $pattern, [$($needle),*]);
    }};
}

fn small() -> Fixture {
    Fixture::new(SMALL)
}

fn opts() -> Options {
    Options::default()
}

// ---------------------------------------------------------------- missing files

#[test]
fn missing_files() {
    for (file, hint) in [
        ("modules.json", "Transformer"),
        ("config.json", "config"),
        ("model.safetensors", "weights"),
        ("tokenizer.json", "tokenizer"),
        ("1_Dense/config.json", "Dense"),
        ("1_Dense/model.safetensors", "Dense"),
    ] {
        let mut f = small();
        f.remove(file);
        assert_load_error!(f, opts(), Error::MissingFile { .. }, [file, hint]);
    }
}

#[test]
fn pytorch_bin_instead_of_safetensors() {
    for (file, bin) in [
        ("model.safetensors", "pytorch_model.bin"),
        ("1_Dense/model.safetensors", "1_Dense/pytorch_model.bin"),
    ] {
        let mut f = small();
        f.remove(file)
            .set(bin, b"PK\x03\x04 not really a pickle".to_vec());
        assert_load_error!(
            f,
            opts(),
            Error::MissingFile { .. },
            [file, "pytorch_model.bin", "expected model.safetensors"]
        );
    }
}

#[test]
fn optional_files_may_be_missing() {
    // PyLate's defaults apply without config_sentence_transformers.json; the mask token is
    // then found in tokenizer.json; sentence_bert_config.json is never read.
    let mut f = small();
    f.remove("config_sentence_transformers.json")
        .remove("sentence_bert_config.json")
        .remove("special_tokens_map.json")
        .remove("tokenizer_config.json");
    let model = f.load_files(opts()).expect("optional files are optional");
    assert_eq!(model.settings(), &latebird::ColbertSettings::default());
    let out = model.encode(&["hello"], InputKind::Query).unwrap();
    assert_eq!(out[0].rows, 32);
}

// ---------------------------------------------------------------- malformed JSON

#[test]
fn malformed_json() {
    for file in [
        "modules.json",
        "config.json",
        "config_sentence_transformers.json",
        "1_Dense/config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        let mut f = small();
        f.set(file, b"{\"a\": 1,, }".to_vec());
        assert_load_error!(
            f,
            opts(),
            Error::InvalidConfig { .. },
            [file, "not valid JSON"]
        );
    }
    let mut f = small();
    f.set("tokenizer.json", b"{\"version\": ".to_vec());
    assert_load_error!(
        f,
        opts(),
        Error::InvalidTokenizer { .. },
        ["tokenizer.json", "not a valid tokenizers file"]
    );
}

#[test]
fn json_of_the_wrong_shape() {
    let mut f = small();
    f.set("modules.json", b"{}".to_vec());
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["modules.json", "expected a JSON array", "an object"]
    );
    for file in [
        "config.json",
        "config_sentence_transformers.json",
        "1_Dense/config.json",
    ] {
        let mut f = small();
        f.set(file, b"[1, 2]".to_vec());
        assert_load_error!(
            f,
            opts(),
            Error::InvalidConfig { .. },
            [file, "expected a JSON object", "an array"]
        );
    }
}

#[test]
fn wrong_json_types() {
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "config_sentence_transformers.json",
            "query_length",
            json!("32"),
            "a non-negative integer",
        ),
        (
            "config_sentence_transformers.json",
            "document_length",
            json!(-5),
            "a non-negative integer",
        ),
        (
            "config_sentence_transformers.json",
            "query_prefix",
            json!(7),
            "a string",
        ),
        (
            "config_sentence_transformers.json",
            "do_query_expansion",
            json!("yes"),
            "true or false",
        ),
        (
            "config_sentence_transformers.json",
            "skiplist_words",
            json!("!?"),
            "a list of strings",
        ),
        (
            "config_sentence_transformers.json",
            "skiplist_words",
            json!(["!", 3]),
            "a list of strings",
        ),
        (
            "1_Dense/config.json",
            "in_features",
            json!(-1),
            "a non-negative integer",
        ),
        (
            "1_Dense/config.json",
            "out_features",
            json!(32.5),
            "a non-negative integer",
        ),
        (
            "1_Dense/config.json",
            "bias",
            json!("false"),
            "true or false",
        ),
        (
            "config.json",
            "hidden_size",
            json!("64"),
            "a non-negative integer",
        ),
        ("config.json", "norm_eps", json!("1e-5"), "a number"),
        (
            "config.json",
            "architectures",
            json!("ModernBertModel"),
            "a list of strings",
        ),
    ];
    for (file, key, value, expected) in cases {
        let mut f = small();
        f.set_key(file, key, value);
        assert_load_error!(
            f,
            opts(),
            Error::InvalidConfig { .. },
            [file, &format!("`{key}`"), expected]
        );
    }
    // A required key that is missing.
    let mut f = small();
    f.remove_key("1_Dense/config.json", "out_features");
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["1_Dense/config.json", "`out_features` is missing"]
    );
    let mut f = small();
    f.remove_key("config.json", "num_hidden_layers");
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["config.json", "`num_hidden_layers` is missing"]
    );
}

// ---------------------------------------------------------------- architectures

#[test]
fn unsupported_architecture() {
    let mut f = small();
    f.set_key("config.json", "architectures", json!(["GPT2Model"]))
        .set_key("config.json", "model_type", json!("gpt2"));
    assert_load_error!(
        f,
        opts(),
        Error::UnsupportedArchitecture { .. },
        ["config.json", "GPT2Model", "BertModel", "ModernBertModel"]
    );

    let mut f = small();
    f.remove_key("config.json", "architectures")
        .remove_key("config.json", "model_type");
    assert_load_error!(
        f,
        opts(),
        Error::UnsupportedArchitecture { .. },
        [
            "config.json",
            "neither `architectures` nor `model_type`",
            "BertModel"
        ]
    );

    // model_type alone is enough.
    let mut f = small();
    f.remove_key("config.json", "architectures");
    f.load_files(opts())
        .expect("model_type alone names the family");
}

// ---------------------------------------------------------------- weights

#[test]
fn broken_safetensors_files() {
    for file in ["model.safetensors", "1_Dense/model.safetensors"] {
        let good = small().get(file).to_vec();
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let mut garbage = Vec::with_capacity(4096);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..4096 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            garbage.push(state as u8);
        }
        for (what, bytes) in [
            ("cut in the header", good[..8 + header_len / 2].to_vec()),
            ("cut in the data", good[..good.len() - 7].to_vec()),
            ("cut in the length", good[..5].to_vec()),
            ("garbage", garbage),
            ("empty", Vec::new()),
        ] {
            let mut f = small();
            f.set(file, bytes);
            let folder = f.load_folder(opts());
            let files = f.load_files(opts());
            for result in [folder, files] {
                match result {
                    Ok(_) => panic!("{file} {what}: loaded"),
                    Err(e) => {
                        let message = e.to_string();
                        assert!(
                            matches!(e, Error::InvalidWeights { .. }),
                            "{file} {what}: {e:?}"
                        );
                        assert!(message.contains(file), "{file} {what}: {message}");
                        assert!(
                            message.contains("not a valid safetensors file"),
                            "{file} {what}: {message}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn missing_tensor() {
    let mut f = small();
    f.edit_tensors("model.safetensors", |t| {
        t.remove("layers.3.mlp.Wi.weight").unwrap();
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        [
            "model.safetensors",
            "layers.3.mlp.Wi.weight",
            "missing",
            "expected shape"
        ]
    );

    let mut f = small();
    f.edit_tensors("1_Dense/model.safetensors", |t| {
        t.remove("linear.weight").unwrap();
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        ["1_Dense/model.safetensors", "linear.weight", "missing"]
    );

    // A Dense config that asks for a bias the file lacks.
    let mut f = small();
    f.set_key("1_Dense/config.json", "bias", json!(true));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        ["1_Dense/model.safetensors", "linear.bias", "missing"]
    );

    // The probe tensor (token embeddings) is absent: no prefix fits.
    let mut f = small();
    f.edit_tensors("model.safetensors", |t| {
        t.remove("embeddings.tok_embeddings.weight").unwrap();
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        ["model.safetensors", "embeddings.tok_embeddings.weight"]
    );
}

#[test]
fn tensor_of_the_wrong_shape() {
    // hidden_size changed in config.json: the embeddings no longer fit.
    let mut f = small();
    f.set_key("config.json", "hidden_size", json!(128));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        [
            "model.safetensors",
            "has shape [1024, 64]",
            "expected [1024, 128]"
        ]
    );

    // One tensor reshaped in the file.
    let mut f = small();
    f.edit_tensors("1_Dense/model.safetensors", |t| {
        let w = t.get_mut("linear.weight").unwrap();
        w.shape = vec![64, 32];
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        [
            "1_Dense/model.safetensors",
            "linear.weight",
            "[64, 32]",
            "expected [32, 64]"
        ]
    );
}

#[test]
fn integer_tensor() {
    let mut f = small();
    f.edit_tensors("model.safetensors", |t| {
        let w = t.get_mut("final_norm.weight").unwrap();
        // F16 -> I16 keeps the byte count.
        w.dtype = safetensors::Dtype::I16;
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        [
            "model.safetensors",
            "final_norm.weight",
            "I16",
            "expected F32, F16 or BF16"
        ]
    );
}

#[test]
fn nan_and_infinite_weights() {
    for (file, tensor) in [
        ("model.safetensors", "layers.2.attn.Wqkv.weight"),
        // Read row by row at encode time, but checked whole at load.
        ("model.safetensors", "embeddings.tok_embeddings.weight"),
        ("1_Dense/model.safetensors", "linear.weight"),
    ] {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut f = small();
            f.edit_tensors(file, |t| {
                let w = t.get_mut(tensor).unwrap();
                match w.dtype {
                    safetensors::Dtype::F16 => {
                        w.data[10..12].copy_from_slice(&half::f16::from_f32(bad).to_le_bytes())
                    }
                    safetensors::Dtype::F32 => w.data[12..16].copy_from_slice(&bad.to_le_bytes()),
                    other => panic!("unexpected dtype {other:?}"),
                }
            });
            assert_load_error!(
                f,
                opts(),
                Error::InvalidWeights { .. },
                [file, tensor, "NaN or infinite", "expected finite"]
            );
        }
    }
}

// ---------------------------------------------------------------- Dense chain

#[test]
fn dense_in_features_mismatch() {
    let mut f = small();
    f.set_key("1_Dense/config.json", "in_features", json!(65));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["1_Dense/config.json", "in_features 65", "hidden_size 64"]
    );
}

/// A copy of the small model with a second Dense layer `2_Dense` (a copy of the first).
fn two_dense() -> Fixture {
    let mut f = small();
    let config = f.get("1_Dense/config.json").to_vec();
    let weights = f.get("1_Dense/model.safetensors").to_vec();
    f.set("2_Dense/config.json", config)
        .set("2_Dense/model.safetensors", weights)
        .edit_json("modules.json", |v| {
            v.as_array_mut().unwrap().push(json!({
                "idx": 2, "name": "2", "path": "2_Dense", "type": "pylate.models.Dense.Dense"
            }));
        });
    f
}

#[test]
fn dense_chain_mismatch() {
    // 1_Dense maps 64 -> 32, 2_Dense still expects 64.
    let f = two_dense();
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        [
            "2_Dense/config.json",
            "in_features 64",
            "previous Dense's out_features 32"
        ]
    );

    // Made consistent (32 -> 32 square weights), the chain loads and gives 32-wide rows.
    let mut f = two_dense();
    f.set_key("2_Dense/config.json", "in_features", json!(32))
        .edit_tensors("2_Dense/model.safetensors", |t| {
            let w = t.get_mut("linear.weight").unwrap();
            w.shape = vec![32, 32];
            w.data.truncate(32 * 32 * 4);
        });
    let model = f.load_files(opts()).expect("a consistent chain loads");
    assert_eq!(model.dim(), 32);
}

#[test]
fn dense_of_width_zero() {
    let mut f = small();
    f.set_key("1_Dense/config.json", "out_features", json!(0))
        .edit_tensors("1_Dense/model.safetensors", |t| {
            let w = t.get_mut("linear.weight").unwrap();
            w.shape = vec![0, 64];
            w.data.clear();
        });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        [
            "1_Dense/config.json",
            "`out_features` is 0",
            "expected at least 1"
        ]
    );
}

#[test]
fn negative_layer_norm_eps() {
    let mut f = small();
    f.set_key("config.json", "norm_eps", json!(-1.0));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        [
            "config.json",
            "`norm_eps` is -1",
            "expected a small non-negative number"
        ]
    );
}

#[test]
fn unsupported_activation() {
    let mut f = small();
    f.set_key(
        "1_Dense/config.json",
        "activation_function",
        json!("torch.nn.modules.activation.Softmax"),
    );
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        [
            "1_Dense/config.json",
            "Softmax",
            "activation_function",
            "Identity"
        ]
    );

    let mut f = small();
    f.set_key("config.json", "hidden_activation", json!("swish"));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["config.json", "swish", "expected gelu"]
    );
}

#[test]
fn unsupported_modules() {
    let mut f = small();
    f.edit_json("modules.json", |v| {
        v.as_array_mut().unwrap().push(json!({
            "idx": 2, "name": "2", "path": "2_LSTM", "type": "sentence_transformers.models.LSTM"
        }));
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["modules.json", "unsupported module type", "LSTM", "Dense"]
    );

    let mut f = small();
    f.edit_json("modules.json", |v| {
        v.as_array_mut().unwrap().remove(0);
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["modules.json", "Transformer"]
    );

    let mut f = small();
    f.set("modules.json", b"[]".to_vec());
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["modules.json", "no Transformer module"]
    );

    let mut f = small();
    f.set("modules.json", b"[\"0\"]".to_vec());
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["modules.json", "entry 0", "expected an object"]
    );

    // Pooling and Normalize modules are ignored.
    let mut f = small();
    f.edit_json("modules.json", |v| {
        v.as_array_mut().unwrap().push(json!({
            "idx": 2, "name": "2", "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize"
        }));
    });
    f.load_files(opts()).expect("Normalize is ignored");
}

// ---------------------------------------------------------------- tokenizer

#[test]
fn tokenizer_lacking_the_prefix_token() {
    let options = Options {
        query_prefix: Some("[X] ".into()),
        ..opts()
    };
    assert_load_error!(
        small(),
        options,
        Error::InvalidTokenizer { .. },
        ["tokenizer.json", "query_prefix", "\"[X] \"", "added token"]
    );
    // The same from the model's own config.
    let mut f = small();
    f.set_key(
        "config_sentence_transformers.json",
        "document_prefix",
        json!("[Doc] "),
    );
    assert_load_error!(
        f,
        opts(),
        Error::InvalidTokenizer { .. },
        ["tokenizer.json", "document_prefix", "\"[Doc] \""]
    );
    // An empty prefix means no prefix token.
    let options = Options {
        query_prefix: Some(String::new()),
        ..opts()
    };
    let model = small().load_files(options).expect("empty prefix");
    let with = small().load_files(opts()).unwrap();
    let a = model.tokenize("hello", InputKind::Query).unwrap();
    let b = with.tokenize("hello", InputKind::Query).unwrap();
    // [CLS] text [SEP] MASK... versus [CLS] [Q] text [SEP] MASK..., both 32 long.
    assert_eq!(a.ids.len(), b.ids.len());
    assert_eq!(a.ids[0], b.ids[0]);
    assert_eq!(a.ids[1..a.ids.len() - 1], b.ids[2..]);
}

/// The small model with its mask token renamed away and every special-token file
/// stripped of mask, EOS and PAD.
fn without_mask() -> Fixture {
    let mut f = small();
    f.edit_json("tokenizer.json", |v| {
        for token in v["added_tokens"].as_array_mut().unwrap() {
            if token["content"] == "[MASK]" {
                token["content"] = json!("[HIDDEN]");
            }
        }
    });
    for file in ["tokenizer_config.json", "special_tokens_map.json"] {
        for key in ["mask_token", "pad_token", "eos_token"] {
            f.remove_key(file, key);
        }
    }
    f.edit_json("tokenizer_config.json", |v| {
        for token in v["added_tokens_decoder"]
            .as_object_mut()
            .unwrap()
            .values_mut()
        {
            if token["content"] == "[MASK]" {
                token["content"] = json!("[HIDDEN]");
            }
        }
    });
    f
}

#[test]
fn tokenizer_lacking_a_mask_token() {
    let f = without_mask();
    assert_load_error!(
        f,
        opts(),
        Error::InvalidTokenizer { .. },
        ["tokenizer.json", "no mask token", "mask_token"]
    );
    // The fallbacks: EOS, then PAD.
    for (key, token, id) in [("eos_token", "[SEP]", 995), ("pad_token", "[PAD]", 996)] {
        let mut f = without_mask();
        f.set_key("tokenizer_config.json", key, json!(token));
        let model = f.load_files(opts()).expect("fallback token");
        let t = model.tokenize("hi", InputKind::Query).unwrap();
        assert_eq!(*t.ids.last().unwrap(), id, "{key}");
    }
}

#[test]
fn tokenizer_ids_beyond_the_embedding_matrix() {
    let mut f = small();
    // (tokenizers renumbers added tokens that the model's vocabulary lacks, so the far id
    // goes into the vocabulary itself.)
    f.edit_json("tokenizer.json", |v| {
        v["model"]["vocab"]
            .as_object_mut()
            .unwrap()
            .insert("far".into(), json!(5000));
    });
    assert_load_error!(
        f,
        opts(),
        Error::InvalidTokenizer { .. },
        ["tokenizer.json", "5000", "1024 rows"]
    );
}

// ---------------------------------------------------------------- lengths and batch sizes

#[test]
fn bad_lengths() {
    for name in ["query_length", "document_length"] {
        for length in [0usize, 1, 3] {
            let mut options = opts();
            match name {
                "query_length" => options.query_length = Some(length),
                _ => options.document_length = Some(length),
            }
            assert_load_error!(
                small(),
                options,
                Error::InvalidArgument { .. },
                [
                    name,
                    &format!("{length} leaves no room"),
                    "expected at least 4"
                ]
            );
            // The same value in the model's config: the file is at fault.
            let mut f = small();
            f.set_key("config_sentence_transformers.json", name, json!(length));
            assert_load_error!(
                f,
                opts(),
                Error::InvalidConfig { .. },
                [
                    "config_sentence_transformers.json",
                    &format!("`{name}` {length} leaves no room"),
                    "expected at least 4"
                ]
            );
        }
        let mut options = opts();
        match name {
            "query_length" => options.query_length = Some(513),
            _ => options.document_length = Some(513),
        }
        assert_load_error!(
            small(),
            options,
            Error::InvalidArgument { .. },
            [name, "513", "max_position_embeddings 512"]
        );
        let mut f = small();
        f.set_key("config_sentence_transformers.json", name, json!(600));
        assert_load_error!(
            f,
            opts(),
            Error::InvalidConfig { .. },
            [
                "config_sentence_transformers.json",
                &format!("`{name}` 600"),
                "max_position_embeddings 512"
            ]
        );
    }
    // A backbone too short for PyLate's defaults (no config_sentence_transformers.json).
    let mut f = small();
    f.remove("config_sentence_transformers.json").set_key(
        "config.json",
        "max_position_embeddings",
        json!(100),
    );
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        [
            "`document_length` 180",
            "max_position_embeddings 100",
            "PyLate's default"
        ]
    );
    // The smallest length that leaves room for one text token works.
    let options = Options {
        query_length: Some(4),
        document_length: Some(4),
        ..opts()
    };
    let model = small().load_files(options).unwrap();
    let q = model
        .encode(&["many words here"], InputKind::Query)
        .unwrap();
    assert_eq!(q[0].rows, 4);
    let d = model
        .encode(&["many words here"], InputKind::Document)
        .unwrap();
    assert_eq!(d[0].rows, 4);
}

#[test]
fn zero_batch_size() {
    let options = Options {
        batch_size: 0,
        ..opts()
    };
    assert_load_error!(
        small(),
        options,
        Error::InvalidArgument { .. },
        ["batch_size", "expected at least 1"]
    );
    let model = small().load_files(opts()).unwrap();
    assert_error!(
        model.encode_with(&["a"], InputKind::Query, 0, &mut |_| true),
        Error::InvalidArgument { .. },
        ["batch_size", "expected at least 1"]
    );
}

// ---------------------------------------------------------------- where the model comes from

#[test]
fn path_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-model");
    assert_error!(
        ColBERT::from_folder(&path, opts()),
        Error::Io { .. },
        ["no-such-model", "could not be read"]
    );
}

#[test]
fn path_that_is_a_file() {
    let path = model_dir(SMALL).join("config.json");
    assert_error!(
        ColBERT::from_folder(&path, opts()),
        Error::InvalidArgument { .. },
        [
            "path",
            "config.json",
            "not a directory",
            "expected a PyLate model folder"
        ]
    );
}

#[test]
fn empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    assert_error!(
        ColBERT::from_folder(dir.path(), opts()),
        Error::MissingFile { .. },
        ["modules.json"]
    );
}

#[test]
fn from_files_bad_maps() {
    let empty: Vec<(String, Vec<u8>)> = Vec::new();
    assert_error!(
        ColBERT::from_files(empty, opts()),
        Error::InvalidArgument { .. },
        ["files", "no files given", "modules.json"]
    );
    let f = small();
    let mut twice: Vec<(String, Vec<u8>)> = f.files.clone().into_iter().collect();
    twice.push(("./config.json".to_string(), f.get("config.json").to_vec()));
    assert_error!(
        ColBERT::from_files(twice, opts()),
        Error::InvalidArgument { .. },
        ["files", "config.json", "twice"]
    );
    let mut nameless: Vec<(String, Vec<u8>)> = f.files.clone().into_iter().collect();
    nameless.push(("/".to_string(), Vec::new()));
    assert_error!(
        ColBERT::from_files(nameless, opts()),
        Error::InvalidArgument { .. },
        ["files", "empty"]
    );
}

#[test]
fn from_files_matches_from_folder() {
    let texts = [
        "late interaction",
        "ColBERT scores with MaxSim, token by token.",
        "",
    ];
    for name in [SMALL, BERT] {
        let folder = ColBERT::from_folder(model_dir(name), opts()).unwrap();
        let f = Fixture::new(name);
        let files = f.load_files(opts()).unwrap();
        // Names under one top-level folder, Windows separators and ./ prefixes.
        let nested = ColBERT::from_files(
            f.files
                .iter()
                .map(|(k, v)| (format!("my-model/{k}"), v.clone())),
            opts(),
        )
        .unwrap();
        let windows = ColBERT::from_files(
            f.files
                .iter()
                .map(|(k, v)| (format!(".\\{}", k.replace('/', "\\")), v.clone())),
            opts(),
        )
        .unwrap();
        for kind in [InputKind::Query, InputKind::Document] {
            let expected = folder.encode(&texts, kind).unwrap();
            for model in [&files, &nested, &windows] {
                assert_eq!(model.encode(&texts, kind).unwrap(), expected, "{name}");
            }
        }
        assert_eq!(files.settings(), folder.settings());
    }
}

// ---------------------------------------------------------------- BERT specifics

#[test]
fn bert_config_errors() {
    let base = Fixture::new(BERT);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "hidden_size",
            json!(383),
            "not a multiple of num_attention_heads",
        ),
        (
            "num_attention_heads",
            json!(0),
            "not a multiple of num_attention_heads 0",
        ),
        (
            "position_embedding_type",
            json!("relative_key"),
            "expected \"absolute\"",
        ),
        ("hidden_act", json!("swish"), "expected gelu"),
        ("type_vocab_size", json!(0), "expected at least 1"),
    ];
    for (key, value, expected) in cases {
        let mut f = base.clone();
        f.set_key("config.json", key, value);
        assert_error!(
            f.load_files(opts()),
            Error::InvalidConfig { .. },
            ["config.json", expected]
        );
    }
    // A shape that no longer fits the weights.
    let mut f = base.clone();
    f.set_key("config.json", "intermediate_size", json!(1000));
    assert_error!(
        f.load_files(opts()),
        Error::InvalidWeights { .. },
        ["model.safetensors", "expected [1000, 384]"]
    );
    let mut f = base.clone();
    f.set_key("config.json", "max_position_embeddings", json!(1024));
    assert_error!(
        f.load_files(opts()),
        Error::InvalidWeights { .. },
        [
            "model.safetensors",
            "position_embeddings",
            "expected [1024, 384]"
        ]
    );
}

#[test]
fn bert_weights_errors() {
    let base = Fixture::new(BERT);
    // Prefixed names (`bert.`) and legacy LayerNorm names (gamma/beta) load.
    let mut f = base.clone();
    f.edit_tensors("model.safetensors", |t| {
        let old = std::mem::take(t);
        for (name, tensor) in old {
            let name = name
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            t.insert(format!("bert.{name}"), tensor);
        }
    });
    let renamed = f.load_files(opts()).expect("bert. prefix and gamma/beta");
    let plain = base.load_files(opts()).unwrap();
    let text = ["a short document about birds"];
    assert_eq!(
        renamed.encode(&text, InputKind::Document).unwrap(),
        plain.encode(&text, InputKind::Document).unwrap()
    );

    // A tensor missing.
    let mut f = base.clone();
    f.edit_tensors("model.safetensors", |t| {
        t.remove("encoder.layer.5.output.LayerNorm.weight").unwrap();
    });
    assert_error!(
        f.load_files(opts()),
        Error::InvalidWeights { .. },
        [
            "model.safetensors",
            "encoder.layer.5.output.LayerNorm.weight",
            "missing"
        ]
    );
    // Truncated in the data, from disk.
    let mut f = base.clone();
    let cut = base.get("model.safetensors").len() / 2;
    let bytes = base.get("model.safetensors")[..cut].to_vec();
    f.set("model.safetensors", bytes);
    assert_error!(
        f.load_folder(opts()),
        Error::InvalidWeights { .. },
        ["model.safetensors", "not a valid safetensors file"]
    );
}

#[test]
fn bert_tokenizer_without_mask() {
    let mut f = Fixture::new(BERT);
    f.edit_json("tokenizer.json", |v| {
        for token in v["added_tokens"].as_array_mut().unwrap() {
            if token["content"] == "[MASK]" {
                token["content"] = json!("[HIDDEN]");
            }
        }
        let vocab = v["model"]["vocab"].as_object_mut().unwrap();
        if let Some(id) = vocab.remove("[MASK]") {
            vocab.insert("[HIDDEN]".into(), id);
        }
    });
    for file in ["tokenizer_config.json", "special_tokens_map.json"] {
        for key in ["mask_token", "pad_token", "eos_token"] {
            f.remove_key(file, key);
        }
    }
    assert_error!(
        f.load_files(opts()),
        Error::InvalidTokenizer { .. },
        ["tokenizer.json", "no mask token"]
    );
}

// ---------------------------------------------------------------- encoding

#[test]
fn cancellation() {
    let model = small().load_files(opts()).unwrap();
    let texts: Vec<String> = (0..10).map(|i| format!("text number {i}")).collect();
    let mut calls = Vec::new();
    let result = model.encode_with(&texts, InputKind::Document, 3, &mut |done| {
        calls.push(done);
        done < 6
    });
    assert_error!(result, Error::Cancelled, ["cancelled"]);
    assert_eq!(calls, vec![3, 6]);

    let mut calls = Vec::new();
    let out = model
        .encode_with(&texts, InputKind::Document, 3, &mut |done| {
            calls.push(done);
            true
        })
        .unwrap();
    assert_eq!(out.len(), 10);
    assert_eq!(calls, vec![3, 6, 9, 10]);
}

#[test]
fn empty_input_list() {
    let model = small().load_files(opts()).unwrap();
    let none: [&str; 0] = [];
    for kind in [InputKind::Query, InputKind::Document] {
        assert!(model.encode(&none, kind).unwrap().is_empty());
        let mut called = false;
        let out = model
            .encode_with(&none, kind, 4, &mut |_| {
                called = true;
                true
            })
            .unwrap();
        assert!(out.is_empty());
        assert!(!called);
    }
}

fn check_rows(out: &latebird::Embeddings, what: &str) {
    assert_eq!(out.data.len(), out.rows * out.dim, "{what}");
    for r in 0..out.rows {
        let norm: f32 = out.row(r).iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            out.row(r).iter().all(|x| x.is_finite()) && (norm - 1.0).abs() < 1e-4,
            "{what}: row {r} has norm {norm}"
        );
    }
}

#[test]
fn weird_but_valid_texts() {
    let long = vec!["word"; 10_000].join(" ");
    let texts: Vec<String> = vec![
        String::new(),
        "   \t\n  ".into(),
        "\u{3000}\u{a0}\u{1c}".into(),
        long,
        "nul\0in\0the\0middle".into(),
        "\0".into(),
        "\u{301}".into(),
        "\u{301}\u{302}\u{303} a\u{301}".into(),
        "!!!...,,,???".into(),
        "! . , ? ; : - ( ) [ ] { }".into(),
        "\u{1F600}\u{1F426} emoji".into(),
        "\u{FFFF}\u{FEFF}\u{200B}".into(),
        "مرحبا 你好 שלום".into(),
    ];
    for name in [SMALL, BERT] {
        let model = ColBERT::from_folder(model_dir(name), opts()).unwrap();
        let settings = model.settings().clone();
        let queries = model.encode(&texts, InputKind::Query).unwrap();
        let documents = model.encode(&texts, InputKind::Document).unwrap();
        assert_eq!(queries.len(), texts.len());
        assert_eq!(documents.len(), texts.len());
        for (i, text) in texts.iter().enumerate() {
            let what = format!(
                "{name} text {i} ({:?})",
                text.chars().take(20).collect::<String>()
            );
            let q = &queries[i];
            assert_eq!(q.rows, settings.query_length, "{what}: query rows");
            assert_eq!(q.dim, model.dim());
            check_rows(q, &what);

            let d = &documents[i];
            let tokens = model.tokenize(text, InputKind::Document).unwrap();
            // PyLate keeps attended rows whose id is not in the skiplist: at least
            // [CLS], the prefix and [SEP], whatever the text.
            assert_eq!(d.rows, tokens.kept_rows(), "{what}: document rows");
            assert!(d.rows >= 3, "{what}: only {} document rows", d.rows);
            assert!(d.rows <= settings.document_length, "{what}");
            check_rows(d, &what);
            // Encoded alone gives the same.
            let alone = model.encode(&[text], InputKind::Document).unwrap();
            assert_eq!(alone[0].rows, d.rows, "{what}");
        }
        // Empty and whitespace-only texts tokenize alike (Python's str.strip()).
        assert_eq!(
            model.tokenize("", InputKind::Document).unwrap(),
            model.tokenize(" \t\n ", InputKind::Document).unwrap()
        );
        // Only skiplist punctuation: the text rows are all dropped, the specials stay.
        // (A BPE tokenizer merges runs such as "..." into tokens that are not skiplist
        // words, and PyLate keeps those rows; WordPiece splits every mark.)
        let empty = model.tokenize("", InputKind::Document).unwrap();
        assert_eq!(empty.kept_rows(), 3, "{name}: [CLS], prefix, [SEP]");
        let punct = model.tokenize("!", InputKind::Document).unwrap();
        assert_eq!(punct.ids.len(), 4, "{name}");
        assert_eq!(punct.kept_rows(), 3, "{name}");
        if name == BERT {
            let punct = model.tokenize("!!!...,,,???", InputKind::Document).unwrap();
            assert_eq!(punct.ids.len(), 15, "{name}");
            assert_eq!(punct.kept_rows(), 3, "{name}");
        }
        // The very long text is cut at document_length.
        let long = model.tokenize(&texts[3], InputKind::Document).unwrap();
        assert_eq!(long.ids.len(), settings.document_length, "{name}");
    }
}

#[test]
fn texts_that_tokenize_to_nothing() {
    // A tokenizer without special tokens and no prefixes: an empty text has no ids at all.
    let mut f = small();
    f.edit_json("tokenizer.json", |v| v["post_processor"] = Value::Null);
    for expansion in [true, false] {
        let options = Options {
            query_prefix: Some(String::new()),
            document_prefix: Some(String::new()),
            do_query_expansion: Some(expansion),
            ..opts()
        };
        let model = f.load_files(options).unwrap();
        for kind in [InputKind::Query, InputKind::Document] {
            let expected_rows = if kind == InputKind::Query && expansion {
                32
            } else {
                0
            };
            let out = model.encode(&["", " "], kind).unwrap();
            assert_eq!(out.len(), 2);
            assert!(out.iter().all(|e| e.rows == expected_rows && e.dim == 32));
            let mixed = model.encode(&["", "hello there"], kind).unwrap();
            assert_eq!(mixed[0].rows, expected_rows);
            assert!(mixed[1].rows > 0);
        }
    }
}

#[test]
fn queries_without_expansion() {
    let options = Options {
        do_query_expansion: Some(false),
        ..opts()
    };
    let model = small().load_files(options).unwrap();
    let out = model
        .encode(&["", "one two three four", "!"], InputKind::Query)
        .unwrap();
    for (i, text) in ["", "one two three four", "!"].iter().enumerate() {
        let t = model.tokenize(text, InputKind::Query).unwrap();
        assert_eq!(out[i].rows, t.ids.len());
        assert!(t.attention.iter().all(|&a| a == 1));
        check_rows(&out[i], text);
    }
}

// ---------------------------------------------------------------- absurd numbers in configs

/// A config integer that would size an allocation (layers, positions, widths, windows) is
/// checked against the weights or a bound before anything is allocated from it: the load
/// fails with an error naming the key, never an allocation failure that aborts the process.
#[test]
fn absurd_config_integers_are_errors_not_aborts() {
    let huge = json!(1_000_000_000u64);
    let beyond = json!(u64::MAX);
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            SMALL,
            "num_hidden_layers",
            huge.clone(),
            "at most 268435456",
        ),
        (
            SMALL,
            "num_hidden_layers",
            json!(100_000_000),
            "holds 5 layers",
        ),
        (
            BERT,
            "num_hidden_layers",
            json!(100_000_000),
            "holds 6 layers",
        ),
        (SMALL, "num_hidden_layers", json!(6), "expected at most 5"),
        (
            SMALL,
            "max_position_embeddings",
            json!(1_000_000),
            "at most 131072",
        ),
        (SMALL, "hidden_size", beyond.clone(), "at most 268435456"),
        (
            SMALL,
            "intermediate_size",
            beyond.clone(),
            "at most 268435456",
        ),
        (SMALL, "vocab_size", beyond.clone(), "at most 268435456"),
        (
            SMALL,
            "num_attention_heads",
            beyond.clone(),
            "at most 268435456",
        ),
        (
            SMALL,
            "local_attention",
            beyond.clone(),
            "at most 268435456",
        ),
        (
            SMALL,
            "global_attn_every_n_layers",
            huge.clone(),
            "at most 268435456",
        ),
        (BERT, "hidden_size", beyond.clone(), "at most 268435456"),
        (
            BERT,
            "max_position_embeddings",
            beyond.clone(),
            "at most 268435456",
        ),
        (
            BERT,
            "type_vocab_size",
            json!(100_000_000),
            "expected [100000000, 384]",
        ),
    ];
    for (model, key, value, expected) in cases {
        let mut f = Fixture::new(model);
        f.set_key("config.json", key, value);
        let err = f
            .load_files(opts())
            .err()
            .unwrap_or_else(|| panic!("{model} {key}: loaded"));
        let message = err.to_string();
        assert_eq!(
            err.kind(),
            latebird::ErrorKind::Load,
            "{model} {key}: {message}"
        );
        assert!(message.contains(expected), "{model} {key}: {message}");
        assert!(
            message.contains(key) || key == "type_vocab_size",
            "{model} {key}: {message}"
        );
    }
}

/// Fewer layers than the weights hold is what transformers loads too (the rest are unused).
#[test]
fn fewer_layers_than_the_weights_hold_load() {
    let mut f = small();
    f.set_key("config.json", "num_hidden_layers", json!(2));
    let model = f.load_files(opts()).unwrap();
    let out = model
        .encode(&["two layers only"], InputKind::Document)
        .unwrap();
    assert!(out[0].data.iter().all(|v| v.is_finite()));
}

#[test]
fn absurd_lengths_in_the_settings_file_or_options() {
    for (key, value, expected) in [
        (
            "document_length",
            json!(1_000_000_000_000u64),
            "at most 268435456",
        ),
        (
            "query_length",
            json!(100_000_000u64),
            "exceeds the backbone's max_position_embeddings",
        ),
        ("query_length", json!(-1), "expected a non-negative integer"),
    ] {
        let mut f = small();
        f.set_key("config_sentence_transformers.json", key, value);
        assert_error!(
            f.load_files(opts()),
            Error::InvalidConfig { .. },
            ["config_sentence_transformers.json", key, expected]
        );
    }
    for options in [
        Options {
            query_length: Some(usize::MAX),
            ..opts()
        },
        Options {
            document_length: Some(usize::MAX),
            ..opts()
        },
    ] {
        assert_load_error!(
            small(),
            options,
            Error::InvalidArgument { .. },
            ["length", "exceeds the backbone's max_position_embeddings"]
        );
    }
}

#[test]
fn scores_that_overflow_float32_are_errors() {
    let q = latebird::Embeddings {
        rows: 1,
        dim: 2,
        data: vec![1e20, 1e20],
    };
    let d = q.clone();
    assert_error!(
        latebird::maxsim(&q, &d),
        Error::InvalidArgument { .. },
        ["document", "overflow"]
    );
    assert_error!(
        latebird::scores(std::slice::from_ref(&q), std::slice::from_ref(&d)),
        Error::InvalidArgument { .. },
        ["documents[0]", "queries[0]", "overflow"]
    );
    assert_error!(
        latebird::top_k(&q, std::slice::from_ref(&d), 3),
        Error::InvalidArgument { .. },
        ["documents[0]", "overflow"]
    );
    assert_error!(
        latebird::rerank(std::slice::from_ref(&q), &[vec![d.clone()]], &[vec![7]]),
        Error::InvalidArgument { .. },
        ["documents[0][0]", "overflow"]
    );
}

#[test]
fn pooling_refuses_matrices_beyond_its_memory_bound() {
    let rows = (1 << 14) + 2;
    let m = latebird::Embeddings {
        rows,
        dim: 1,
        data: vec![1.0; rows],
    };
    assert_error!(
        latebird::pool(&m, 2),
        Error::InvalidArgument { .. },
        ["embeddings", "16384"]
    );
}

#[test]
fn a_panic_inside_the_engine_is_an_internal_error() {
    let model = small().load_files(opts()).unwrap();
    let err = latebird::catch_panic(|| -> latebird::Result<()> { panic!("injected") }).unwrap_err();
    assert_eq!(err.kind(), latebird::ErrorKind::Internal);
    assert!(err.to_string().contains("please report"));
    // The model is immutable: it works after a panic elsewhere.
    assert_eq!(
        model
            .encode(&["still fine"], InputKind::Query)
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------- XLM-RoBERTa

const XLMR: &str = "xlm-roberta";

fn xlmr() -> Fixture {
    Fixture::new(XLMR)
}

#[test]
fn xlm_roberta_config_and_weights_errors() {
    // More layers than the weights hold.
    let mut f = xlmr();
    f.set_key("config.json", "num_hidden_layers", json!(4));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        ["config.json", "`num_hidden_layers` is 4", "holds 3 layers"]
    );
    // A position table of another size than the config says.
    let mut f = xlmr();
    f.set_key("config.json", "max_position_embeddings", json!(600));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidWeights { .. },
        [
            "model.safetensors",
            "embeddings.position_embeddings.weight",
            "[514, 64]",
            "[600, 64]"
        ]
    );
    // No position left for tokens after the offset.
    let mut f = xlmr();
    f.set_key("config.json", "max_position_embeddings", json!(2));
    assert_load_error!(
        f,
        opts(),
        Error::InvalidConfig { .. },
        [
            "config.json",
            "`max_position_embeddings` is 2",
            "padding_idx"
        ]
    );
    // 514 rows take 512 tokens: positions start at pad_token_id + 1 = 2.
    let options = Options {
        document_length: Some(513),
        ..opts()
    };
    assert_load_error!(
        xlmr(),
        options,
        Error::InvalidArgument { .. },
        [
            "document_length",
            "513",
            "max_position_embeddings 514 less the 2 rows up to padding_idx: 512 tokens"
        ]
    );
    // With pad_token_id 0 the same table takes 513 tokens, the last at row 513.
    let mut f = xlmr();
    f.set_key("config.json", "pad_token_id", json!(0));
    let options = Options {
        document_length: Some(513),
        ..opts()
    };
    let model = f
        .load_files(options)
        .expect("513 positions after padding_idx 0");
    let long = "lighthouse ".repeat(600);
    let out = model.encode(&[long.as_str()], InputKind::Document).unwrap();
    assert!(out[0].rows > 500 && out[0].data.iter().all(|v| v.is_finite()));
}

/// An `XLMRobertaForMaskedLM` checkpoint (tensors under `roberta.`, an MLM head, no pooler)
/// encodes as the `XLMRobertaModel` one does.
#[test]
fn xlm_roberta_masked_lm_checkpoint_loads_alike() {
    let base = xlmr();
    let mut f = base.clone();
    f.set_key(
        "config.json",
        "architectures",
        json!(["XLMRobertaForMaskedLM"]),
    );
    f.edit_tensors("model.safetensors", |tensors| {
        let old = std::mem::take(tensors);
        for (name, raw) in old {
            if !name.starts_with("pooler.") {
                tensors.insert(format!("roberta.{name}"), raw);
            }
        }
        tensors.insert(
            "lm_head.bias".into(),
            common::RawTensor {
                dtype: safetensors::Dtype::F16,
                shape: vec![1003],
                data: vec![0; 2 * 1003],
            },
        );
    });
    let texts = ["hello <pad> world <mask>", "Tokyo 東京, Zürich."];
    for kind in [InputKind::Query, InputKind::Document] {
        let a = base
            .load_files(opts())
            .unwrap()
            .encode(&texts, kind)
            .unwrap();
        let b = f.load_files(opts()).unwrap().encode(&texts, kind).unwrap();
        assert_eq!(a, b);
    }
}

/// transformers 5 rebuilds an `XLMRobertaTokenizer`'s pipeline (normalizer: the Precompiled
/// one only; pre-tokenizer: WhitespaceSplit then Metaspace) and PyLate runs that, not
/// tokenizer.json's own; another tokenizer class keeps the file as it is.
#[test]
fn xlm_roberta_tokenizer_is_rebuilt_as_transformers_5_does() {
    let rebuilt = xlmr().load_files(opts()).unwrap();
    let mut f = xlmr();
    f.set_key(
        "tokenizer_config.json",
        "tokenizer_class",
        json!("PreTrainedTokenizerFast"),
    );
    let as_file = f.load_files(opts()).unwrap();
    let tokens = |model: &ColBERT, text: &str| -> Vec<String> {
        let ids = model.tokenize(text, InputKind::Document).unwrap().ids;
        ids.iter()
            .map(|&id| model.id_to_token(id).unwrap())
            .collect()
    };
    // The file's Metaspace alone leaves a lone "▁" before an added token.
    let ours = tokens(&rebuilt, "hello <pad>");
    let file = tokens(&as_file, "hello <pad>");
    assert_eq!(ours[ours.len() - 2], "<pad>");
    assert_eq!(file[file.len() - 3..], ["\u{2581}", "<pad>", "</s>"]);
    assert_eq!(file.len(), ours.len() + 1);
    // The file's normalizer turns '' into "; the rebuilt pipeline has no normalizer.
    assert!(tokens(&rebuilt, "''hi''").iter().any(|t| t.contains('\'')));
    assert!(tokens(&as_file, "''hi''").iter().any(|t| t.contains('"')));
}

#[test]
fn the_unsupported_architecture_message_lists_every_family() {
    let mut f = xlmr();
    f.set_key("config.json", "architectures", json!(["RobertaModel"]))
        .set_key("config.json", "model_type", json!("roberta"));
    assert_load_error!(
        f,
        opts(),
        Error::UnsupportedArchitecture { .. },
        [
            "config.json",
            "\"RobertaModel\"",
            "BertForMaskedLM",
            "ModernBertForMaskedLM",
            "XLMRobertaModel, XLMRobertaForMaskedLM",
            "\"xlm-roberta\""
        ]
    );
    // An architecture of no family with a known model_type loads: transformers' AutoModel
    // goes by model_type.
    let mut f = xlmr();
    f.set_key(
        "config.json",
        "architectures",
        json!(["XLMRobertaForTokenClassification"]),
    );
    f.load_files(opts()).expect("model_type names the family");
}
