//! The check character catches every single-character substitution and every swap of two
//! adjacent different characters, at every position including the check character itself, for
//! every alphabet that supports one. (The unit tests prove the underlying quasigroup property
//! exhaustively for every supported alphabet size.)

use fleetwire_codes::{Alphabet, CodeGenerator, CodeSpec, ParseError};
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fn all_typos_rejected(spec: &CodeSpec, seed: u64) -> Result<(), TestCaseError> {
    let mut g = CodeGenerator::new(spec.clone(), ChaCha8Rng::seed_from_u64(seed));
    let symbols: Vec<char> = spec.alphabet().as_str().chars().collect();
    let code = g.generate().unwrap();
    let chars: Vec<char> = code.as_str().chars().collect();
    for pos in 0..chars.len() {
        for &s in &symbols {
            if s == chars[pos] {
                continue;
            }
            let mut typo = chars.clone();
            typo[pos] = s;
            let typo: String = typo.into_iter().collect();
            prop_assert_eq!(
                spec.parse(&typo),
                Err(ParseError::CheckMismatch),
                "{} -> {}",
                code,
                typo
            );
        }
    }
    for pos in 0..chars.len() - 1 {
        if chars[pos] == chars[pos + 1] {
            continue;
        }
        let mut typo = chars.clone();
        typo.swap(pos, pos + 1);
        let typo: String = typo.into_iter().collect();
        prop_assert_eq!(
            spec.parse(&typo),
            Err(ParseError::CheckMismatch),
            "{} -> {}",
            code,
            typo
        );
    }
    Ok(())
}

fn checkable_alphabets() -> impl Strategy<Value = Alphabet> {
    let all = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    prop_oneof![
        Just(Alphabet::alphanumeric()),
        Just(Alphabet::crockford()),
        (3usize..=36)
            .prop_filter("size 4k+2 has no check", |n| n % 4 != 2)
            .prop_map(move |n| Alphabet::new(&all[..n]).unwrap()),
    ]
}

proptest! {
    #[test]
    fn substitutions_and_adjacent_swaps_are_rejected(
        alphabet in checkable_alphabets(),
        len in 6usize..=10,
        seed in any::<u64>(),
    ) {
        let spec = CodeSpec::new(alphabet, len, true).unwrap();
        all_typos_rejected(&spec, seed)?;
    }
}

#[test]
fn without_a_check_a_typo_is_just_another_code() {
    // The control: the same typo passes parsing when there is no check character, so the test
    // above is really testing the check.
    let spec = CodeSpec::new(Alphabet::alphanumeric(), 10, false).unwrap();
    assert!(spec.parse("ABCDEFGHIJ").is_ok());
    assert!(spec.parse("ABCDEFGHJI").is_ok());
}
