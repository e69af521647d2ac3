//! The sign-in flow driven with arbitrary answers, and arbitrary answers out of turn: whatever
//! they are, a session is created only after an open lane, a correct password for an existing,
//! unlocked account and (when enrolled) a valid second factor; every reserved attempt is
//! finished exactly once, as a success only when a session follows; the password is verified at
//! most once and never before the lane opened; the flow ends exactly once.
#![no_main]
use arbitrary::Arbitrary;
use fleetwire_auth::login_flow::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    account: Option<(bool, bool)>,
    throttled: bool,
    slot: bool,
    gate: u8,
    correct: bool,
    rehash: bool,
    factor: u8,
    /// Answers thrown in before each step, out of turn or not.
    noise: Vec<u8>,
}

fn noise(flow: &mut LoginFlow, kind: u8) -> bool {
    match kind % 9 {
        0 => flow.throttled(None).is_ok(),
        1 => flow.hash_slot(true).is_ok(),
        2 => flow.account(None).is_ok(),
        3 => flow.gate(Gate::Open).is_ok(),
        4 => flow.verified(Verified::Correct { rehash: false }).is_ok(),
        5 => flow.second_factor(FactorCheck::Valid).is_ok(),
        6 => flow.finished().is_ok(),
        7 => flow.session_created(true).is_ok(),
        _ => flow.audited().is_ok(),
    }
}

fuzz_target!(|input: Input| {
    let config = LoginConfig {
        pseudonym_key: [1; 32],
        device_key: [2; 32],
    };
    let request = LoginRequest {
        name: "alice".into(),
        origin: "192.0.2.1".into(),
        captcha: None,
        second_factor: None,
        device_cookie: None,
    };
    let account = input.account.map(|(locked, mfa)| Account {
        id: "u_1".into(),
        phc: "x".into(),
        locked,
        mfa,
    });
    let mut flow = LoginFlow::new(&config, request);
    let (mut opened, mut verified, mut finishes, mut sessions, mut done) = (false, 0, 0, 0, 0);
    let mut finished_ok = false;
    let mut noise_iter = input.noise.iter().copied();
    loop {
        let before = flow.poll_step();
        // Noise: only an answer to the pending step may succeed; then the real answer below
        // would be out of turn, so stop when noise was accepted.
        if let Some(kind) = noise_iter.next() {
            let pending = flow.clone().poll_step();
            let mut probe = flow.clone();
            if noise(&mut probe, kind) {
                // Accepted noise must have answered exactly the pending step.
                let matches = matches!(
                    (kind % 9, &pending),
                    (0, Some(Step::Throttle))
                        | (1, Some(Step::ReserveHashSlot))
                        | (2, Some(Step::LookupAccount { .. }))
                        | (3, Some(Step::Gate { .. }))
                        | (4, Some(Step::Verify { .. }))
                        | (5, Some(Step::CheckSecondFactor { .. }))
                        | (6, Some(Step::Finish { .. }))
                        | (7, Some(Step::CreateSession { .. }))
                        | (8, Some(Step::Audit(_)))
                );
                assert!(matches, "{kind} accepted while {pending:?} pending");
            } else {
                assert_eq!(probe.poll_step(), pending, "a refused answer changed the flow");
            }
        }
        let Some(step) = before else { break };
        match step {
            Step::Throttle => flow
                .throttled(input.throttled.then_some(Throttled { retry_after_ms: 1 }))
                .unwrap(),
            Step::ReserveHashSlot => flow.hash_slot(input.slot).unwrap(),
            Step::LookupAccount { .. } => flow.account(account.clone()).unwrap(),
            Step::Gate { .. } => {
                let gate = match input.gate % 3 {
                    0 => Gate::Open,
                    1 => Gate::Locked { until: None },
                    _ => Gate::CaptchaRequired { reason: "x".into() },
                };
                opened = gate == Gate::Open;
                flow.gate(gate).unwrap();
            }
            Step::Verify { phc } => {
                assert!(opened, "verified before the lane opened");
                assert_eq!(phc.is_some(), account.is_some());
                verified += 1;
                let v = if input.correct {
                    Verified::Correct { rehash: input.rehash }
                } else {
                    Verified::Wrong
                };
                flow.verified(v).unwrap();
            }
            Step::CheckSecondFactor { .. } => {
                let f = match input.factor % 3 {
                    0 => FactorCheck::Valid,
                    1 => FactorCheck::Missing,
                    _ => FactorCheck::Invalid,
                };
                flow.second_factor(f).unwrap();
            }
            Step::Finish { outcome } => {
                finishes += 1;
                finished_ok = outcome == fleetwire_auth::lockout::Outcome::Success;
                flow.finished().unwrap();
            }
            Step::CreateSession { .. } => {
                sessions += 1;
                flow.session_created(false).unwrap();
            }
            Step::Audit(_) => flow.audited().unwrap(),
            Step::Done(outcome) => {
                done += 1;
                let signed_in = matches!(outcome, LoginOutcome::SignedIn { .. });
                assert_eq!(signed_in, sessions == 1);
            }
        }
    }
    assert_eq!(done, 1);
    assert!(verified <= 1);
    assert_eq!(finishes, usize::from(opened));
    let may_sign_in = opened
        && input.correct
        && account
            .as_ref()
            .is_some_and(|a| !a.locked && (!a.mfa || input.factor % 3 == 0));
    assert_eq!(sessions == 1, may_sign_in);
    assert_eq!(finished_ok, may_sign_in);
});
