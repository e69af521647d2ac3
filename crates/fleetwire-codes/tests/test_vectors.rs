//! Replays `test-vectors/codes.json`, the language-neutral vectors the Python and Kotlin tests
//! share. The check characters in it come from an independent implementation of the quasigroup.

use std::collections::HashMap;

use fleetwire_codes::{CodeSpec, ParseError};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-vectors/codes.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn specs(v: &Value) -> HashMap<String, CodeSpec> {
    v["specs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, spec)| (name.clone(), serde_json::from_value(spec.clone()).unwrap()))
        .collect()
}

fn as_usize(v: &Value) -> usize {
    usize::try_from(v.as_u64().unwrap()).unwrap()
}

#[test]
fn check_characters_match() {
    let v = vectors();
    let specs = specs(&v);
    let cases = v["check"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let spec = &specs[case["spec"].as_str().unwrap()];
        let body = case["body"].as_str().unwrap();
        let want = case["check"].as_str().unwrap().chars().next();
        assert_eq!(spec.check_character(body), want, "{case}");
        let code = spec.parse(case["code"].as_str().unwrap()).unwrap();
        assert_eq!(code.to_string(), case["display"].as_str().unwrap());
    }
}

#[test]
fn inputs_normalize() {
    let v = vectors();
    let specs = specs(&v);
    for case in v["parse"].as_array().unwrap() {
        let spec = &specs[case["spec"].as_str().unwrap()];
        let code = spec
            .parse(case["input"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(code.as_str(), case["canonical"].as_str().unwrap(), "{case}");
        assert_eq!(
            code.to_string(),
            case["display"].as_str().unwrap(),
            "{case}"
        );
    }
}

#[test]
fn invalid_inputs_fail_as_expected() {
    let v = vectors();
    let specs = specs(&v);
    for case in v["invalid"].as_array().unwrap() {
        let spec = &specs[case["spec"].as_str().unwrap()];
        let err = spec.parse(case["input"].as_str().unwrap()).unwrap_err();
        let want = match case["error"].as_str().unwrap() {
            "Empty" => ParseError::Empty,
            "TooLong" => ParseError::TooLong { max: 64 },
            "CheckMismatch" => ParseError::CheckMismatch,
            "WrongLength" => ParseError::WrongLength {
                expected: as_usize(&case["expected"]),
                found: as_usize(&case["found"]),
            },
            "InvalidCharacter" => {
                let position = as_usize(&case["position"]);
                let ch = case["input"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .nth(position)
                    .unwrap();
                ParseError::InvalidCharacter { ch, position }
            }
            other => panic!("unknown error {other}"),
        };
        assert_eq!(err, want, "{case}");
    }
}
