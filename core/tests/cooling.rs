//! The cooling policy, row by row as in the README's tables.

use gemini_pool_core::{
    decide, Action, Cooldown, CoolingSettings, Moment, Outcome, Profile, Reason, ResetZone, Scope, Verdict,
};

// 2026-01-15 12:00:00 UTC (04:00 PST); the next Pacific midnight is 2026-01-16 08:00 UTC.
const NOW: u64 = 1_768_478_400_000;
const NEXT_PACIFIC_MIDNIGHT: u64 = 1_768_550_400_000;
const HOUR: u64 = 3_600_000;

fn verdict(status: Option<u16>, outcome: Outcome) -> Verdict {
    Verdict { status, outcome, detail: String::new() }
}

fn smart(status: u16, outcome: Outcome) -> Action {
    let ctx = Moment { now_ms: NOW, previous_strikes: 0, jitter_ms: 250 };
    decide(&verdict(Some(status), outcome), &CoolingSettings::default(), ctx)
}

fn cooldown(action: &Action) -> &Cooldown {
    action.cooldown.as_ref().expect("a cooldown")
}

#[test]
fn per_day_cools_the_bucket_until_pacific_midnight() {
    let a = smart(429, Outcome::DailyQuota);
    assert!(a.retry);
    assert_eq!(cooldown(&a).scope, Scope::BucketModel);
    assert_eq!(cooldown(&a).until_ms, NEXT_PACIFIC_MIDNIGHT);
    assert_eq!(cooldown(&a).reason, Reason::PerDayQuota);
}

#[test]
fn per_day_follows_the_configured_zone() {
    let settings = CoolingSettings { reset_zone: ResetZone::Fixed(0), ..CoolingSettings::default() };
    let ctx = Moment { now_ms: NOW, previous_strikes: 0, jitter_ms: 0 };
    let a = decide(&verdict(Some(429), Outcome::DailyQuota), &settings, ctx);
    assert_eq!(cooldown(&a).until_ms, NEXT_PACIFIC_MIDNIGHT - 8 * HOUR);
}

#[test]
fn per_minute_is_retry_delay_plus_jitter() {
    let a = smart(429, Outcome::MinuteQuota { retry_delay_ms: Some(45_838) });
    assert_eq!((cooldown(&a).scope, cooldown(&a).until_ms), (Scope::BucketModel, NOW + 45_838 + 250));
    let b = smart(429, Outcome::MinuteQuota { retry_delay_ms: None });
    assert_eq!(cooldown(&b).until_ms, NOW + 60_000 + 250);
}

#[test]
fn no_free_tier_and_forbidden_models_cool_long_for_that_model_only() {
    for outcome in [Outcome::NoFreeTier, Outcome::ModelForbidden] {
        let a = smart(429, outcome);
        assert_eq!(cooldown(&a).scope, Scope::BucketModel);
        assert!(cooldown(&a).until_ms >= NOW + 24 * HOUR);
    }
}

#[test]
fn bare_429_backs_off_growing_and_capped() {
    let settings = CoolingSettings::default();
    let lengths: Vec<u64> = (0..8)
        .map(|strikes| {
            let ctx = Moment { now_ms: NOW, previous_strikes: strikes, jitter_ms: 0 };
            let a = decide(&verdict(Some(429), Outcome::Throttled), &settings, ctx);
            assert_eq!(cooldown(&a).scope, Scope::KeyModel);
            assert_eq!(cooldown(&a).strikes, strikes + 1);
            cooldown(&a).until_ms - NOW
        })
        .collect();
    assert_eq!(lengths, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
}

#[test]
fn dead_keys_wait_for_probation() {
    let a = smart(400, Outcome::KeyDead(Reason::KeyInvalid));
    assert!(a.retry);
    assert_eq!(cooldown(&a).scope, Scope::Dead);
    assert_eq!(cooldown(&a).until_ms, NOW + 6 * HOUR);
    assert_eq!(cooldown(&a).reason, Reason::KeyInvalid);
}

#[test]
fn upstream_trouble_retries_without_benching() {
    for status in [500, 503, 504] {
        let a = smart(status, Outcome::UpstreamTrouble);
        assert_eq!(a, Action { cooldown: None, retry: true }, "{status}");
    }
}

#[test]
fn connection_failures_cool_briefly() {
    let ctx = Moment { now_ms: NOW, previous_strikes: 0, jitter_ms: 0 };
    let a = decide(&Verdict::connect_failure(true, "timeout"), &CoolingSettings::default(), ctx);
    assert!(a.retry);
    assert_eq!((cooldown(&a).scope, cooldown(&a).until_ms), (Scope::KeyModel, NOW + 10_000));
}

#[test]
fn client_errors_and_location_are_delivered() {
    for (status, outcome) in [
        (400, Outcome::ClientError),
        (404, Outcome::ClientError),
        (400, Outcome::LocationUnsupported),
        (403, Outcome::ProxyFault),
    ] {
        assert_eq!(smart(status, outcome), Action { cooldown: None, retry: false });
    }
}

fn seed(status: Option<u16>, outcome: Outcome) -> Action {
    let settings = CoolingSettings { profile: Profile::Seed, ..CoolingSettings::default() };
    let ctx = Moment { now_ms: NOW, previous_strikes: 0, jitter_ms: 0 };
    decide(&verdict(status, outcome), &settings, ctx)
}

#[test]
fn seed_profile_is_the_seed_table() {
    let day = 24 * HOUR;
    let rows = [
        (429, Outcome::MinuteQuota { retry_delay_ms: Some(30_000) }, day),
        (503, Outcome::UpstreamTrouble, day),
        (502, Outcome::UpstreamTrouble, 5 * 60_000),
        (504, Outcome::UpstreamTrouble, 5 * 60_000),
        (500, Outcome::UpstreamTrouble, 10 * 60_000),
    ];
    for (status, outcome, length) in rows {
        let a = seed(Some(status), outcome);
        assert_eq!((cooldown(&a).scope, cooldown(&a).until_ms - NOW), (Scope::Key, length), "{status}");
    }
    for status in [401, 403] {
        let a = seed(Some(status), Outcome::KeyDead(Reason::KeyLeaked));
        assert_eq!((cooldown(&a).scope, cooldown(&a).until_ms), (Scope::Dead, u64::MAX));
    }
    // The seed passed Google's bad-key 400 to the client and kept the key.
    assert_eq!(seed(Some(400), Outcome::KeyDead(Reason::KeyInvalid)), Action { cooldown: None, retry: false });
}

#[test]
fn depleted_prepayment_cools_the_project_for_every_model() {
    let a = smart(429, Outcome::BillingDepleted);
    assert!(a.retry);
    assert_eq!((cooldown(&a).scope, cooldown(&a).reason), (Scope::Bucket, Reason::BillingDepleted));
    assert_eq!(cooldown(&a).until_ms, NOW + 6 * HOUR);
}

#[test]
fn huge_retry_hints_and_knobs_never_wrap_around() {
    use gemini_pool_core::classify;
    use gemini_pool_core::MAX_DURATION;
    let cap = NOW + MAX_DURATION.as_millis() as u64;
    for body in [
        r#"{"error":{"code":429,"message":"Please retry in 99999999999999999999s.","status":"RESOURCE_EXHAUSTED"}}"#,
        r#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e30s"}]}}"#,
    ] {
        let verdict = classify(429, body.as_bytes());
        for jitter_ms in [0, 1_000, u64::MAX] {
            let ctx = Moment { now_ms: NOW, previous_strikes: 0, jitter_ms };
            let a = decide(&verdict, &CoolingSettings::default(), ctx);
            assert_eq!(cooldown(&a).until_ms, cap, "{body}");
        }
    }
    let forever = CoolingSettings {
        no_free_tier: MAX_DURATION,
        throttle_base: MAX_DURATION,
        throttle_max: MAX_DURATION,
        ..CoolingSettings::default()
    };
    for (outcome, strikes) in [(Outcome::NoFreeTier, 0), (Outcome::Throttled, 30)] {
        let ctx = Moment { now_ms: NOW, previous_strikes: strikes, jitter_ms: 0 };
        let a = decide(&verdict(Some(429), outcome), &forever, ctx);
        assert_eq!(cooldown(&a).until_ms, cap);
    }
}
