//! int8: `quantize` writes folders every family loads, loading a float model in int8 and
//! loading its quantized copy give the same embeddings, int8 stays close to float32, and
//! bad requests and corrupt int8 files are typed errors.

#[macro_use]
mod common;

use std::path::Path;

use latebird::{quantize, ColBERT, Embeddings, Error, InputKind, Options, Precision};

const FAMILIES: [&str; 4] = [
    "minilm-colbert",
    "modernbert-v4",
    "modernbert-v5",
    "xlm-roberta",
];

const TEXTS: [&str; 3] = [
    "late interaction scores every query token against every document token",
    "int8 weights take a quarter of the memory",
    "a",
];

fn load(dir: &Path, precision: Option<Precision>) -> ColBERT {
    let options = Options {
        precision,
        ..Options::default()
    };
    ColBERT::from_folder(dir, options).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn encode(model: &ColBERT) -> Vec<Embeddings> {
    let mut all = model.encode(&TEXTS, InputKind::Document).unwrap();
    all.extend(model.encode(&TEXTS, InputKind::Query).unwrap());
    all
}

/// Smallest cosine between corresponding rows (rows are L2-normalised).
fn min_cosine(a: &[Embeddings], b: &[Embeddings]) -> f32 {
    let mut min = f32::MAX;
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.rows, x.dim), (y.rows, y.dim));
        for (p, q) in x.data.chunks_exact(x.dim).zip(y.data.chunks_exact(y.dim)) {
            min = min.min(p.iter().zip(q).map(|(u, v)| u * v).sum());
        }
    }
    min
}

#[test]
fn quantized_folders_match_int8_loading_and_stay_close_to_float32() {
    for family in FAMILIES {
        let dir = common::model_dir(family);
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("int8");
        let report = quantize(&dir, &target, Precision::Int8).unwrap();
        assert!(report.quantized >= 4, "{family}: {report:?}");
        assert!(
            report.bytes_after < report.bytes_before,
            "{family}: {report:?}"
        );
        assert!(
            report.copied.iter().any(|f| f == "tokenizer.json"),
            "{family}: {report:?}"
        );
        assert!(target.join("1_Dense/model.safetensors").is_file());

        assert_eq!(load(&dir, None).precision(), Precision::Float32);
        assert_eq!(load(&target, None).precision(), Precision::Int8);
        assert_eq!(
            load(&target, Some(Precision::Float32)).precision(),
            Precision::Float32
        );
        let float = encode(&load(&dir, None));
        let int8_at_load = encode(&load(&dir, Some(Precision::Int8)));
        // A quantized folder loads in int8 by default, with the very same weights.
        let int8_folder = encode(&load(&target, None));
        for (a, b) in int8_at_load.iter().zip(&int8_folder) {
            assert_eq!(a.data, b.data, "{family}: int8 at load vs quantized folder");
        }
        assert_ne!(
            float[0].data, int8_folder[0].data,
            "{family}: int8 must differ"
        );
        let cosine = min_cosine(&float, &int8_folder);
        assert!(cosine > 0.95, "{family}: min token cosine {cosine}");
        // Asked for float32, the quantized folder runs its dequantized weights in float32.
        let dequantized = encode(&load(&target, Some(Precision::Float32)));
        let cosine = min_cosine(&int8_folder, &dequantized);
        assert!(
            cosine > 0.95,
            "{family}: float32 of int8 weights, min cosine {cosine}"
        );
    }
}

#[test]
fn float16_folders_are_half_the_size_and_load_in_float32() {
    let out = tempfile::tempdir().unwrap();
    // minilm-colbert stores float32, modernbert-v5 bfloat16: both are rounded to float16.
    for (family, max_ratio) in [("minilm-colbert", 0.52), ("modernbert-v5", 1.01)] {
        let dir = common::model_dir(family);
        let target = out.path().join(family);
        let report = quantize(&dir, &target, Precision::Float16).unwrap();
        assert!(report.quantized >= 4, "{family}: {report:?}");
        // Integer buffers (position ids) and the header stay as they were.
        assert!(
            (report.bytes_after as f64) < (report.bytes_before as f64) * max_ratio,
            "{family}: {report:?}"
        );
        let copy = load(&target, None);
        assert_eq!(copy.precision(), Precision::Float32, "{family}");
        let float = encode(&load(&dir, None));
        let got = encode(&copy);
        let cosine = min_cosine(&float, &got);
        assert!(cosine > 0.999, "{family}: min token cosine {cosine}");
        if family == "minilm-colbert" {
            assert_ne!(float[0].data, got[0].data, "{family}: float16 must differ");
        }
        // Asked for int8, the copy quantizes its rounded weights at load.
        assert_eq!(
            load(&target, Some(Precision::Int8)).precision(),
            Precision::Int8
        );
    }
    // Weights in float16 already: nothing to round, and nothing is written.
    for family in ["modernbert-v4", "xlm-roberta"] {
        let target = out.path().join(family);
        assert_error!(
            quantize(common::model_dir(family), &target, Precision::Float16),
            Error::InvalidArgument { ref name, .. } if name == "model",
            ["float16 already"]
        );
        assert!(!target.exists(), "{family}: nothing may be written");
    }
}

#[test]
fn bfloat16_is_close_to_float32_from_float_and_int8_folders() {
    for family in FAMILIES {
        let dir = common::model_dir(family);
        let bf16 = load(&dir, Some(Precision::Bfloat16));
        assert_eq!(bf16.precision(), Precision::Bfloat16);
        let float = encode(&load(&dir, None));
        let got = encode(&bf16);
        assert_ne!(float[0].data, got[0].data, "{family}: bfloat16 must differ");
        let cosine = min_cosine(&float, &got);
        assert!(cosine > 0.99, "{family}: min token cosine {cosine}");
        // Deterministic: the same embeddings again.
        assert_eq!(encode(&bf16)[0].data, got[0].data);
    }
    // An int8 folder asked for bfloat16 runs its dequantized weights in bf16.
    let out = tempfile::tempdir().unwrap();
    quantize(
        common::model_dir("xlm-roberta"),
        out.path().join("q"),
        Precision::Int8,
    )
    .unwrap();
    assert_eq!(
        load(&out.path().join("q"), Some(Precision::Bfloat16)).precision(),
        Precision::Bfloat16
    );
}

/// float16 runs on the path GPU devices take (Candle matmuls in f16), which the CPU takes with
/// `LATEBIRD_CPU=generic` (test.sh runs this file both ways); the CPU kernels refuse it.
#[test]
fn float16_runs_where_devices_run_and_is_refused_by_the_cpu_kernels() {
    let generic = std::env::var("LATEBIRD_CPU").is_ok_and(|v| v == "generic");
    for family in FAMILIES {
        let dir = common::model_dir(family);
        let options = Options {
            precision: Some(Precision::Float16),
            ..Options::default()
        };
        let loaded = ColBERT::from_folder(&dir, options);
        if !generic {
            assert_error!(
                loaded,
                Error::InvalidArgument { ref name, .. } if name == "precision",
                ["is float16", "CPU kernels", "expected bfloat16", "GPU device"]
            );
            continue;
        }
        let f16 = loaded.unwrap();
        assert_eq!(f16.precision(), Precision::Float16);
        let float = encode(&load(&dir, None));
        let got = encode(&f16);
        assert_ne!(float[0].data, got[0].data, "{family}: float16 must differ");
        let cosine = min_cosine(&float, &got);
        assert!(cosine > 0.999, "{family}: min token cosine {cosine}");
        assert!(got.iter().all(|e| e.data.iter().all(|v| v.is_finite())));
    }
}

#[test]
fn quantize_refuses_what_it_cannot_do_and_overwrites_nothing() {
    let dir = common::model_dir("modernbert-v4");
    let out = tempfile::tempdir().unwrap();
    for precision in [Precision::Float32, Precision::Bfloat16] {
        assert_error!(
            quantize(&dir, out.path().join("a"), precision),
            Error::InvalidArgument { ref name, .. } if name == "precision",
            [precision.name(), "expected int8 or float16"]
        );
    }
    let busy = out.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    assert_error!(
        quantize(&dir, &busy, Precision::Int8),
        Error::InvalidArgument { ref name, .. } if name == "output",
        ["not empty", "nothing is overwritten"]
    );
    assert_eq!(
        std::fs::read_to_string(busy.join("keep.txt")).unwrap(),
        "mine"
    );
    let file = out.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_error!(
        quantize(&dir, &file, Precision::Int8),
        Error::InvalidArgument { ref name, .. } if name == "output",
        ["is a file"]
    );
    let once = out.path().join("once");
    quantize(&dir, &once, Precision::Int8).unwrap();
    assert_error!(
        quantize(&once, out.path().join("twice"), Precision::Int8),
        Error::InvalidArgument { ref name, .. } if name == "model",
        ["quantized already"]
    );
    assert!(
        !out.path().join("twice").exists()
            || std::fs::read_dir(out.path().join("twice"))
                .unwrap()
                .next()
                .is_none()
    );
    // A folder that is not a model is refused before anything is written.
    let empty = tempfile::tempdir().unwrap();
    assert!(quantize(empty.path(), out.path().join("none"), Precision::Int8).is_err());
    assert!(!out.path().join("none").exists());
}

/// Rewrites one tensor of a quantized folder's backbone weights.
fn corrupt(dir: &Path, edit: impl Fn(&str, &mut Vec<u8>) -> bool) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let mut hit = false;
    for (name, _, _, data) in &mut owned {
        if !hit && edit(name, data) {
            hit = true;
        }
    }
    assert!(hit, "nothing edited");
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn corrupt_int8_weights_are_load_errors() {
    let dir = common::model_dir("modernbert-v4");
    let out = tempfile::tempdir().unwrap();
    let bad_value = out.path().join("v");
    quantize(&dir, &bad_value, Precision::Int8).unwrap();
    corrupt(&bad_value, |name, data| {
        name.ends_with("Wqkv.weight") && {
            data[0] = 0x80;
            true
        }
    });
    assert_error!(
        ColBERT::from_folder(&bad_value, Options::default()),
        Error::InvalidWeights { .. },
        ["-128", "expected values in -127..=127"]
    );
    let bad_scale = out.path().join("s");
    quantize(&dir, &bad_scale, Precision::Int8).unwrap();
    corrupt(&bad_scale, |name, data| {
        name.ends_with("Wqkv.weight_scale") && {
            data[..4].copy_from_slice(&(-1f32).to_le_bytes());
            true
        }
    });
    assert_error!(
        ColBERT::from_folder(&bad_scale, Options::default()),
        Error::InvalidWeights { .. },
        ["weight_scale", "expected positive steps"]
    );
    let nan_scale = out.path().join("n");
    quantize(&dir, &nan_scale, Precision::Int8).unwrap();
    corrupt(&nan_scale, |name, data| {
        name.ends_with("Wo.weight_scale") && {
            data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            true
        }
    });
    assert_error!(
        ColBERT::from_folder(&nan_scale, Options::default()),
        Error::InvalidWeights { .. },
        ["NaN or infinite"]
    );
}

#[test]
fn precision_names_round_trip() {
    for p in Precision::ALL {
        assert_eq!(Precision::from_name(p.name()), Some(p));
        assert_eq!(p.to_string(), p.name());
    }
    assert_eq!(Precision::from_name("int4"), None);
    assert_eq!(Precision::default(), Precision::Float32);
}
