//! The one definition of the overridable settings (`Overrides`): read from snake_case and
//! camelCase maps alike, unknown keys refused with the accepted ones listed, values checked
//! once with messages naming the setting; the effective settings written in either case; and
//! `pool_factor` refused for queries, whichever front end asks.

#[macro_use]
mod common;

use common::Fixture;
use latebird::{
    Case, ColBERT, ColbertSettings, DeviceSpec, Error, InputKind, Options, Overrides, Precision,
};
use serde_json::{json, Map, Value};

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("a JSON object").clone()
}

fn everything() -> Overrides {
    Overrides {
        query_length: Some(16),
        document_length: Some(24),
        query_prefix: Some(String::new()),
        document_prefix: Some("[D] ".into()),
        do_query_expansion: Some(false),
        attend_to_expansion_tokens: Some(true),
        skiplist_words: Some(vec!["the".into(), "a".into()]),
        batch_size: Some(3),
        precision: Some(Precision::Int8),
        device: Some(DeviceSpec::Cpu),
    }
}

#[test]
fn snake_and_camel_keys_read_the_same_overrides() {
    let snake = json!({
        "query_length": 16, "document_length": 24, "query_prefix": "", "document_prefix": "[D] ",
        "do_query_expansion": false, "attend_to_expansion_tokens": true,
        "skiplist_words": ["the", "a"], "batch_size": 3, "precision": "int8", "device": "cpu",
    });
    let camel = json!({
        "queryLength": 16, "documentLength": 24, "queryPrefix": "", "documentPrefix": "[D] ",
        "doQueryExpansion": false, "attendToExpansionTokens": true,
        "skiplistWords": ["the", "a"], "batchSize": 3, "precision": "int8", "device": "cpu",
    });
    assert_eq!(
        Overrides::from_map(&map(snake), Case::Snake).unwrap(),
        everything()
    );
    assert_eq!(
        Overrides::from_map(&map(camel), Case::Camel).unwrap(),
        everything()
    );
    // Absent and null keys keep the model's values.
    assert_eq!(
        Overrides::from_map(&map(json!({})), Case::Camel).unwrap(),
        Overrides::default()
    );
    assert_eq!(
        Overrides::from_map(
            &map(json!({"queryLength": null, "skiplistWords": null})),
            Case::Camel
        )
        .unwrap(),
        Overrides::default()
    );
}

#[test]
fn unknown_keys_list_the_accepted_ones_in_the_callers_case() {
    assert_error!(
        Overrides::from_map(&map(json!({"query_lenght": 4})), Case::Snake),
        Error::InvalidArgument { ref name, .. } if name == "query_lenght",
        [
            "unknown setting",
            "expected one of query_length, document_length, query_prefix, document_prefix, do_query_expansion, attend_to_expansion_tokens, skiplist_words, batch_size",
        ]
    );
    assert_error!(
        Overrides::from_map(&map(json!({"queryLenght": 4})), Case::Camel),
        Error::InvalidArgument { ref name, .. } if name == "queryLenght",
        [
            "expected one of queryLength, documentLength, queryPrefix, documentPrefix, doQueryExpansion, attendToExpansionTokens, skiplistWords, batchSize",
        ]
    );
    // Each front end takes its own spelling only.
    assert_error!(
        Overrides::from_map(&map(json!({"query_length": 4})), Case::Camel),
        Error::InvalidArgument { ref name, .. } if name == "query_length",
        ["unknown setting", "queryLength"]
    );
    assert_error!(
        Overrides::from_map(&map(json!({"queryLength": 4})), Case::Snake),
        Error::InvalidArgument { ref name, .. } if name == "queryLength",
        ["unknown setting", "query_length"]
    );
    // Not a setting, although an argument elsewhere.
    assert_error!(
        Overrides::from_map(&map(json!({"pool_factor": 2})), Case::Snake),
        Error::InvalidArgument { .. },
        ["`pool_factor`", "unknown setting"]
    );
}

#[test]
fn bad_values_name_the_setting_and_what_it_takes() {
    let integer = "expected an integer from 1 to 268435456";
    for (value, found) in [
        (json!(0), "is 0"),
        (json!(-1), "is -1"),
        (json!(2.5), "is 2.5, not a whole number"),
        (json!(2.0), "is 2.0, a floating-point number"),
        (
            json!(1e30),
            "is 1000000000000000000000000000000, far out of range",
        ),
        (json!(268_435_457u64), "is 268435457"),
        (json!(u64::MAX), "is 18446744073709551615"),
        (json!("3"), "is the string \"3\""),
        (json!(true), "is true (a boolean)"),
        (json!([4]), "is an array"),
        (json!({}), "is an object"),
    ] {
        for (case, key) in [
            (Case::Snake, "query_length"),
            (Case::Snake, "document_length"),
            (Case::Snake, "batch_size"),
            (Case::Camel, "queryLength"),
            (Case::Camel, "documentLength"),
            (Case::Camel, "batchSize"),
        ] {
            assert_error!(
                Overrides::from_map(&map(json!({ key: value.clone() })), case),
                Error::InvalidArgument { ref name, .. } if name == key,
                [&format!("invalid argument `{key}`: {found}"), integer]
            );
        }
    }
    // The bounds themselves are accepted.
    let edges = Overrides::from_map(
        &map(json!({"query_length": 1, "document_length": 268_435_456u64})),
        Case::Snake,
    )
    .unwrap();
    assert_eq!(edges.query_length, Some(1));
    assert_eq!(edges.document_length, Some(1 << 28));

    for (key, value, needles) in [
        ("queryPrefix", json!(3), vec!["is 3", "expected a string"]),
        (
            "doQueryExpansion",
            json!(1),
            vec!["is 1", "expected true or false"],
        ),
        (
            "attendToExpansionTokens",
            json!("yes"),
            vec!["is the string \"yes\"", "expected true or false"],
        ),
        (
            "skiplistWords",
            json!("the"),
            vec!["is the string \"the\"", "expected a list of strings"],
        ),
        (
            "skiplistWords",
            json!(["the", 7]),
            vec!["has item 1 7 (a number)", "expected a list of strings"],
        ),
        (
            "skiplistWords",
            json!(["the", null]),
            vec!["has item 1 null", "expected a list of strings"],
        ),
        (
            "precision",
            json!("int4"),
            vec![
                "is the string \"int4\"",
                "expected one of float32, bfloat16, int8",
            ],
        ),
        ("precision", json!(8), vec!["is 8", "expected a string"]),
    ] {
        let result = Overrides::from_map(&map(json!({ key: value })), Case::Camel);
        let Err(err @ Error::InvalidArgument { .. }) = result else {
            panic!("{key}: expected an InvalidArgument, got {result:?}");
        };
        let message = err.to_string();
        assert!(message.contains(&format!("`{key}`")), "{message}");
        for needle in needles {
            assert!(message.contains(needle), "{message} lacks {needle:?}");
        }
    }
}

#[test]
fn settings_are_written_in_either_case() {
    let settings = ColbertSettings::default();
    let snake = settings.to_map(Case::Snake);
    let camel = settings.to_map(Case::Camel);
    let keys = |m: &Map<String, Value>| {
        let mut k: Vec<String> = m.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&snake),
        [
            "attend_to_expansion_tokens",
            "do_query_expansion",
            "document_length",
            "document_prefix",
            "query_length",
            "query_prefix",
            "skiplist_words"
        ]
    );
    assert_eq!(
        keys(&camel),
        [
            "attendToExpansionTokens",
            "doQueryExpansion",
            "documentLength",
            "documentPrefix",
            "queryLength",
            "queryPrefix",
            "skiplistWords"
        ]
    );
    assert_eq!(snake["query_length"], json!(32));
    assert_eq!(camel["queryPrefix"], json!("[Q] "));
    assert_eq!(camel["doQueryExpansion"], json!(true));
    assert_eq!(
        camel["skiplistWords"].as_array().unwrap().len(),
        settings.skiplist_words.len()
    );
    // Every written setting is one a caller can override, under the same name: what the
    // settings getter shows can be given back.
    let back = Overrides::from_map(&camel, Case::Camel).unwrap();
    assert_eq!(back.apply(ColbertSettings::default()), settings);
}

#[test]
fn options_take_overrides_and_give_them_back() {
    let options = Options::default().with_overrides(everything());
    assert_eq!(options.query_length, Some(16));
    assert_eq!(options.skiplist_words.as_deref().map(<[_]>::len), Some(2));
    assert_eq!(options.batch_size, 3);
    assert_eq!(options.overrides(), everything());
    // `None` keeps what the options say.
    let kept = Options {
        query_length: Some(8),
        batch_size: 5,
        ..Options::default()
    }
    .with_overrides(Overrides::default());
    assert_eq!(kept.query_length, Some(8));
    assert_eq!(kept.batch_size, 5);
    // A model loaded with overrides read from a map has the effective settings they say.
    let overrides = Overrides::from_map(
        &map(json!({"queryLength": 16, "skiplistWords": ["the"], "batchSize": 3})),
        Case::Camel,
    )
    .unwrap();
    let model = Fixture::new("minilm-colbert")
        .load_files(Options::default().with_overrides(overrides))
        .unwrap();
    let shown = model.settings().to_map(Case::Snake);
    assert_eq!(shown["query_length"], json!(16));
    assert_eq!(shown["skiplist_words"], json!(["the"]));
    assert_eq!(model.batch_size(), 3);
    assert_eq!(
        model.encode(&["hello"], InputKind::Query).unwrap()[0].rows,
        16
    );
}

#[test]
fn queries_refuse_a_pool_factor() {
    let model: ColBERT = Fixture::new("minilm-colbert")
        .load_files(Options::default())
        .unwrap();
    let mut called = false;
    assert_error!(
        model.encode_pooled(&["a query"], InputKind::Query, 4, 2, &mut |_| {
            called = true;
            true
        }),
        Error::InvalidArgument { ref name, .. } if name == "pool_factor",
        [
            "is 2 for queries",
            "pooling applies to documents only",
            "expected 1 for queries"
        ]
    );
    assert!(!called, "the error comes before any encoding");
    // 1 is every row, for queries as for documents; documents pool.
    let q = model.encode(&["a query"], InputKind::Query).unwrap();
    let q1 = model
        .encode_pooled(&["a query"], InputKind::Query, 4, 1, &mut |_| true)
        .unwrap();
    assert!(q == q1);
    let text = "a document long enough to have several rows to pool together";
    let d = model
        .encode_pooled(&[text], InputKind::Document, 4, 2, &mut |_| true)
        .unwrap();
    let plain = model.encode(&[text], InputKind::Document).unwrap();
    assert!(d[0].rows < plain[0].rows);
}

#[test]
fn a_device_the_build_lacks_fails_the_load_and_names_the_feature() {
    for (name, feature) in [("cuda:1", "cuda"), ("mps", "metal")] {
        if latebird::build_features().contains(&feature) {
            continue; // a GPU build: scripts/gpu_check.sh runs it on a GPU
        }
        let options = Options {
            device: name.parse().unwrap(),
            ..Options::default()
        };
        assert_error!(
            ColBERT::from_folder(common::model_dir("minilm-colbert"), options),
            Error::Device { ref device, .. } if device.as_str() == DeviceSpec::parse(name).unwrap().name(),
            [&format!("without the `{feature}` feature"), &format!("--features {feature}")]
        );
    }
    let model = ColBERT::from_folder(common::model_dir("minilm-colbert"), Options::default());
    assert_eq!(model.unwrap().device(), DeviceSpec::Cpu);
}
