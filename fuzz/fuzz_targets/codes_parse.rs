#![no_main]
//! Arbitrary input to the code parser, under every built-in spec: no panic, and whatever parses
//! is canonical and parses back from both its canonical and its display form.
use fleetwire_codes::{Alphabet, CodeSpec, MAX_INPUT_CHARS, ParseError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let alphabet = match selector % 4 {
        0 => Alphabet::alphanumeric(),
        1 => Alphabet::crockford(),
        2 => Alphabet::new("0123456789").unwrap(),
        _ => Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap(),
    };
    let length = 6 + usize::from(selector / 4 % 5);
    let check = selector & 0x80 != 0 && alphabet.supports_check();
    let spec = CodeSpec::new(alphabet, length, check).unwrap();
    match spec.parse(input) {
        Ok(code) => {
            assert_eq!(code.len(), spec.code_len());
            assert!(input.chars().count() <= MAX_INPUT_CHARS);
            let canonical = code.as_str();
            assert!(
                canonical
                    .chars()
                    .all(|c| spec.alphabet().index_of(c).is_some())
            );
            assert_eq!(spec.parse(canonical), Ok(code));
            assert_eq!(spec.parse(&code.to_string()), Ok(code));
            if check {
                let body = &canonical[..spec.length()];
                assert_eq!(spec.check_character(body), canonical.chars().last());
            }
        }
        Err(ParseError::TooLong { .. }) => assert!(input.chars().count() > MAX_INPUT_CHARS),
        Err(ParseError::CheckMismatch) => assert!(check),
        Err(_) => {}
    }
});
