//! A thing's access state persisted by an earlier build still loads, unchanged, and its times
//! still hold.
//!
//! `tests/data/access_snapshot_v1.json` was written by the build that still had
//! `fleetwire-codes`' own `UnixTime` (before the suite moved to `fleetwire_core::UnixTime`).
//! Both serialize as a bare integer of milliseconds, so stored things must load as they are and
//! serialize back to the same JSON. `FLEETWIRE_REGEN=1` rewrites the file (a pin: only on
//! purpose).

mod common;

use common::{ALICE, BOB, CAROL, code};
use fleetwire_codes::{AccessError, AccessMode, Connected, ThingAccess, UnixTime};
use serde_json::Value;

const NOW_MS: u64 = 1_700_000_000_456;

fn build() -> ThingAccess {
    let now = UnixTime::from_millis(NOW_MS);
    let c = code("SNAPSH0TAB");
    let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
    t.connect(now, ALICE, &c).unwrap();
    t.connect(now.plus_millis(1), BOB, &c).unwrap();
    t.invite(now, ALICE, CAROL, Some(now.plus_millis(60_000)))
        .unwrap();
    t.set_code_expiry(now, ALICE, Some(now.plus_millis(3_600_000)))
        .unwrap();
    t
}

#[test]
fn an_access_state_written_before_loads_and_serializes_back_identically() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/access_snapshot_v1.json"
    );
    if std::env::var_os("FLEETWIRE_REGEN").is_some() {
        let text = serde_json::to_string_pretty(&build()).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let stored: Value = serde_json::from_str(&text).unwrap();
    let mut loaded: ThingAccess = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&loaded).unwrap(), stored);
    assert_eq!(serde_json::to_value(build()).unwrap(), stored);

    // The times came back as the old build wrote them.
    let now = UnixTime::from_millis(NOW_MS);
    assert_eq!(loaded.code_expires_at(), Some(now.plus_millis(3_600_000)));
    assert_eq!(
        loaded.pending_requests().collect::<Vec<_>>(),
        vec![(BOB, now.plus_millis(1))]
    );
    assert_eq!(
        loaded.invites().collect::<Vec<_>>(),
        vec![(CAROL, Some(now.plus_millis(60_000)))]
    );
    // And they still act: the invite and the code expire on time.
    let c = code("SNAPSH0TAB");
    let mut late = loaded.clone();
    assert!(matches!(
        late.connect(now.plus_millis(60_000), CAROL, &c),
        Err(AccessError::InviteExpired { .. })
    ));
    assert_eq!(
        loaded.connect(now.plus_millis(59_999), CAROL, &c),
        Ok(Connected::Joined)
    );
    assert!(matches!(
        loaded.connect(now.plus_millis(3_600_000), common::MALLORY, &c),
        Err(AccessError::CodeExpired { .. })
    ));
}
