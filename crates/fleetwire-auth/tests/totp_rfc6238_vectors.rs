//! RFC 6238 Appendix B test vectors (8 digits, 30 s step) for SHA-1, SHA-256 and SHA-512.

use fleetwire_auth::UnixTime;
use fleetwire_auth::totp::{Totp, TotpAlgorithm};

const TIMES: [u64; 6] = [
    59,
    1_111_111_109,
    1_111_111_111,
    1_234_567_890,
    2_000_000_000,
    20_000_000_000,
];

fn check(secret: &[u8], alg: TotpAlgorithm, expected: [&str; 6]) {
    let totp = Totp::new(secret.to_vec(), alg, 8, 30).unwrap();
    for (t, code) in TIMES.iter().zip(expected) {
        let now = UnixTime::from_secs(*t);
        assert_eq!(totp.code_at(now), code, "{alg:?} at {t}");
        assert!(totp.verify(code, now, None).is_ok());
    }
}

#[test]
fn rfc6238_sha1() {
    check(
        b"12345678901234567890",
        TotpAlgorithm::Sha1,
        [
            "94287082", "07081804", "14050471", "89005924", "69279037", "65353130",
        ],
    );
}

#[test]
fn rfc6238_sha256() {
    check(
        b"12345678901234567890123456789012",
        TotpAlgorithm::Sha256,
        [
            "46119246", "68084774", "67062674", "91819424", "90698825", "77737706",
        ],
    );
}

#[test]
fn rfc6238_sha512() {
    check(
        b"1234567890123456789012345678901234567890123456789012345678901234",
        TotpAlgorithm::Sha512,
        [
            "90693936", "25091201", "99943326", "93441116", "38618901", "47863826",
        ],
    );
}
