//! No input makes the core panic: random and mutated inputs through every function that
//! reads something from a client, from Google or from a store.

use gemini_pool_core::{
    classify, client_token, forwarded_query, parse_duration, peek, query_param, route, strip_model_prefixes, Bucket,
    Dialect, KeyPool, MarkName, Marks, Presented, ResetZone, Rng, SettingsReader,
};

const SEEDS: [&str; 6] = [
    r#"[{"error":{"code":429,"message":"x limit: 0, model: m\nPlease retry in 1.5s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"PerDay","quotaValue":"7"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3.2s"}]}}]"#,
    r#"{"model":"models/gemini-3.5-flash","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    "gemini-edge-pool marks v2 70\nk:0011223344556677 1764000000000 per_minute_quota 0 0 1\np:team 99 key_invalid 2 1 5\np:team clear 7\n",
    "/v1beta/models/gemini-3.5-flash:streamGenerateContent",
    "team:AIzaSyKEY000000000001, AIzaSyKEY2\n# c, d\n",
    r#"{"object":"list","data":[{"id":"models/a"},{"id":3}]}"#,
];

/// Random bytes, or a seed with bytes flipped, cut or repeated.
fn input(rng: &mut Rng) -> Vec<u8> {
    let mut bytes: Vec<u8> = if rng.below(3) == 0 {
        (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect()
    } else {
        SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec()
    };
    for _ in 0..rng.below(6) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(4) {
            0 => bytes[at] = rng.next_u64() as u8,
            1 => bytes.truncate(at),
            2 => {
                let specials = b"\"{}[]:,\\ 0n\x00\n%.#";
                bytes.insert(at, specials[rng.below(specials.len())]);
            }
            _ => {
                let tail = bytes[at..].to_vec();
                bytes.extend_from_slice(&tail);
            }
        }
    }
    bytes
}

#[test]
fn no_input_panics() {
    let mut rng = Rng::new(0x5EED);
    for _ in 0..30_000 {
        let bytes = input(&mut rng);
        let text = String::from_utf8_lossy(&bytes);
        let status = [200, 400, 401, 403, 404, 429, 500, 503, 0, 999][rng.below(10)];
        let _ = classify(status, &bytes);
        let _ = peek(&bytes);
        let _ = strip_model_prefixes(&bytes);
        let _ = route(["GET", "POST", "OPTIONS", "DELETE", ""][rng.below(5)], &text, Some(&text), rng.below(2) == 0);
        let marks = Marks::decode(bytes.clone(), Some(1));
        let all = marks.all();
        if let Some(name) = MarkName::parse("k:0011223344556677") {
            let listed = all.iter().any(|(_, m)| Some(*m) == marks.get(&name));
            assert!(marks.get(&name).is_none() || listed, "listing and lookup agree");
        }
        let (compacted, _) = marks.compacted(0);
        assert_eq!(Marks::decode(compacted, None).all(), all, "our own encoding reads back");
        let pool = KeyPool::new([text.as_ref()]);
        let _ = pool.draw(&mut rng, &[]);
        for key in pool.iter() {
            let _ = (key.mask(), pool.after(key.at), MarkName::of(Bucket::of(&key)));
            assert_eq!(pool.key_at(key.at), Some(key));
        }
        let t = Some(text.as_ref());
        let presented = Presented { authorization: t, goog_api_key: t, query_key: t, api_key: t };
        let dialect = [Dialect::OpenAi, Dialect::Google, Dialect::Anthropic][rng.below(3)];
        let _ = client_token(presented, dialect);
        let _ = SettingsReader::new(|_: &str| Some(text.to_string())).agent_models();
        let _ = (query_param(Some(&text), "key"), forwarded_query(Some(&text), &["alt"]));
        let _ = parse_duration(&text);
        let _ = SettingsReader::new(|_: &str| Some(text.to_string())).cooling();
        if let Ok(zone) = text.parse::<ResetZone>() {
            let _ = zone.next_midnight(rng.next_u64() as i64 >> 20);
        }
    }
}

#[test]
fn reset_times_are_always_in_the_next_day() {
    let mut rng = Rng::new(7);
    for _ in 0..100_000 {
        let now = (rng.next_u64() % 4_000_000_000) as i64;
        let next = ResetZone::Pacific.next_midnight(now);
        assert!(next > now && next - now <= 25 * 3600, "{now} -> {next}");
    }
}
