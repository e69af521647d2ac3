//! Every route of the API, from the route table the server serves (`GET /v1/api`), checked from
//! the outside against what its row says: a route for signed-in users answers 401 without a
//! session; one that needs a right answers 401 without a session and 403 to a signed-in user
//! without the right; a public one is limited per source (a burst from one address ends in 429
//! while another address is still served); a player's one answers 401 to an unsigned request.
//! The routers are built from the table alone, so a new route comes with a row, and with these
//! checks; an unknown path is 404, never an unguarded handler.
#![allow(clippy::disallowed_methods)] // a real clock

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

mod common;
use common::api::{Served, add_user, config};

fn concrete(path: &str) -> String {
    path.replace("{*rest}", "x")
        .replace("{id}", "1")
        .replace("{user}", "x")
        .replace("{index}", "0")
        .replace("{token}", "no-such-token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_row() {
    let served = Served::start("route-table", &config("", ""), |data| {
        add_user(data, "nobody", &[]);
    });
    let table = served.call("GET", "/v1/api", None, None).await;
    assert_eq!(table.status, 200, "{table:?}");
    let routes = table.body["routes"].as_array().unwrap().clone();
    assert!(routes.len() >= 30, "{} routes", routes.len());
    let nobody = served.token("nobody").await;
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for (i, row) in routes.iter().enumerate() {
        let method = row["method"].as_str().unwrap();
        let path = concrete(row["path"].as_str().unwrap());
        let access = row["access"].as_str().unwrap();
        let body = (method != "GET").then(|| json!({}));
        let what = format!("{method} {path} ({access})");
        if row["https"] == json!(false) {
            // Plain HTTP only (the ACME challenge answers): absent on HTTPS, public and limited
            // per source on the plain listener.
            assert_eq!(method, "GET", "{what}: plain-only rows are GETs");
            assert_eq!(access, "public", "{what}: plain-only rows are public");
            let r = served.call(method, &path, None, None).await;
            assert_eq!(r.status, 404, "{what} over HTTPS: {r:?}");
            let one = IpAddr::V4(Ipv4Addr::new(127, 0, 5, u8::try_from(i % 250).unwrap() + 1));
            let mut refused = None;
            for n in 0..40 {
                let r = served.get_plain_from(one, &path).await;
                if r.status == 429 {
                    refused = Some(n);
                    break;
                }
                assert_eq!(r.status, 404, "{what}: unknown token: {r:?}");
            }
            let n = refused.unwrap_or_else(|| panic!("{what}: 40 plain requests, none refused"));
            assert!(n >= 5, "{what}: refused after only {n}");
            *checked.entry("plain-only".to_owned()).or_default() += 1;
            continue;
        }
        match access {
            "signed_in" | "member" => {
                let r = served.call(method, &path, None, body.as_ref()).await;
                assert_eq!(r.status, 401, "{what} without a session: {r:?}");
                let r = served
                    .call(method, &path, Some("not-a-session"), body.as_ref())
                    .await;
                assert_eq!(r.status, 401, "{what} with a forged token: {r:?}");
            }
            "right" => {
                let right = row["right"].as_str().unwrap();
                let r = served.call(method, &path, None, body.as_ref()).await;
                assert_eq!(r.status, 401, "{what} without a session: {r:?}");
                let r = served
                    .call(method, &path, Some(&nobody), body.as_ref())
                    .await;
                assert_eq!(r.status, 403, "{what} for a user without {right}: {r:?}");
            }
            "player" => {
                let r = served.call(method, &path, None, body.as_ref()).await;
                assert_eq!(r.status, 401, "{what} unsigned: {r:?}");
            }
            "public" => {
                // A fresh address per route, so limits of other routes do not count.
                let one = IpAddr::V4(Ipv4Addr::new(127, 0, 3, u8::try_from(i % 250).unwrap() + 1));
                let mut refused = None;
                for n in 0..40 {
                    let r = served
                        .call_from(one, method, &path, None, body.as_ref())
                        .await;
                    if r.status == 429 {
                        refused = Some(n);
                        break;
                    }
                }
                let n = refused.unwrap_or_else(|| {
                    panic!("{what}: 40 requests from one address, none refused")
                });
                assert!(n >= 5, "{what}: refused after only {n}");
                let other =
                    IpAddr::V4(Ipv4Addr::new(127, 0, 4, u8::try_from(i % 250).unwrap() + 1));
                let r = served
                    .call_from(other, method, &path, None, body.as_ref())
                    .await;
                assert_ne!(
                    r.status, 429,
                    "{what}: another address is refused too: {r:?}"
                );
            }
            other => panic!("{what}: unknown access {other:?}: add its check here"),
        }
        *checked.entry(access.to_owned()).or_default() += 1;
    }
    for access in ["public", "signed_in", "member", "right", "player"] {
        assert!(
            checked.contains_key(access),
            "no {access} route checked: {checked:?}"
        );
    }
    assert!(
        checked.contains_key("plain-only"),
        "no plain-only route: {checked:?}"
    );
    let r = served.call("GET", "/v1/no-such-route", None, None).await;
    assert_eq!(r.status, 404, "{r:?}");
}
