//! The attempt flow a server runs: parse (a typo costs nothing), ask the guard, look the code up,
//! record the outcome. Wrong codes from one source lock that source out, including for the right
//! code, without touching other sources.

use std::collections::HashMap;

use fleetwire_codes::{
    AttemptGuard, Code, CodeGenerator, CodeSpec, GcraGuard, ParseError, Throttled, UnixTime,
};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

#[derive(Debug, PartialEq)]
enum Outcome {
    Typo(ParseError),
    Throttled(Throttled),
    NoSuchThing,
    Found(u32),
}

struct Server {
    spec: CodeSpec,
    things: HashMap<Code, u32>,
    guard: GcraGuard,
}

impl Server {
    fn attempt(&mut self, source: &str, typed: &str, now: UnixTime) -> Outcome {
        let code = match self.spec.parse(typed) {
            Ok(code) => code,
            Err(e) => return Outcome::Typo(e),
        };
        let ticket = match self.guard.begin(source, now) {
            Ok(ticket) => ticket,
            Err(t) => return Outcome::Throttled(t),
        };
        let found = self.things.get(&code).copied();
        self.guard.finish(ticket, found.is_some(), now);
        found.map_or(Outcome::NoSuchThing, Outcome::Found)
    }
}

#[test]
fn typos_are_free_and_wrong_codes_lock_the_source_out() {
    let spec = CodeSpec::default();
    let mut generator = CodeGenerator::new(spec.clone(), ChaCha12Rng::seed_from_u64(42));
    let real = generator.generate().unwrap();
    let wrong: Vec<Code> = (0..5).map(|_| generator.generate().unwrap()).collect();
    let mut server = Server {
        spec,
        things: HashMap::from([(real, 7)]),
        guard: GcraGuard::new(3, 60_000, 1000),
    };
    let t0 = UnixTime::from_millis(1_700_000_000_000);

    // A swapped pair is caught by the check character and costs no token.
    let mut typo: Vec<char> = real.as_str().chars().collect();
    let i = (0..typo.len() - 1)
        .find(|&i| typo[i] != typo[i + 1])
        .unwrap();
    typo.swap(i, i + 1);
    let typo: String = typo.into_iter().collect();
    for _ in 0..10 {
        assert_eq!(
            server.attempt("198.51.100.1", &typo, t0),
            Outcome::Typo(ParseError::CheckMismatch)
        );
    }
    assert_eq!(server.guard.tracked_sources(), 0);

    // Three well-formed wrong codes use up the burst.
    for w in &wrong[..3] {
        assert_eq!(
            server.attempt("198.51.100.1", &w.to_string(), t0),
            Outcome::NoSuchThing
        );
    }
    // Now even the right code is refused for this source, before any lookup.
    assert_eq!(
        server.attempt("198.51.100.1", &real.to_string(), t0),
        Outcome::Throttled(Throttled::TooManyAttempts {
            retry_after_ms: 60_000
        })
    );
    // Another source is unaffected, and a period later the first may try once more.
    assert_eq!(
        server.attempt("203.0.113.9", &real.to_string(), t0),
        Outcome::Found(7)
    );
    assert_eq!(
        server.attempt("198.51.100.1", &real.to_string(), t0.plus_millis(60_000)),
        Outcome::Found(7)
    );
}
