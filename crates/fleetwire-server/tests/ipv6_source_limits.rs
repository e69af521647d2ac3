//! Issue 10, hole 11: the per-source limits of `/v1/auth` (login, reset request, CAPTCHA fetch) treat an IPv6 /64 as one source (one
//! host is routinely given a whole /64 and can pick any address in it per connection).
//!
//! Loopback has a single IPv6 address, so the test runs itself again inside a network namespace
//! of its own (`unshare -rn`), where it puts addresses of two /64 prefixes on `lo`: nothing
//! outside the namespace is touched. The server listens on `[fd00:1::1]:0`.
#![cfg(target_os = "linux")]
#![allow(clippy::disallowed_methods)]

use std::net::IpAddr;
use std::process::Command;

use serde_json::json;

mod common;
use common::api::{Served, config_at};

const ME: &str = "ipv6_prefix_is_one_source";

fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_prefix_is_one_source() {
    if std::env::var_os("FLEETWIRE_TEST_NETNS").is_none() {
        // Outside: run this test again in a private network namespace, and require that it ran
        // and passed there.
        let out = Command::new("unshare")
            .arg("-rn")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", ME, "--nocapture", "--test-threads", "1"])
            .env("FLEETWIRE_TEST_NETNS", "1")
            .output()
            .expect("unshare (util-linux) runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "in the namespace: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    ip("link set lo up");
    for a in [
        "fd00:1::1",
        "fd00:1::a",
        "fd00:1::b",
        "fd00:1::c",
        "fd00:1:0:0:ffff::d",
        "fd00:2::a",
    ] {
        ip(&format!("-6 addr add {a}/64 dev lo nodad"));
    }
    let s = Served::start(
        "ipv6-source",
        &config_at(
            "[fd00:1::1]:0",
            "login_burst_per_source = 3\nlogin_per_minute_per_source = 1\n\
             captcha_after_failures = 0\nmax_failures = 100\n\
             captcha_burst_per_source = 3\ncaptcha_per_minute_per_source = 1",
            "",
        ),
        |_| {},
    );
    let same_prefix = ["fd00:1::a", "fd00:1::b", "fd00:1::c"].map(addr);
    let fourth = addr("fd00:1:0:0:ffff::d");
    let other = addr("fd00:2::a");
    let login = json!({ "user": "nobody", "password": "Wrong-Password-1" });

    // Logins: three addresses of one /64 use up its burst; a fourth address of it is refused;
    // another /64 is not.
    for a in same_prefix {
        let r = s
            .call_from(a, "POST", "/v1/auth/login", None, Some(&login))
            .await;
        assert_eq!(r.status, 401, "{a}: {r:?}");
    }
    let r = s
        .call_from(fourth, "POST", "/v1/auth/login", None, Some(&login))
        .await;
    assert_eq!(r.status, 429, "the /64 is one source: {r:?}");
    let r = s
        .call_from(other, "POST", "/v1/auth/login", None, Some(&login))
        .await;
    assert_eq!(r.status, 401, "another /64 is another source: {r:?}");

    // Reset requests: the same.
    let reset = json!({ "user": "nobody" });
    for a in same_prefix {
        let r = s
            .call_from(a, "POST", "/v1/auth/reset/request", None, Some(&reset))
            .await;
        assert_eq!(r.status, 202, "{a}: {r:?}");
    }
    let r = s
        .call_from(fourth, "POST", "/v1/auth/reset/request", None, Some(&reset))
        .await;
    assert_eq!(r.status, 429, "{r:?}");
    let r = s
        .call_from(other, "POST", "/v1/auth/reset/request", None, Some(&reset))
        .await;
    assert_eq!(r.status, 202, "{r:?}");

    // CAPTCHA fetches: the same.
    for a in same_prefix {
        let r = s.call_from(a, "GET", "/v1/auth/captcha", None, None).await;
        assert_eq!(r.status, 200, "{a}: {r:?}");
    }
    let r = s
        .call_from(fourth, "GET", "/v1/auth/captcha", None, None)
        .await;
    assert_eq!(r.status, 429, "{r:?}");
    let r = s
        .call_from(other, "GET", "/v1/auth/captcha", None, None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}
