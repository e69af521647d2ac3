//! Every generated code parses back to itself, from its canonical form, its display form, and the
//! sloppy forms people type (lower case, spaces, separators anywhere).

use fleetwire_codes::{Alphabet, CodeGenerator, CodeSpec};
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fn alphabets() -> impl Strategy<Value = Alphabet> {
    prop_oneof![
        Just(Alphabet::alphanumeric()),
        Just(Alphabet::crockford()),
        Just(Alphabet::new("0123456789").unwrap()),
        Just(Alphabet::new("ABCDEFGHJKMNPQRSTUVWXYZ").unwrap()),
        Just(Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap()),
    ]
}

fn specs() -> impl Strategy<Value = CodeSpec> {
    (alphabets(), 6usize..=10, any::<bool>()).prop_map(|(a, len, check)| {
        let check = check && a.supports_check();
        CodeSpec::new(a, len, check).unwrap()
    })
}

proptest! {
    #[test]
    fn generated_codes_round_trip(spec in specs(), seed in any::<u64>(), sep in "[-_. ]{0,2}") {
        let mut g = CodeGenerator::new(spec.clone(), ChaCha8Rng::seed_from_u64(seed));
        for _ in 0..20 {
            let code = g.generate().unwrap();
            prop_assert_eq!(code.len(), spec.code_len());
            prop_assert_eq!(spec.parse(code.as_str()), Ok(code));
            prop_assert_eq!(spec.parse(&code.to_string()), Ok(code));
            let sloppy: String = code
                .as_str()
                .chars()
                .flat_map(|c| [c.to_ascii_lowercase()].into_iter().chain(sep.chars()))
                .collect();
            prop_assert_eq!(spec.parse(&sloppy), Ok(code));
            if spec.has_check() {
                let body = &code.as_str()[..spec.length()];
                prop_assert_eq!(spec.check_character(body), code.as_str().chars().last());
            }
        }
    }

    #[test]
    fn crockford_confusables_read_as_digits(seed in any::<u64>()) {
        let spec = CodeSpec::new(Alphabet::crockford(), 10, true).unwrap();
        let mut g = CodeGenerator::new(spec.clone(), ChaCha8Rng::seed_from_u64(seed));
        let code = g.generate().unwrap();
        let typed: String = code
            .as_str()
            .chars()
            .map(|c| match c { '0' => 'o', '1' => 'l', c => c })
            .collect();
        prop_assert_eq!(spec.parse(&typed), Ok(code));
    }

    #[test]
    fn parse_never_panics_and_accepts_only_canonical(input in "\\PC{0,40}") {
        let spec = CodeSpec::default();
        if let Ok(code) = spec.parse(&input) {
            prop_assert_eq!(spec.parse(code.as_str()), Ok(code));
            prop_assert_eq!(code.len(), 11);
        }
    }
}
