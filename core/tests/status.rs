//! `/v1/status` as a machine: what it reads, in which order, how much, and what each caller sees.

use gemini_pool_core::testing::{Rig, Seen};
use gemini_pool_core::{Caller, Policy, ResetZone, Status, Usage};
use serde_json::Value;

const NOW: u64 = 1_768_478_400_000; // 2026-01-15 12:00 UTC
const LIST: &str = "team:AIzaSySTATUS000000000000000000000000001\nAIzaSySTATUS000000000000000000000000002";

fn report(rig: &mut Rig<'_>, caller: &Caller, policy: Option<Policy>, platform: bool) -> Value {
    let mut status = Status::new(caller, policy, &["keys"], NOW, platform);
    let body = rig.drive(&mut status, |_| panic!("a status calls no one")).expect("a report");
    serde_json::from_slice(&body).expect("json")
}

fn rig() -> Rig<'static> {
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    rig.cooling.reset_zone = ResetZone::Fixed(0);
    rig
}

#[test]
fn a_client_sees_its_own_limits_and_no_admin_part() {
    let mut rig = rig();
    let app = Caller { label: "app".into(), admin: false };
    let policy = Policy::parse("app", r#"{"rpd":5,"rpm":2}"#).expect("reads");
    rig.store.append("limit/2026-01-15/app", format!("r {} a\n", NOW / 60_000).as_bytes());
    let report = report(&mut rig, &app, Some(policy), true);
    assert_eq!(report["limits"][0]["requestsToday"], 1);
    assert!(report.get("usage").is_none() && report["keyPool"].get("keys").is_none());
    let reads: Vec<&Seen> = rig.seen.iter().filter(|s| matches!(s, Seen::Look(_) | Seen::Policies(_))).collect();
    assert_eq!(reads.len(), 1, "only its own limit item: {:?}", rig.seen);
    assert!(rig.seen.contains(&Seen::Knob("rate_limiter")), "rpm: where it counts is read");
}

#[test]
fn an_admin_sees_every_limited_client_in_todays_counts() {
    let mut rig = rig();
    let day = Usage::day(NOW, ResetZone::Fixed(0));
    rig.store.append(&Usage::item(&day, 3), b"c app m 2 0\nc other m 1 0\nc broken m 1 0\n");
    rig.store.append("limit/2026-01-15/app", b"= 7 0\n");
    rig.policies.insert("app".into(), Policy::parse("app", r#"{"rpd":10}"#).expect("reads"));
    rig.policies.insert("other".into(), Policy::parse("other", r#"{"models":["m"]}"#).expect("reads"));
    let root = Caller { label: "root".into(), admin: true };
    let report = report(&mut rig, &root, None, true);
    let limits = report["limits"].as_array().expect("limits");
    assert_eq!(limits.len(), 1, "only clients with a limit: {limits:?}");
    assert_eq!((limits[0]["client"].as_str(), limits[0]["requestsToday"].as_u64()), (Some("app"), Some(7)));
    assert!(report["usage"].is_object() && report["keyPool"]["keys"].is_array());
    assert!(!rig.seen.contains(&Seen::Knob("rate_limiter")), "no rpm shown: no knob read");
}

#[test]
fn at_most_a_hundred_model_items_are_read_in_name_order() {
    let mut rig = rig();
    for n in (0..130).rev() {
        rig.store.append(&format!("model/m{n:03}"), b"");
    }
    rig.store.append("model/other@9", b"");
    let app = Caller { label: "app".into(), admin: false };
    let report = report(&mut rig, &app, None, true);
    assert_eq!(report["keyPool"]["modelsOmitted"], 30);
    let read = rig.seen.iter().find_map(|s| if let Seen::Read(n) = s { Some(*n) } else { None });
    assert_eq!(read, Some(101), "the keys item and a hundred models");
}

#[test]
fn an_empty_pool_is_the_operators_error() {
    let mut rig = Rig::new(&[b"# nothing"], NOW);
    let mut status = Status::new(&Caller { label: "a".into(), admin: false }, None, &["keys"], NOW, true);
    let refused = rig.drive(&mut status, |_| panic!("no call")).expect_err("no keys");
    assert_eq!(refused.status, 500);
}
