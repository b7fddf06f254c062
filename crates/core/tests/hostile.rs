//! Regression tests for what the fuzz targets under `fuzz/` found: each builds the hostile
//! input in memory, reduced to what triggers the problem, and checks that it gives the typed
//! error (with a message saying what was wrong and what was expected) instead of a panic,
//! an abort or NaN output.

#[macro_use]
mod common;

use common::Fixture;
use latebird::{pool, pool_hierarchical, ColBERT, Error, InputKind, MatrixRef, Options};

// ---------------------------------------------------------------- pooling (fuzz target `scoring`)

/// Found by `scoring`: two finite rows whose dot product overflows float32 gave an infinite
/// `1 - cos` distance; the Ward chain then found no nearest neighbour, paired a cluster with
/// itself and underflowed an index (a panic with overflow checks, a wrong merge without).
#[test]
fn pooling_rows_whose_dot_product_overflows_float32() {
    let data = [0.0f32, -1.992_842_8e17, 4.540_481e30];
    let m = MatrixRef::new(3, 1, &data);
    for result in [pool(m, 3), pool_hierarchical(m, 2, 1)] {
        assert_error!(
            result,
            Error::InvalidArgument { ref name, .. } if name == "embeddings",
            ["rows 1 and 2", "float32 overflow", "expected embeddings of moderate magnitude"]
        );
    }
}

/// The same class, on the way out: rows close enough to be one cluster whose mean overflows
/// float32 came back as infinite values.
#[test]
fn pooled_cluster_means_that_overflow_float32() {
    let data = [1.0f32, 3.0e38, 3.0e38, 3.0e38];
    let m = MatrixRef::new(4, 1, &data);
    assert_error!(
        pool(m, 2),
        Error::InvalidArgument { ref name, .. } if name == "embeddings",
        ["mean of a cluster overflows float32", "expected embeddings of moderate magnitude"]
    );
    // Moderate rows of the same shape still pool.
    let data = [1.0f32, 0.5, 0.5, 0.5];
    let pooled = pool(MatrixRef::new(4, 1, &data), 2).expect("moderate rows pool");
    assert_eq!((pooled.rows, pooled.dim), (2, 1));
    assert!(pooled.data.iter().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------- weights (fuzz target `safetensors`)

/// `1_Dense/model.safetensors` or `model.safetensors` with a tensor of finite values of huge
/// magnitude, as the `safetensors` target made by mutating real files.
fn huge_weights(file: &str, tensor: &str) -> Fixture {
    let mut f = Fixture::new("modernbert-v4");
    f.edit_tensors(file, |t| {
        let w = t.get_mut(tensor).expect("tensor in the fixture");
        let count: usize = w.shape.iter().product();
        // As float32: float16 cannot hold a value this large.
        w.dtype = safetensors::Dtype::F32;
        w.data = 1.0e38f32.to_le_bytes().repeat(count);
    });
    f
}

/// Found by `safetensors`: a Dense weight matrix of finite values near float32's maximum loads
/// (every value is finite) but its products overflow, and the L2 normalisation turned the
/// infinities into NaN rows that were returned as embeddings.
#[test]
fn dense_weights_that_overflow_float32_are_an_error_not_nan() {
    let f = huge_weights("1_Dense/model.safetensors", "linear.weight");
    let model =
        ColBERT::from_files(f.files.clone(), Options::default()).expect("finite weights load");
    for kind in [InputKind::Query, InputKind::Document] {
        assert_error!(
            model.encode(&["what is late interaction?"], kind),
            Error::InvalidWeights { ref file, .. } if file.contains("Dense"),
            ["overflows float32", "NaN or infinite", "expected finite weights of moderate magnitude"]
        );
    }
}

/// The same in the backbone: the error names the backbone's file, not the Dense layers.
#[test]
fn backbone_weights_that_overflow_float32_are_an_error_not_nan() {
    let f = huge_weights("model.safetensors", "layers.0.mlp.Wo.weight");
    let model =
        ColBERT::from_files(f.files.clone(), Options::default()).expect("finite weights load");
    assert_error!(
        model.encode(&["ColBERT scores with MaxSim."], InputKind::Document),
        Error::InvalidWeights { ref file, .. } if file.contains("model.safetensors") && file.contains("backbone"),
        ["overflows float32", "expected finite weights of moderate magnitude"]
    );
}

// ---------------------------------------------------------------- tokenizer (fuzz target `tokenizer`)

/// Found by `tokenizer`: a `tokenizer.json` whose `decoder` holds a JSON syntax error (the
/// fuzzer put invalid UTF-8 where a boolean was) made the tokenizers crate panic
/// (`expect("Helper")` in its decoder deserializer) instead of returning an error.
#[test]
fn tokenizer_json_with_a_syntax_error_in_the_decoder() {
    let mut f = Fixture::new("modernbert-v4");
    let text = String::from_utf8(f.get("tokenizer.json").to_vec()).expect("UTF-8 fixture");
    let broken = text.replacen("\"decoder\": {", "\"decoder\": {\"oops\": nope, ", 1);
    assert_ne!(broken, text, "the fixture has a decoder");
    for bytes in [broken.into_bytes(), {
        // The artifact's own shape: a byte that is not UTF-8 in place of a value.
        let mut b = text
            .replacen("\"decoder\": {", "\"decoder\": {\"x\": \u{0}", 1)
            .into_bytes();
        let at = b.iter().position(|&c| c == 0).expect("marker");
        b[at] = 0xe0;
        b
    }] {
        f.set("tokenizer.json", bytes);
        assert_error!(
            f.load_files(Options::default()),
            Error::InvalidTokenizer { ref file, .. } if file == "tokenizer.json",
            ["not valid JSON", "expected a tokenizers JSON file"]
        );
    }
}
